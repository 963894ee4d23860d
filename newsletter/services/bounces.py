"""`newsletter bounces`: read the bounce mailbox and act on what each message says.

A bounce is matched to its delivery by the VERP address it came back to (signed: a forged one
matches nothing); failing that, by the DSN's Original-Envelope-Id when it holds such a token, or
by the Message-ID of the message it returns (unguessable: only the reader's mail system saw
it). A hard bounce fails that delivery and suppresses the address; soft ones are counted and
suppress after `sending.soft_bounce_limit` in a row. A mail to `unsubscribe+TOKEN@…` leaves
that newsletter, as the one-click link would. Each message is its own unit of work: one that
cannot be read is left where it is and reported, and the rest go on.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.errors import InputError, SettingsError
from newsletter.sending.bounces import Reading, Verdict, parse, read_bounce
from newsletter.sending.mailboxes import Folder, ImapBox, Mailbox, MailboxError, MaildirBox
from newsletter.sending.verp import BOUNCE, bounced_delivery, tag_of
from newsletter.services import readers
from newsletter.settings import Settings
from newsletter.store import bounces
from newsletter.store.db import unit_of_work
from newsletter.store.models import Delivery, Subscriber
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import BounceKind, DeliveryStatus
from newsletter.subscribers.tokens import TokenError, read_address_token

log = logging.getLogger("newsletter.bounces")
# What became of a message, in the order a report lists them.
OUTCOMES = (
    "hard",
    "soft",
    "delayed",
    "unsubscribed",
    "already read",
    "unmatched",
    "not a bounce",
    "unreadable",
)
# Outcomes a person may want to look at: filed apart from the rest.
UNMATCHED = ("unmatched", "not a bounce")
# The Message-ID this product gives a delivery's message: <EDITION.SUBSCRIBER.RANDOM@domain>.
_OUR_MESSAGE_ID = re.compile(r"<(\d{1,10})\.(\d{1,10})\.[0-9a-f]+@[^>]+>")
_SUBJECT_TOKEN = re.compile(r"unsubscribe\s+(\S+)", re.I)


@dataclass(frozen=True)
class Handled:
    """One message read and what was done: its outcome, the delivery and reader it was about."""

    mailbox: str
    key: str
    outcome: str  # one of OUTCOMES
    delivery_id: int | None = None
    email: str | None = None
    detail: str = ""
    suppressed: bool = False  # the reader's address went on the suppression list


@dataclass
class BounceReport:
    handled: list[Handled] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        found = Counter(h.outcome for h in self.handled)
        return {outcome: found[outcome] for outcome in OUTCOMES if found[outcome]}

    @property
    def unreadable(self) -> list[Handled]:
        return [h for h in self.handled if h.outcome == "unreadable"]


def open_mailboxes(
    settings: Settings, maildir: Path | None, imap: bool, unsubscribe_maildir: Path | None = None
) -> list[Mailbox]:
    """The mailboxes to read: the one named on the command line, else the settings' (a Maildir
    before IMAP), and a separate unsubscribe Maildir when there is one."""
    boxes: list[Mailbox] = []
    if maildir is not None:
        boxes.append(MaildirBox(maildir))
    elif imap or (settings.bounce_maildir is None and settings.bounce_imap_host is not None):
        boxes.append(_imap(settings))
    elif settings.bounce_maildir is not None:
        boxes.append(MaildirBox(settings.bounce_maildir))
    else:
        raise InputError(
            "--maildir",
            "no bounce mailbox: give --maildir PATH or --imap, or set bounce_maildir or bounce_imap_host",
        )
    if unsubscribe_maildir is not None:
        boxes.append(MaildirBox(unsubscribe_maildir))
    return boxes


def _imap(settings: Settings) -> ImapBox:
    if not settings.bounce_imap_host or not settings.bounce_imap_user:
        raise SettingsError("bounce_imap_host", "--imap needs bounce_imap_host and bounce_imap_user")
    if settings.bounce_imap_password is None:
        raise SettingsError("bounce_imap_password", "NEWSLETTER_BOUNCE_IMAP_PASSWORD is not set")
    return ImapBox(
        settings.bounce_imap_host,
        settings.bounce_imap_port,
        settings.bounce_imap_user,
        settings.bounce_imap_password.get_secret_value(),
        settings.bounce_imap_folder,
        settings.sending.timeout_seconds,
    )


def read_mailboxes(runtime: Runtime, boxes: Iterable[Mailbox], now: datetime) -> BounceReport:
    """Handle every message still in the mailboxes, filing each one handled; then close them."""
    report = BounceReport()
    boxes = list(boxes)
    try:
        for box in boxes:
            for key, data in box.messages():
                handled = handle(runtime, box.name, key, data, now)
                if handled.outcome != "unreadable":
                    folder: Folder = "unmatched" if handled.outcome in UNMATCHED else "processed"
                    try:
                        box.file(key, folder)
                    except MailboxError as exc:  # done in the store; read again, it changes nothing
                        handled = replace(handled, detail=f"{handled.detail} (left in place: {exc})")
                report.handled.append(handled)
    finally:
        for box in boxes:
            box.close()
    return report


def handle(runtime: Runtime, mailbox: str, key: str, data: bytes, now: datetime) -> Handled:
    """One message: an unsubscribe, a bounce to act on, or something for a person to look at."""
    try:
        reading = read_bounce(parse(data))
    except Exception as exc:  # whatever a malformed message does to a parser, the rest go on
        log.warning("%s %s: cannot read: %r", mailbox, key, exc)
        return Handled(mailbox, key, "unreadable", detail=f"cannot read: {exc!r}"[:300])
    settings = runtime.settings
    token = _unsubscribe_token(settings, reading)
    if token is not None:
        return _unsubscribe(runtime, mailbox, key, token, now)
    if reading.verdict == Verdict.NONE:
        return Handled(mailbox, key, "not a bounce", detail=reading.subject)
    digest = hashlib.sha256(data).hexdigest()
    with unit_of_work(runtime.factory) as session:
        if bounces.recorded(session, digest):
            return Handled(mailbox, key, "already read", detail=reading.words)
        delivery, why = _delivery(session, settings, reading)
        if delivery is None:
            return Handled(mailbox, key, "unmatched", detail=f"{why}: {reading.words}")
        email = session.scalar(select(Subscriber.email).where(Subscriber.id == delivery.subscriber_id))
        if reading.verdict == Verdict.DELAYED:  # still being tried: the final word will come
            return Handled(mailbox, key, "delayed", delivery.id, email, reading.words)
        kind = BounceKind.HARD if reading.verdict == Verdict.HARD else BounceKind.SOFT
        bounces.record(session, delivery, kind, reading.status, reading.words, digest, now)
        if kind == BounceKind.HARD:
            bounces.hard(session, delivery, reading.words)
            return Handled(mailbox, key, "hard", delivery.id, email, reading.words, suppressed=True)
        if delivery.status == DeliveryStatus.SENT:
            delivery.detail = f"soft bounce: {reading.words}"
        limit = settings.sending.soft_bounce_limit
        run = bounces.soft_run(session, delivery, limit)
        if run >= limit:
            bounces.end(session, delivery, f"{run} soft bounces in a row, the last: {reading.words}")
        detail = f"{reading.words} ({run} in a row of {limit})"
        return Handled(mailbox, key, "soft", delivery.id, email, detail, suppressed=run >= limit)


def _unsubscribe_token(settings: Settings, reading: Reading) -> str | None:
    """The token of a mail to this product's unsubscribe address: `unsubscribe+TOKEN@…`, or the
    plain address with `unsubscribe TOKEN` as its subject (a token too long for an address)."""
    address = settings.sending.unsubscribe_address
    if address is None:
        return None
    for to in reading.addressed_to:
        if (tag := tag_of(address, to)) is not None:
            return tag
    if any(to.lower() == address.lower() for to in reading.addressed_to):
        found = _SUBJECT_TOKEN.search(reading.subject)
        return unquote(found.group(1)) if found else None
    return None


def _unsubscribe(runtime: Runtime, mailbox: str, key: str, token: str, now: datetime) -> Handled:
    try:
        left = readers.unsubscribe(runtime, token, source="mailto", now=now)
    except TokenError as exc:  # forged or damaged: nobody is unsubscribed
        return Handled(mailbox, key, "unmatched", detail=f"an unsubscribe mail with a bad token: {exc}")
    return Handled(mailbox, key, "unsubscribed", email=left.email, detail=f"left {left.newsletter}")


def _delivery(session: Session, settings: Settings, reading: Reading) -> tuple[Delivery | None, str]:
    """The delivery a bounce is about, or why none could be told."""
    key = settings.signing_key()
    forged = False
    candidates: list[int] = []
    if settings.sending.return_path:
        for address in reading.addressed_to:
            try:
                found = bounced_delivery(key, settings.sending.return_path, address)
            except TokenError:
                forged = True
                continue
            if found is not None:
                candidates.append(found)
    for envelope_id in reading.envelope_ids:
        try:
            candidates.append(read_address_token(key, BOUNCE, envelope_id))
        except TokenError:
            continue
    for delivery_id in candidates:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            return None, f"delivery {delivery_id} is no longer kept"
        return delivery, ""
    for message_id in reading.original_ids:
        if delivery := _by_message_id(session, message_id):
            return delivery, ""
    if forged:
        return None, "a forged or damaged return address"
    return None, "nothing in it names one of our deliveries"


def _by_message_id(session: Session, message_id: str) -> Delivery | None:
    """The delivery whose message had this Message-ID, found through the (edition, subscriber)
    it names and checked against the whole id the provider took."""
    found = _OUR_MESSAGE_ID.fullmatch(message_id.strip())
    if not found:
        return None
    return session.scalars(
        select(Delivery).where(
            Delivery.edition_id == int(found.group(1)),
            Delivery.subscriber_id == int(found.group(2)),
            Delivery.provider_message_id == found.group(0),
        )
    ).one_or_none()
