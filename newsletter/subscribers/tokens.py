"""Signed, opaque tokens for the links in emails and pages (HMAC-SHA256).

A token names a subscriber, a purpose and the day it was issued, and may carry a scope (the
newsletter an unsubscribe link is for, the new address a change confirms, sealed). It cannot be
forged without the secret key, and one purpose's or scope's token is useless for another.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from newsletter.errors import NewsletterError

DAY = 86_400
# How long a link keeps working, by purpose; None: never expires (an unsubscribe link in an old
# email must still work, RFC 8058 and the law).
LIFETIME_DAYS: dict[str, int | None] = {
    "unsubscribe": None,
    "preferences": 400,
    "confirm": 7,
    "address": 7,
    "bounce": None,  # a bounce can come days after the message; the delivery it names is fixed
    "article": None,  # an article link in an edition (id: the article, scope: the edition)
    "click": None,  # the reader's part of a tracked link (scope: the edition)
}
# The only shape `sign` makes for real ids (0 to 2**64 - 1): anything else is refused before it
# reaches int() or compare_digest (which raises TypeError on non-ASCII text).
_TOKEN = re.compile(
    r"(?P<payload>(?P<subscriber>[0-9a-f]{1,16})-(?P<day>[0-9a-f]{1,8})(?:-(?P<scope>[\w-]{1,1600}))?)"
    r"\.(?P<mac>[\w-]{24})",
    re.A,
)


# An address token (`sign_for_address`): a number in hex and a MAC in lower-case base32. Mail
# systems may fold an address's case (Postfix does in Delivered-To), so it must survive that.
_ADDRESS_TOKEN = re.compile(r"(?P<number>[0-9a-f]{1,16})-(?P<mac>[a-z2-7]{24})", re.A)


class TokenError(NewsletterError):
    """A token was forged, damaged, for another purpose, or expired."""


@dataclass(frozen=True)
class Signed:
    subscriber_id: int
    scope: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _mac(key: bytes, purpose: str, payload: str) -> str:
    # Not hmac.digest: its one-shot C call lets go of the GIL, and a page's event loop then
    # waits for it behind any busy thread (the one-clicks' writer) for up to 5 ms.
    return _b64(hmac.new(key, f"{purpose}:{payload}".encode(), "sha256").digest()[:18])


# base64's standard alphabet to the URL-safe one, for a MAC of 18 bytes (24 characters, no padding).
_URLSAFE = bytes.maketrans(b"+/", b"-_")


class Signer:
    """`sign` for many subscribers (a send signs two or three links for each reader): the day
    and the scope are encoded once, and the HMAC's keyed inner and outer SHA-256 states (RFC
    2104) are made once and copied, so a token costs two hash copies and no key setup. Its
    tokens are `sign`'s, character for character."""

    def __init__(
        self, key: bytes, purpose: str, scope: str = "", now: float | None = None, prefix: str = ""
    ) -> None:
        self.key = key
        self.prefix = prefix  # what comes before each token (a link's URL up to it)
        self.day = int((time.time() if now is None else now) // DAY)
        self.suffix = f"-{self.day:x}" + (f"-{_b64(scope.encode())}" if scope else "")
        block = hashlib.sha256().block_size
        padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
        self.inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded) + f"{purpose}:".encode())
        self.outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def __call__(self, subscriber_id: int) -> str:
        payload = f"{subscriber_id:x}{self.suffix}"
        inner = self.inner.copy()
        inner.update(payload.encode())
        outer = self.outer.copy()
        outer.update(inner.digest())
        encoded = binascii.b2a_base64(outer.digest()[:18], newline=False).translate(_URLSAFE)
        return f"{self.prefix}{payload}.{encoded.decode()}"


def sign(key: bytes, purpose: str, subscriber_id: int, now: float | None = None, scope: str = "") -> str:
    day = int((time.time() if now is None else now) // DAY)
    payload = f"{subscriber_id:x}-{day:x}" + (f"-{_b64(scope.encode())}" if scope else "")
    return f"{payload}.{_mac(key, purpose, payload)}"


def read(key: bytes, purpose: str, token: str, now: float | None = None) -> Signed:
    """The subscriber and scope of a valid token; TokenError otherwise."""
    parts = _TOKEN.fullmatch(token) if isinstance(token, str) else None  # a web form may give anything
    if not parts or not hmac.compare_digest(parts["mac"], _mac(key, purpose, parts["payload"])):
        raise TokenError("this link is not valid (damaged or forged)")
    lifetime = LIFETIME_DAYS[purpose]
    today = int((time.time() if now is None else now) // DAY)
    if lifetime is not None and today - int(parts["day"], 16) > lifetime:
        raise TokenError("this link has expired")
    scope = parts["scope"] or ""
    try:
        decoded = base64.urlsafe_b64decode(scope + "=" * (-len(scope) % 4)).decode() if scope else ""
    except (binascii.Error, UnicodeDecodeError):
        raise TokenError("this link is not valid (damaged or forged)") from None
    return Signed(int(parts["subscriber"], 16), decoded)


def seal(key: bytes, purpose: str, text: str) -> str:
    """`text` encrypted (AES-GCM, a key of its own derived from the secret key) for a link's
    scope: a link is seen by mail systems, proxies and logs, and must not show an address."""
    nonce = os.urandom(12)
    return _b64(nonce + AESGCM(_sealing_key(key, purpose)).encrypt(nonce, text.encode(), purpose.encode()))


def unseal(key: bytes, purpose: str, sealed: str) -> str:
    """What `seal` sealed; TokenError for anything else."""
    try:
        data = base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4))
        return AESGCM(_sealing_key(key, purpose)).decrypt(data[:12], data[12:], purpose.encode()).decode()
    except (binascii.Error, ValueError, InvalidTag):
        raise TokenError("this link is not valid (damaged or forged)") from None


def _sealing_key(key: bytes, purpose: str) -> bytes:
    return hmac.digest(key, f"seal:{purpose}".encode(), "sha256")


def verify(key: bytes, purpose: str, token: str, now: float | None = None) -> int:
    """The subscriber id in a valid token; TokenError otherwise."""
    return read(key, purpose, token, now).subscriber_id


def _address_mac(key: bytes, purpose: str, number: int) -> str:
    digest = hmac.digest(key, f"{purpose}:address:{number:x}".encode(), "sha256")[:15]
    return base64.b32encode(digest).decode().lower()


def sign_for_address(key: bytes, purpose: str, number: int) -> str:
    """A token to put in an address's local part (`bounces+TOKEN@…`): letters and digits of one
    case only, and short (a local part holds at most 64 octets); it never expires."""
    return f"{number:x}-{_address_mac(key, purpose, number)}"


def read_address_token(key: bytes, purpose: str, token: str) -> int:
    """The number in a valid address token, whatever case it came back in; TokenError otherwise."""
    parts = _ADDRESS_TOKEN.fullmatch(token.lower()) if isinstance(token, str) and token.isascii() else None
    if not parts:
        raise TokenError("this address is not valid (damaged or forged)")
    number = int(parts["number"], 16)
    if not hmac.compare_digest(parts["mac"], _address_mac(key, purpose, number)):
        raise TokenError("this address is not valid (damaged or forged)")
    return number
