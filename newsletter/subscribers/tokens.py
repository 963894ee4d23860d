"""Signed, opaque tokens for unsubscribe and preference links (HMAC-SHA256).

A token names a subscriber and a purpose and the day it was issued; it cannot be forged
without the secret key, and one purpose's token is useless for another.
"""

from __future__ import annotations

import base64
import hmac
import time

from newsletter.errors import NewsletterError

DAY = 86_400
# How long a link in an old email keeps working, by purpose.
LIFETIME_DAYS = {"unsubscribe": 400, "preferences": 400, "confirm": 7}


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
    payload, _, mac = token.partition(".")
    if not mac or not hmac.compare_digest(mac, _mac(key, purpose, payload)):
        raise TokenError("this link is not valid (damaged or forged)")
    subscriber_hex, _, day_hex = payload.partition("-")
    day = int(day_hex, 16)
    today = int((time.time() if now is None else now) // DAY)
    if today - day > LIFETIME_DAYS[purpose]:
        raise TokenError("this link has expired")
    return int(subscriber_hex, 16)
