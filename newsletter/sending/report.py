"""What a send did, and the error that stops one."""

from __future__ import annotations

from dataclasses import dataclass, field

from newsletter.errors import NewsletterError
from newsletter.store.statuses import DeliveryStatus, EditionStatus


class SendError(NewsletterError):
    """The send stopped; the ledger says exactly what went out."""


@dataclass
class SendReport:
    edition_id: int
    status: EditionStatus = EditionStatus.SENDING
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    recovered: int = 0
    uncertain: int = 0  # in flight when a stopped sender died: left for the events to settle
    resent: int = 0  # uncertain ones nothing settled in time, sent again
    total: int | None = None  # deliveries to work through, when known
    counts: dict[DeliveryStatus, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
