"""One message from the bounce mailbox: is it a bounce, hard or soft, and in what words.

Delivery status notifications (RFC 3464) are read field by field: each failed recipient's
Status (RFC 3463: 5.x.x is hard, 4.x.x soft) and Diagnostic-Code. The many non-standard formats
(qmail, Exim, Exchange, Yahoo, ...) are left to flufl.bounce, Mailman's detectors, rather than
patterns of our own. Which delivery a bounce is about is not decided here: the VERP address it
was sent to says that (`sending/verp.py`), and the service checks it.
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses, parseaddr
from enum import StrEnum

from flufl.bounce import all_failures

from newsletter.text import printable

# Where a bounce says whom it was for: To keeps the case it was written in (a token may need
# it); the others are added by the receiving mail system.
ADDRESSED_TO = ("to", "delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "cc")
# Senders that are a mail system, not a person: their message to a VERP address is a bounce
# even when nothing in it names a recipient.
DAEMONS = frozenset({"mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster"})
# An RFC 3463 status code (5.1.1), not part of a longer dotted number such as an IP address.
_CODE = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?!\d|\.\d)")
# The returned message in a plain-text bounce starts after a line of dashes (qmail, Exim).
_COPY_FOLLOWS = re.compile(r"^\s*-{3,}")
OWN_TEXT_LINES = 60
WORDS_MAX = 500


class Verdict(StrEnum):
    HARD = "hard"  # permanent: suppress the address
    SOFT = "soft"  # the mail system gave up for now: counted
    DELAYED = "delayed"  # a warning: the mail system is still trying; nothing to do
    NONE = "not a bounce"  # an auto-reply, a person writing, a delivery report


@dataclass(frozen=True)
class Reading:
    """What a message says, before anyone asks which delivery it is about."""

    verdict: Verdict
    status: str | None  # the RFC 3463 code, when it gives one
    words: str  # the diagnostic, for the ledger and the operator
    recipients: frozenset[str]  # the failed recipients it names, lower case
    addressed_to: tuple[str, ...]  # the addresses it was delivered to, as written
    envelope_ids: tuple[str, ...]  # the DSN's Original-Envelope-Id
    original_ids: tuple[str, ...]  # the Message-ID of the returned message or its headers
    subject: str
    vague: bool = False  # a bounce only because a mail system sent it: nothing names a recipient


def parse(data: bytes) -> Message:
    """The message as flufl.bounce expects it (the email package's compat32 policy)."""
    return email.message_from_bytes(data)


def read_bounce(message: Message) -> Reading:
    """Classify one message; a DSN by its fields, anything else by flufl.bounce's detectors."""
    addressed = tuple(
        address for _name, address in getaddresses(_all(message, *ADDRESSED_TO)) if "@" in address
    )
    envelope_ids, blocks = _dsn(message)
    subject = _clean(str(message.get("subject", "")))
    temporary, permanent = all_failures(message)
    recipients = frozenset(a.decode("ascii", "replace").lower() for a in temporary | permanent)
    original_ids = tuple(_original_ids(message))

    def reading(verdict: Verdict, status: str | None, words: str | None, vague: bool = False) -> Reading:
        found = (recipients, addressed, envelope_ids, original_ids, subject, vague)
        return Reading(verdict, status, words or subject, *found)

    failed = [b for b in blocks if str(b.get("action", "")).lower().startswith(("fail", "error"))]
    if failed:  # the worst of them: a block with no status at all counts as permanent
        status, words = max((_block_words(b) for b in failed), key=lambda found: found[0] or "9")
        return reading(_permanence(status), status, words)
    if blocks:
        delayed = any(str(b.get("action", "")).lower().startswith("delayed") for b in blocks)
        return reading(Verdict.DELAYED if delayed else Verdict.NONE, None, None)  # or delivered, relayed
    sender = parseaddr(str(message.get("from", "")))[1].lower().partition("@")[0]
    if _auto_reply(message, sender):  # a vacation notice quoting an address is no bounce
        return reading(Verdict.NONE, None, None)
    status, line = _first_code(_own_text(message))
    if permanent:  # a detector that cannot tell says permanent; a 4.x.x code in its words says not
        return reading(_permanence(status), status, line)
    if temporary:
        return reading(Verdict.DELAYED, status, line)
    if sender in DAEMONS:  # no DSN, nothing a detector knows: only a 5.x.x code makes it hard
        vague = Verdict.HARD if status and status.startswith("5") else Verdict.SOFT
        return reading(vague, status, line, vague=True)
    return reading(Verdict.NONE, None, None)


def _permanence(status: str | None) -> Verdict:
    """Hard unless the status says temporary (4.x.x): a mail system that gave up without a code
    gave up for good, as Mailman takes it."""
    return Verdict.SOFT if status and status.startswith("4") else Verdict.HARD


def _auto_reply(message: Message, sender: str) -> bool:
    """An automatic answer from a person's mailbox (RFC 3834: out of office, vacation): marked
    Auto-Submitted, not sent by a mail system, and not naming a failed recipient in a header."""
    submitted = str(message.get("auto-submitted", "no")).strip().lower()
    return submitted != "no" and sender not in DAEMONS and message.get("x-failed-recipients") is None


def _all(message: Message, *names: str) -> list[str]:
    return [str(value) for name in names for value in message.get_all(name, [])]


def _clean(text: str, limit: int = WORDS_MAX) -> str:
    return " ".join(printable(text).split())[:limit]


def _dsn(message: Message) -> tuple[tuple[str, ...], list[Message]]:
    """The DSN's Original-Envelope-Id values and its per-recipient field blocks (RFC 3464 2.3)."""
    envelope_ids: list[str] = []
    blocks: list[Message] = []
    for part in message.walk():
        if part.get_content_type() not in ("message/delivery-status", "message/global-delivery-status"):
            continue
        payload = part.get_payload()
        for block in payload if isinstance(payload, list) else []:
            if not isinstance(block, Message):
                continue
            envelope_ids += [_clean(v, 200) for v in _all(block, "original-envelope-id")]
            if block.get("action") is not None or block.get("final-recipient") is not None:
                blocks.append(block)
    return tuple(envelope_ids), blocks


def _block_words(block: Message) -> tuple[str | None, str]:
    """A recipient block's status code and words: `5.1.1 550 5.1.1 <x@y>: no such user`."""
    status_field = _clean(str(block.get("status", "")), 40)
    found = _CODE.search(status_field)
    diagnostic = _clean(str(block.get("diagnostic-code", "")))
    if ";" in diagnostic:  # "smtp; 550 5.1.1 ...": the type first
        diagnostic = diagnostic.partition(";")[2].strip()
    status = found.group(1) if found else None
    if status is None and (in_words := _CODE.search(diagnostic)):
        status = in_words.group(1)
    words = " ".join(part for part in (status, diagnostic) if part) or _clean(
        str(block.get("action", "failed"))
    )
    return status, words[:WORDS_MAX]


def _own_text(message: Message) -> list[str]:
    """The bounce's own human-readable lines, never those of the message it returns (a digest's
    article could mention "4.2.2" as easily as anything)."""
    for part in _own_parts(message):
        if part.get_content_type() != "text/plain":
            continue
        raw = part.get_payload(decode=True)
        if not isinstance(raw, bytes):
            continue
        text = raw.decode(part.get_content_charset() or "utf-8", "replace")
        lines: list[str] = []
        for line in text.splitlines()[:OWN_TEXT_LINES]:
            if _COPY_FOLLOWS.match(line):
                break
            lines.append(line)
        return lines
    return []


def _own_parts(message: Message) -> Iterator[Message]:
    """The parts of a message outside any message it carries (message/rfc822 and the like)."""
    yield message
    if message.is_multipart():
        for part in message.get_payload():
            if isinstance(part, Message) and part.get_content_maintype() != "message":
                yield from _own_parts(part)


def _first_code(lines: list[str]) -> tuple[str | None, str | None]:
    """The first status code in the bounce's own words, and its line."""
    for line in lines:
        if found := _CODE.search(line):
            return found.group(1), _clean(line)
    return None, None


def _original_ids(message: Message) -> Iterator[str]:
    """The Message-ID of the returned message (message/rfc822) or of its returned headers
    (text/rfc822-headers): unguessable, so a match on it cannot be forged."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            carried = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(carried, Message) and carried.get("message-id"):
                yield _clean(str(carried["message-id"]), 300)
        elif kind in ("text/rfc822-headers", "message/global-headers"):
            raw = part.get_payload(decode=True)
            if isinstance(raw, bytes):
                headers = email.message_from_bytes(raw)
                if headers.get("message-id"):
                    yield _clean(str(headers["message-id"]), 300)
