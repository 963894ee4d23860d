"""SendGrid's Event Webhook as a test drives it: a key pair made for the test, POSTs signed with
it as SendGrid signs them, and the service that stores and reads them."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.sending.events import SIGNATURE_HEADER, TIMESTAMP_HEADER
from newsletter.services import events
from newsletter.store.models import Delivery
from newsletter.store.runtime import Runtime


@dataclass(frozen=True)
class WebhookKeys:
    private: ec.EllipticCurvePrivateKey
    public: str  # base64 DER, as SendGrid's settings page shows it

    @classmethod
    def make(cls) -> WebhookKeys:
        private = ec.generate_private_key(ec.SECP256R1())
        public = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(private, base64.b64encode(public).decode())

    def sign(self, entries: list[dict], at: datetime) -> tuple[bytes, dict[str, str]]:
        """The POST's body and headers, signed at `at`."""
        body = json.dumps(entries).encode()
        return body, self.sign_body(body, at)

    def sign_body(self, body: bytes, at: datetime) -> dict[str, str]:
        """The headers of a POST of these bytes (whatever they are), signed at `at`."""
        timestamp = str(int(at.timestamp()))
        signature = self.private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: timestamp}


def with_webhook(runtime: Runtime, keys: WebhookKeys) -> Runtime:
    """The runtime with the Event Webhook on (its key set)."""
    runtime.settings = runtime.settings.model_copy(update={"sendgrid_webhook_public_key": keys.public})
    return runtime


def deliver(runtime: Runtime, keys: WebhookKeys, entries: list[dict], now: datetime) -> events.EventsReport:
    """The events as one signed POST at `now`, stored and read as the web app does."""
    body, headers = keys.sign(entries, now)
    events.receive(runtime, body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER], now)
    return events.process(runtime, now)


def entry(kind: str, delivery: Delivery, email: str, message_id: str, at: datetime, **extra: object) -> dict:
    """One event as SendGrid posts it about a ledger delivery: the message's custom_args at the top."""
    return {
        "email": email,
        "timestamp": int(at.timestamp()),
        "event": kind,
        "sg_event_id": f"{kind}-{delivery.id}-{message_id}",
        "sg_message_id": f"{message_id}.filter0001",
        "newsletter": "weekly",
        "edition_id": str(delivery.edition_id),
        "subscriber_id": str(delivery.subscriber_id),
        "delivery_id": str(delivery.id),
        **extra,
    }
