"""RFC 5322 messages for SMTP and the outbox, built once per variant, copied per recipient.

Building a MIME message with the `email` package costs milliseconds; at a million readers
that is an hour. So the headers common to a variant are folded once, and a reader's copy
is the personal headers plus the two parts, personalized, quoted-printable encoded, joined.
Every line ends in CRLF and stays under 78 octets, so SMTP servers take it as is.
"""

from __future__ import annotations

import binascii
import html
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from urllib.parse import quote, urlsplit

from newsletter.editions.compose import Markers
from newsletter.editions.personalize import Personalizable, Reader
from newsletter.sending.verp import MAX_LOCAL_PART, with_tag
from newsletter.settings import Settings
from newsletter.subscribers.links import token_of
from newsletter.text import printable


def _fold(name: str, value: str) -> bytes:
    """A header line folded at spaces under 78 columns. Non-ASCII text, and text that looks like
    an encoded word, is written as RFC 2047 encoded words, so a reader sees it as it was."""
    value = printable(value)
    if not value.isascii() or "=?" in value:
        encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
        return f"{name}: {encoded}\r\n".encode("ascii")
    return _wrap(name, value.split(" ")).encode("ascii")


def _wrap(name: str, words: list[str]) -> str:
    """`Name: words` with a fold before any word that would pass 78 columns (right after the
    colon too: a long first word then starts the next line)."""
    lines = [f"{name}:"]
    for word in words:
        if word and len(lines[-1]) + 1 + len(word) > 78:
            lines.append("")
        lines[-1] += f" {word}"
    return "\r\n".join(line for line in lines if line) + "\r\n"


def _mailbox(header: str, name: str | None, address: str) -> str:
    """`Name <address>`: the name quoted, or as folded encoded words where it is not plain
    ASCII; the address as it is (ASCII, or UTF-8 for a mailbox sent with SMTPUTF8)."""
    name = printable(name or "")
    if not name:
        return address
    if name.isascii() and "=?" not in name:
        phrase = formataddr((name, "x@x.invalid")).rsplit(" <", 1)[0]  # quoted where needed
    else:
        phrase = Header(name, "utf-8", header_name=header).encode(linesep="\r\n")
    return f"{phrase} <{address}>"


def _fold_raw(name: str, value: str) -> bytes:
    """A header whose value is already encoded (addresses, URLs): folded at its spaces, unless
    its encoded words are folded already. UTF-8 only appears in an internationalized address,
    which goes with SMTPUTF8."""
    if "\r\n" in value:
        return f"{name}: {value}\r\n".encode()
    return _wrap(name, value.split(" ")).encode("utf-8")


def _qp(text: str) -> bytes:
    """Quoted-printable with CRLF line ends, ending in a soft line break, so that encoded pieces
    can be joined: the join decodes to the joined text, and no line passes 76 characters."""
    if not text:
        return b""
    encoded = binascii.b2a_qp(text.encode("utf-8"), quotetabs=False, istext=True, header=False)
    encoded = encoded.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    head, _, last = encoded.rpartition(b"\r\n")
    if len(last) > 75:  # room for the soft break's "=": cut the line, never inside an =XX escape
        cut = 70 - (2 if last[68:69] == b"=" else 1 if last[69:70] == b"=" else 0)
        last = last[:cut] + b"=\r\n" + last[cut:]
    return (head + b"\r\n" if head or encoded.startswith(b"\r\n") else b"") + last + b"=\r\n"


class EncodedPart:
    """A personalizable part with its fixed pieces encoded once; a reader's copy encodes only
    their few values and joins."""

    def __init__(self, text: str, escape: bool, markers: Markers) -> None:
        split = Personalizable(text, escape, markers)
        self.pieces = [_qp(literal) for literal in split.literals]
        self.names = split.names
        self.quote = html.escape if escape else str

    def encode(self, values: dict[str, str]) -> bytes:
        """Each value encoded once, however often its marker comes (a tracked link per article)."""
        encoded = {name: _qp(self.quote(value)) for name, value in values.items()}
        out = [self.pieces[0]]
        for name, piece in zip(self.names, self.pieces[1:], strict=True):
            out.append(encoded[name])
            out.append(piece)
        return b"".join(out)


@dataclass(frozen=True)
class Envelope:
    """One recipient's copy: the address it goes to and its bytes."""

    recipient: str
    message_id: str
    data: bytes


