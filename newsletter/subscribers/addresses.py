"""Email addresses as the store keeps them: one mailbox, one spelling."""

from __future__ import annotations


def normalize_email(address: str) -> str:
    """Trimmed and lowercased: one mailbox is one subscriber, however the address was typed
    (mailbox providers treat the local part without case, so two rows would mean two copies)."""
    return address.strip().lower()
