"""Signed, opaque tokens for unsubscribe and preference links (HMAC-SHA256).

A token names a subscriber and a purpose and the day it was issued; it cannot be forged
without the secret key, and one purpose's token is useless for another.
"""

from __future__ import annotations

import base64
import hmac
import re
import time

from newsletter.errors import NewsletterError

DAY = 86_400
# How long a link in an old email keeps working, by purpose.
LIFETIME_DAYS = {"unsubscribe": 400, "preferences": 400, "confirm": 7}
# The only shape `sign` makes for real ids (0 to 2**64 - 1): anything else is refused before it
# reaches int() or compare_digest (which raises TypeError on non-ASCII text).
_TOKEN = re.compile(
    r"(?P<payload>(?P<subscriber>[0-9a-f]{1,16})-(?P<day>[0-9a-f]{1,8}))\.(?P<mac>[\w-]{24})", re.A
)


class TokenError(NewsletterError):
    """A token was forged, damaged, for another purpose, or expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _mac(key: bytes, purpose: str, payload: str) -> str:
    return _b64(hmac.digest(key, f"{purpose}:{payload}".encode(), "sha256")[:18])


def sign(key: bytes, purpose: str, subscriber_id: int, now: float | None = None) -> str:
    day = int((time.time() if now is None else now) // DAY)
    payload = f"{subscriber_id:x}-{day:x}"
    return f"{payload}.{_mac(key, purpose, payload)}"


def verify(key: bytes, purpose: str, token: str, now: float | None = None) -> int:
    """The subscriber id in a valid token; TokenError otherwise."""
    parts = _TOKEN.fullmatch(token) if isinstance(token, str) else None  # a web form may give anything
    if not parts or not hmac.compare_digest(parts["mac"], _mac(key, purpose, parts["payload"])):
        raise TokenError("this link is not valid (damaged or forged)")
    today = int((time.time() if now is None else now) // DAY)
    if today - int(parts["day"], 16) > LIFETIME_DAYS[purpose]:
        raise TokenError("this link has expired")
    return int(parts["subscriber"], 16)
