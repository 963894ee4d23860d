"""The ledger's side of local-time editions: the moment each delivery may go (its wave), who
is due when, and the waves that passed beyond the grace with their readers unsent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from newsletter.store.models import DELIVERIES, Delivery, Edition, Subscriber, SubscriberNewsletter
from newsletter.store.statuses import OPEN, DeliveryStatus, SubscriberStatus, SubscriptionStatus

# A delivery whose wave passed beyond the grace unsent: recorded so, never sent late.
MISSED = "not sent: its wave passed beyond the grace while the job was down"


def newsletter_zones(session: Session, newsletter: str) -> list[str | None]:
    """The zones the newsletter's active readers chose (None: the site's), for its next waves."""
    return list(
        session.scalars(
            select(Subscriber.timezone)
            .join(SubscriberNewsletter, SubscriberNewsletter.subscriber_id == Subscriber.id)
            .where(
                Subscriber.status == SubscriberStatus.ACTIVE,
                SubscriberNewsletter.newsletter == newsletter,
                SubscriberNewsletter.status == SubscriptionStatus.ACTIVE,
            )
            .distinct()
        )
    )


def edition_zones(session: Session, edition_id: int) -> list[str | None]:
    """The zones of an edition's readers, as they stand now."""
    return list(
        session.scalars(
            select(Subscriber.timezone)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.edition_id == edition_id)
            .distinct()
        )
    )


def time_deliveries(session: Session, edition_id: int, moments: dict[str | None, datetime]) -> None:
    """Each delivery of the edition given its reader's zone's moment: a statement per zone."""
    for zone, moment in moments.items():
        readers = select(Subscriber.id).where(
            Subscriber.timezone.is_(None) if zone is None else Subscriber.timezone == zone
        )
        session.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.edition_id == edition_id, DELIVERIES.c.subscriber_id.in_(readers))
            .values(due_at=moment)
        )


def waiting(session: Session, subscriber_id: int) -> Sequence[tuple[int, str, str]]:
    """A reader's deliveries still waiting for their wave: (delivery id, newsletter, slot)."""
    return session.execute(
        select(Delivery.id, Edition.newsletter, Edition.slot)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.due_at.is_not(None),
        )
    ).all()


def retime(session: Session, delivery_id: int, moment: datetime) -> None:
    """A waiting delivery moved to its reader's new moment, unless a sender claimed it meanwhile."""
    session.execute(
        update(DELIVERIES)
        .where(DELIVERIES.c.id == delivery_id, DELIVERIES.c.status == DeliveryStatus.PENDING)
        .values(due_at=moment)
    )


# A wave some sender has begun: its other readers go, however late (a long wave, a second
# scheduler coming in after the grace); only a wave nobody began was missed.
BEGUN = (DeliveryStatus.SENDING, DeliveryStatus.SENT, DeliveryStatus.UNCERTAIN, DeliveryStatus.FAILED)


def miss(session: Session, edition_id: int, before: datetime) -> int:
    """Deliveries of waves that came before `before` (the grace's start) and that no sender
    began, never tried: skipped, with why; their readers' articles were not received, so later
    editions may carry them. A reader whose mailbox asked for a later try keeps it."""
    other = DELIVERIES.alias("other")
    begun = (
        select(other.c.id)
        .where(
            other.c.edition_id == DELIVERIES.c.edition_id,
            other.c.due_at == DELIVERIES.c.due_at,
            other.c.status.in_(BEGUN),
        )
        .exists()
    )
    result = session.execute(
        update(DELIVERIES)
        .where(
            DELIVERIES.c.edition_id == edition_id,
            DELIVERIES.c.status == DeliveryStatus.PENDING,
            DELIVERIES.c.due_at < before,
            DELIVERIES.c.retry_at.is_(None),
            ~begun,
        )
        .values(status=DeliveryStatus.SKIPPED, detail=MISSED)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Waves:
    """An edition's waves: how many moments have been sent, the next one still to go (None: all
    gone) and the last one; with the readers waiting for each moment to come."""

    done: int
    total: int
    next: datetime | None
    last: datetime | None
    waiting: int


def waves(session: Session, edition_ids: Sequence[int]) -> dict[int, Waves]:
    """The waves of those of these editions sent in waves, as the ledger has them."""
    rows = session.execute(
        select(Delivery.edition_id, Delivery.due_at, func.count().filter(Delivery.status.in_(OPEN)))
        .where(Delivery.edition_id.in_(list(edition_ids)), Delivery.due_at.is_not(None))
        .group_by(Delivery.edition_id, Delivery.due_at)
        .order_by(Delivery.edition_id, Delivery.due_at)
    ).all()
    moments: dict[int, list[tuple[datetime, int]]] = {}
    for edition_id, at, count in rows:
        if at is not None:  # never: the query asks for moments
            moments.setdefault(edition_id, []).append((at, count))
    found = {}
    for edition_id, times in moments.items():
        open_ = [(at, n) for at, n in times if n]
        found[edition_id] = Waves(
            done=len(times) - len(open_),
            total=len(times),
            next=open_[0][0] if open_ else None,
            last=times[-1][0],
            waiting=sum(n for _at, n in open_),
        )
    return found
