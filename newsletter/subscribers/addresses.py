"""Email addresses as the store keeps them: one mailbox, one spelling.

Every address from outside (an import, a sign-up, an editor) goes through `normalize_email`
before it is stored or compared: smtplib reduces a raw `re:x@y` or `(c)x@y` to `x@y` for
`RCPT TO`, so anything looser would let a second row, or a suppressed reader, reach a mailbox.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from email_validator import EmailNotValidError, ValidatedEmail, validate_email

from newsletter.errors import NewsletterError

# RFC 5321 allows 254 octets; longer text is refused before email-validator spends time on it.
MAX_LENGTH = 320
_SHOWN = 60


def shown(address: str) -> str:
    """The address as an error message may print it: truncated and escaped (no CR/LF/NUL)."""
    return repr(address[:_SHOWN]) + ("…" if len(address) > _SHOWN else "")


class InvalidAddress(NewsletterError, ValueError):
    """Not one plain mailbox; carries the address and email-validator's reason."""

    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"not an email address: {shown(address)} ({reason})")
        self.address = address
        self.reason = reason


def normalize_email(address: str) -> str:
    """The mailbox as the store keeps it: email-validator's normalized form (syntax only, no
    DNS), all lower-case so one mailbox is one row, an IDN domain in Unicode.

    Spaces and tabs around it are dropped (a typo in a cell); anything else that is not a bare
    mailbox (display name, comment, quoted local part, route, trailing dot, control character)
    raises `InvalidAddress`.
    """
    return _validated(address).normalized


def _validated(address: str) -> ValidatedEmail:
    text = address.strip(" \t")
    if len(text) > MAX_LENGTH:
        raise InvalidAddress(address, f"longer than {MAX_LENGTH} characters")
    try:
        # Lower-cased before validation so the length limits and Unicode normalization apply
        # to what is stored (lower-casing can lengthen a local part, e.g. U+0130).
        return validate_email(text.lower(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(address, str(exc)) from None


@dataclass(frozen=True)
class EnvelopeAddress:
    """A stored address as SMTP and providers take it."""

    address: str  # the local part as stored, the domain in ASCII (punycode)
    smtputf8: bool  # the local part is not ASCII: only a server offering SMTPUTF8 can take it


# Plain lower-case ASCII mailboxes, the vast majority: nothing in them smtplib could reduce to
# another mailbox, so they skip email-validator's 30 µs at send time.
_PLAIN = re.compile(
    r"[a-z0-9_+-]+(\.[a-z0-9_+-]+)*@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+"
)


def envelope_address(stored: str) -> EnvelopeAddress:
    """The form to send to; refuses (`InvalidAddress`) a stored address that is not its own
    normalized form, such as a row written before addresses were validated."""
    if len(stored) <= MAX_LENGTH and _PLAIN.fullmatch(stored):
        return EnvelopeAddress(stored, False)
    checked = _validated(stored)
    if checked.normalized != stored:
        raise InvalidAddress(stored, "not in the store's normalized form; import it again")
    return EnvelopeAddress(f"{checked.local_part}@{checked.ascii_domain}", checked.smtputf8)


def address_hash(mailbox: str, key: bytes) -> str:
    """What the suppression list keeps of a forgotten reader: enough to refuse the address
    again, nothing to read it back from. Keyed with the secret key: a plain hash of an address
    is found again by hashing a list of likely addresses."""
    return "sha256:" + hmac.digest(key, b"forgotten:" + mailbox.encode(), "sha256").hex()
