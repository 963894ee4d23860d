"""RFC 5322 messages for SMTP and the outbox, built once per variant, copied per recipient.

Building a MIME message with the `email` package costs milliseconds; at a million readers
that is an hour. So the headers common to a variant are folded once, and a reader's copy
is the personal headers plus the two parts, personalized, quoted-printable encoded, joined.
Every line ends in CRLF and stays under 78 octets, so SMTP servers take it as is.
"""

from __future__ import annotations

import binascii
import html
import re
import secrets
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate
from urllib.parse import urlsplit

from newsletter.editions.personalize import Personalizable, Reader

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def header_safe(value: str) -> str:
    """No CR, LF or other control character from data (feeds, imports) may reach a header."""
    return value.strip() if value.isprintable() else _CONTROL.sub(" ", value).strip()


def _fold(name: str, value: str) -> bytes:
    """A header line folded at spaces under 78 columns; non-ASCII as RFC 2047 encoded words."""
    value = header_safe(value)
    if not value.isascii():
        encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
        return f"{name}: {encoded}\r\n".encode("ascii")
    lines = [f"{name}:"]
    for word in value.split(" "):
        if word and len(lines[-1]) + 1 + len(word) > 78 and len(lines[-1]) > len(name) + 1:
            lines.append("")
        lines[-1] += f" {word}"
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


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

    def __init__(self, text: str, escape: bool) -> None:
        split = Personalizable(text, escape)
        self.pieces = [_qp(literal) for literal in split.literals]
        self.names = split.names
        self.quote = html.escape if escape else str

    def encode(self, values: dict[str, str]) -> bytes:
        out = [self.pieces[0]]
        for name, piece in zip(self.names, self.pieces[1:], strict=True):
            out.append(_qp(self.quote(values[name])))
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
        unsubscribe_mailto: str,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        self.html = EncodedPart(html, escape=True)
        self.text = EncodedPart(text, escape=False)
        self.domain = from_address.rsplit("@", 1)[-1]
        self.mailto = unsubscribe_mailto
        self.boundary = f"=_nl_{secrets.token_hex(12)}"
        common = [
            _fold("From", formataddr((header_safe(from_name), from_address))),
            _fold("Reply-To", reply_to),
            _fold("Subject", subject),
            _fold("List-Id", f"{header_safe(list_name)} <{list_id}>"),
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
            b"MIME-Version: 1.0\r\n",
        ]
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
        """This reader's copy: To, Date, Message-ID and List-Unsubscribe are theirs alone."""
        values = reader.values()
        message_id = f"<{message_key}.{secrets.token_hex(4)}@{self.domain}>"
        to = formataddr((header_safe(name), email), charset="utf-8") if name else email
        personal = (
            _fold("To", to)
            + f"Date: {formatdate(usegmt=True)}\r\nMessage-ID: {message_id}\r\n".encode()
            + _fold("List-Unsubscribe", list_unsubscribe(reader.unsubscribe_url, self.mailto))
        )
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


def list_unsubscribe(url: str, mailto: str) -> str:
    """RFC 2369/8058: the one-click HTTPS link first, then a mailto for clients that want one."""
    return f"<{url}>, <mailto:{mailto}?subject=unsubscribe>"


def list_id(newsletter: str, site_url: str) -> str:
    return f"{newsletter}.{urlsplit(site_url).hostname or 'newsletter.invalid'}"
