"""Every status the store keeps, one `str` enum each: the database stores the readable value.

They live with the store because every part reads them: ingest writes a feed's, editions write
an edition's and its first deliveries', sending moves the deliveries on.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class FeedStatus(StrEnum):
    """How a feed's last fetch went."""

    OK = "ok"
    NOT_MODIFIED = "not-modified"  # 304: nothing new
    PARTIAL = "partial"  # malformed, but the entries that could be read were kept
    ERROR = "error"


# A fetch that read the feed in full (or learnt it had not changed).
READ = (FeedStatus.OK, FeedStatus.NOT_MODIFIED)


class SubscriberStatus(StrEnum):
    """A reader's standing: only `active` readers get digests."""

    PENDING = "pending"  # waiting for the double opt-in
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


# Consent withdrawn or the mailbox gone: an import or an editor never brings such a reader back.
ENDED = (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)


class SubscriptionStatus(StrEnum):
    """One newsletter of a reader's: leaving the weekly keeps the daily."""

    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"


class SuppressionReason(StrEnum):
    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"  # the reader left everything
    MANUAL = "manual"
    FORGOTTEN = "forgotten"  # personal data erased; only a hash of the address is kept


class BounceKind(StrEnum):
    """A bounce read from the bounce mailbox: hard ends the reader's mail at once, soft only when
    `sending.soft_bounce_limit` of them come in a row."""

    HARD = "hard"  # 5.x.x: the mailbox does not exist, the domain refuses it for good
    SOFT = "soft"  # 4.x.x: mailbox full, server down for days: the mail system gave up for now


class EditionStatus(StrEnum):
    """draft (picks allowed) -> ready (deliveries written) -> sending -> complete or partial,
    or missed (its slot passed beyond the grace with nothing sent);
    a resumed send or a retry of its failures takes a finished edition back to sending."""

    DRAFT = "draft"
    READY = "ready"
    SENDING = "sending"
    COMPLETE = "complete"
    PARTIAL = "partial"  # finished with some deliveries failed
    MISSED = "missed"  # its slot passed, beyond the grace, with no edition made: nothing was sent


class PickAction(StrEnum):
    PIN = "pin"
    EXCLUDE = "exclude"


class DeliveryStatus(StrEnum):
    """A delivery's place in the ledger; see `newsletter.store.ledger` for every move."""

    PENDING = "pending"  # to be sent
    SENDING = "sending"  # claimed by a sender, handed or about to be handed to the provider
    SENT = "sent"
    # Handed to a provider whose answer was lost (a sender died, a timeout after sending): maybe
    # delivered. Never resent blindly: the provider's events, or the operator, settle it.
    UNCERTAIN = "uncertain"
    FAILED = "failed"
    SKIPPED = "skipped"  # nothing new for this reader
    SUPPRESSED = "suppressed"  # suppressed, unsubscribed or bounced: never mailed


# Still to be worked through by a sender.
OPEN = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
# A delivery in these states may have reached the reader: its articles count as received.
DELIVERED = (DeliveryStatus.SENT, DeliveryStatus.SENDING, DeliveryStatus.UNCERTAIN)


class StatusType(TypeDecorator[Any]):
    """A status column: VARCHAR in the database, its enum in Python; an unknown value is an error."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int = 20) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)
