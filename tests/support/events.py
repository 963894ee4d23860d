"""Signed SendGrid Event Webhook POSTs, with a key pair made for the test."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


class Signer:
    """What SendGrid holds (the private key) and what our settings hold (the public one)."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        public = self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public = base64.b64encode(public).decode()

    def sign(self, entries: list[dict], at: datetime) -> tuple[bytes, str, str]:
        """The body, its signature and its timestamp, as the POST's headers carry them."""
        body = json.dumps(entries).encode()
        timestamp = str(int(at.timestamp()))
        signature = self.private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return body, base64.b64encode(signature).decode(), timestamp