class MessageTemplate:
    """A variant's message, ready to be copied for each of its readers."""

    def __init__(
        self,
        *,
        subject: str,
        html: str,
        text: str,
        from_name: str,
        from_address: str,
        reply_to: str,
        list_name: str,
        list_id: str,
        unsubscribe_mailto: str | Mailto,
        markers: Markers,
        extra_headers: dict[str, str] | None = None,
        list_headers: bool = True,
    ) -> None:
        # A reader's own notice (a confirmation) or an alert is no list mail: no List-* headers,
        # so no mail client offers an unsubscribe button that would lead nowhere.
        self.list_headers = list_headers
        self.html = EncodedPart(html, True, markers)
        self.text = EncodedPart(text, False, markers)
        self.domain = from_address.rsplit("@", 1)[-1]
        self.mailto = unsubscribe_mailto
        self.boundary = f"=_nl_{secrets.token_hex(12)}"
        common = [
            _fold_raw("From", _mailbox("From", from_name, from_address)),
            _fold("Reply-To", reply_to),
            _fold("Subject", subject),
        ]
        if list_headers:
            common += [
                _fold_raw(
                    "List-Id",
                    _mailbox("List-Id", list_name, list_id) if printable(list_name) else f"<{list_id}>",
                ),
                b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
            ]
        common.append(b"MIME-Version: 1.0\r\n")
        common += [_fold(name, value) for name, value in (extra_headers or {}).items()]
        common.append(f'Content-Type: multipart/alternative; boundary="{self.boundary}"\r\n'.encode())
        self.common = b"".join(common)
        part = (
            '--{b}\r\nContent-Type: text/{kind}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self.text_head = ("\r\n" + part.format(b=self.boundary, kind="plain")).encode()
        self.html_head = ("\r\n" + part.format(b=self.boundary, kind="html")).encode()
        self.end = f"\r\n--{self.boundary}--\r\n".encode()

    def render(self, email: str, name: str | None, reader: Reader, message_key: str) -> Envelope:
        """This reader's copy: To, Date, Message-ID and List-Unsubscribe are theirs alone.
        `email` is the address as it goes out: ASCII, or UTF-8 for a mailbox sent with SMTPUTF8."""
        values = reader.values()
        message_id = f"<{message_key}.{secrets.token_hex(4)}@{self.domain}>"
        date = format_datetime(datetime.now(UTC))  # RFC 5322's numeric zone: +0000
        personal = (
            _fold_raw("To", _mailbox("To", name, email))
            + f"Date: {date}\r\nMessage-ID: {message_id}\r\n".encode()
        )
        if self.list_headers:
            personal += _fold_raw("List-Unsubscribe", list_unsubscribe(reader.unsubscribe_url, self.mailto))
        data = b"".join(
            (
                personal,
                self.common,
                b"\r\nThis is a multipart message in MIME format.\r\n",
                self.text_head,
                self.text.encode(values),
                self.html_head,
                self.html.encode(values),
                self.end,
            )
        )
        return Envelope(email, message_id, data)


@dataclass(frozen=True)
class Mailto:
    """List-Unsubscribe's mailto: a fixed address read by people (the editors', by default), or
    this product's own, tagged per reader with their unsubscribe token (`unsubscribe+TOKEN@…`)
    so `newsletter bounces` can honour it without anyone reading it."""

    address: str
    tagged: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailto:
        if settings.sending.unsubscribe_address:
            return cls(settings.sending.unsubscribe_address, tagged=True)
        return cls(settings.site.unsubscribe_mailto or settings.site.reply_to)

    def uri(self, unsubscribe_url: str) -> str:
        """The mailto URI for the reader whose one-click link this is. A token too long for a
        local part (64 octets) goes in the subject instead, which `newsletter bounces` reads too."""
        if not self.tagged:
            return f"mailto:{self.address}?subject=unsubscribe"
        token = token_of(unsubscribe_url)
        tagged = with_tag(self.address, token)
        if len(tagged.rpartition("@")[0]) <= MAX_LOCAL_PART:
            return f"mailto:{tagged}?subject=unsubscribe"
        return f"mailto:{self.address}?subject=unsubscribe%20{quote(token, safe='')}"


def list_unsubscribe(url: str, mailto: str | Mailto) -> str:
    """RFC 2369/8058: the one-click HTTPS link first, then a mailto for clients that want one."""
    target = mailto if isinstance(mailto, Mailto) else Mailto(mailto)
    return f"<{url}>, <{target.uri(url)}>"


def list_id(newsletter: str, site_url: str) -> str:
    return f"{newsletter}.{urlsplit(site_url).hostname or 'newsletter.invalid'}"
