"""SendGrid's Event Webhook: checking that a POST is SendGrid's, and what each event means.

SendGrid signs the timestamp and the body with ECDSA; the sendgrid library's `EventWebhook`
checks it against the key from SendGrid's settings page. Its `verify_signature` wants the body as
text, and raises (rather than returning False) on a signature that is not even base64 or DER,
so every failure here is one refusal. Every message carries `custom_args` with its delivery,
edition and subscriber; SendGrid returns them on each event, which is how an event finds its
delivery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sendgrid.helpers.eventwebhook import EventWebhook

from newsletter.errors import NewsletterError
from newsletter.text import printable

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# A drop for one of these reasons is about the address, not the message.
ADDRESS_DROPS = {
    "bounced address": "bounce",
    "invalid": "bounce",
    "spam reporting address": "complaint",
    "unsubscribed address": "unsubscribe",
}


class EventRefused(NewsletterError):
    """A webhook POST that is not SendGrid's, or not now: nothing of it is kept."""


class Effect(StrEnum):
    """What an event does."""

    CONFIRM = "confirm"  # processed, delivered: the message went
    BOUNCE = "bounce"  # a hard bounce, or a drop for a bounced or invalid address: suppressed
    COMPLAINT = "complaint"  # the reader marked it as spam: suppressed
    UNSUBSCRIBE = "unsubscribe"  # every newsletter left (SendGrid's global unsubscribe)
    LEAVE = "leave"  # this newsletter left (a group unsubscribe)
    DROPPED = "dropped"  # not sent for the message's sake (content, quota): the delivery failed
    PROBLEM = "problem"  # blocked, deferred: recorded, and many at once told to the operators
    RECORD = "record"  # opens, clicks and the rest: recorded only


@dataclass(frozen=True)
class Event:
    event_id: str
    kind: str
    delivery_id: int | None
    edition_id: int | None
    subscriber_id: int | None
    newsletter: str | None
    email: str
    happened_at: datetime | None
    message_id: str | None
    detail: str | None
    effect: Effect


def verifier(public_key: str) -> EventWebhook:
    """The key as SendGrid's settings page shows it (base64 DER); ValueError if it is not one."""
    try:
        return EventWebhook(public_key.strip())
    except Exception as exc:  # cryptography raises several kinds for a malformed key
        raise ValueError(f"not an ECDSA public key in base64: {type(exc).__name__}") from None


def check_headers(signature: str | None, timestamp: str | None, now: datetime, tolerance: timedelta) -> None:
    """What can be checked before the body is read (a page reads no large body for a stranger):
    both headers, a Unix time within `tolerance` of now, a signature of a sane length."""
    if not signature or not timestamp:
        raise EventRefused("unsigned: the signature or timestamp header is missing")
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 10:
        raise EventRefused("the timestamp is not a Unix time")
    signed_at = datetime.fromtimestamp(int(timestamp), UTC)  # at most 10 digits: within range
    if abs(now - signed_at) > tolerance:
        raise EventRefused("signed outside the accepted window (a replay, or a clock far off)")
    if len(signature) > 200:  # an ECDSA P-256 signature is about 96 characters of base64
        raise EventRefused("the signature does not match")


def verify(
    webhook: EventWebhook,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: datetime,
    tolerance: timedelta,
) -> str:
    """The body as text when the POST is SendGrid's and signed within `tolerance` of now;
    EventRefused otherwise."""
    check_headers(signature, timestamp, now, tolerance)
    assert signature is not None and timestamp is not None
    try:
        text = body.decode("utf-8")
        valid = webhook.verify_signature(text, signature, timestamp)
    except Exception:  # not UTF-8, not base64, not DER: not SendGrid's either
        valid = False
    if not valid:
        raise EventRefused("the signature does not match")
    return text


def read_events(text: str) -> tuple[list[Event], int]:
    """The events of a POST body, and how many entries could not be read (skipped, never
    stopping the rest)."""
    try:
        entries = json.loads(text)
    except (ValueError, RecursionError):
        return [], 1
    if not isinstance(entries, list):
        return [], 1
    events, unreadable = [], 0
    for entry in entries:
        event = _event(entry) if isinstance(entry, dict) else None
        if event is None:
            unreadable += 1
        else:
            events.append(event)
    return events, unreadable


def _number(value: Any) -> int | None:
    """An id as the store keeps them (a 32-bit integer on PostgreSQL), else None."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    number = int(text)
    return number if number < 2**31 else None


def _text(value: Any, limit: int = 500) -> str | None:
    return printable(str(value))[:limit] if isinstance(value, str | int | float) and str(value) else None


def _event(entry: dict[str, Any]) -> Event | None:
    event_id, kind = _text(entry.get("sg_event_id"), 100), _text(entry.get("event"), 40)
    if not event_id or not kind:
        return None
    moment = entry.get("timestamp")
    happened = datetime.fromtimestamp(moment, UTC) if isinstance(moment, int) and 0 < moment < 2**33 else None
    message_id = _text(entry.get("sg_message_id"), 300)
    reason = _text(entry.get("reason")) or _text(entry.get("response"))
    bounce_type = _text(entry.get("type"), 40)
    detail = " ".join(part for part in (bounce_type, reason) if part) or None
    return Event(
        event_id=event_id,
        kind=kind,
        delivery_id=_number(entry.get("delivery_id")),
        edition_id=_number(entry.get("edition_id")),
        subscriber_id=_number(entry.get("subscriber_id")),
        newsletter=_text(entry.get("newsletter"), 50),
        email=(_text(entry.get("email"), 320) or "").lower(),
        happened_at=happened,
        message_id=message_id.split(".")[0] if message_id else None,
        detail=detail,
        effect=effect(kind, bounce_type, reason),
    )


def effect(kind: str, bounce_type: str | None, reason: str | None) -> Effect:
    if kind in ("processed", "delivered"):
        return Effect.CONFIRM
    if kind == "bounce":
        return Effect.PROBLEM if bounce_type == "blocked" else Effect.BOUNCE
    if kind == "spamreport":
        return Effect.COMPLAINT
    if kind == "unsubscribe":
        return Effect.UNSUBSCRIBE
    if kind == "group_unsubscribe":
        return Effect.LEAVE
    if kind == "dropped":
        about = ADDRESS_DROPS.get((reason or "").strip().lower())
        if about is not None:
            return {"bounce": Effect.BOUNCE, "complaint": Effect.COMPLAINT}.get(about, Effect.UNSUBSCRIBE)
        return Effect.DROPPED
    if kind == "deferred":
        return Effect.PROBLEM
    return Effect.RECORD
