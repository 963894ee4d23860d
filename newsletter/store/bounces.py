"""Bounces read back from the bounce mailbox, recorded once each: a hard one ends the reader's
mail at once; soft ones only when `limit` of the reader's deliveries in a row bounced, so a
delivery that went through in between starts the count again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from newsletter.store.models import Bounce, Delivery, Subscriber
from newsletter.store.statuses import (
    BounceKind,
    DeliveryStatus,
    SubscriberStatus,
    SuppressionReason,
)
from newsletter.store.suppressions import suppress_recipients


def recorded(session: Session, message_hash: str) -> bool:
    """This very message was read before (a run stopped before it could move it)."""
    return session.scalar(select(Bounce.id).where(Bounce.message_hash == message_hash)) is not None


def record(
    session: Session,
    delivery: Delivery,
    kind: BounceKind,
    status: str | None,
    words: str,
    message_hash: str,
    now: datetime,
) -> None:
    session.add(
        Bounce(
            message_hash=message_hash,
            delivery_id=delivery.id,
            subscriber_id=delivery.subscriber_id,
            kind=kind,
            status=status,
            detail=words,
            received_at=now,
        )
    )
    session.flush()


def hard(session: Session, delivery: Delivery, words: str) -> None:
    """The DSN's words on the delivery and the reader's address suppressed. The delivery stays
    sent: the send did its part, the reader's mailbox refused it; an edition is not made
    partial by its readers' bounces (every list has some)."""
    delivery.detail = f"bounced: {words}"
    end(session, delivery, words)


def soft_run(session: Session, delivery: Delivery, limit: int) -> int:
    """How many of the reader's sent deliveries, up to this one, soft-bounced in a row (at most
    `limit`: no need to look further back)."""
    recent = session.scalars(
        select(Delivery.id)
        .where(
            Delivery.subscriber_id == delivery.subscriber_id,
            Delivery.id <= delivery.id,
            or_(Delivery.status == DeliveryStatus.SENT, Delivery.id == delivery.id),
        )
        .order_by(Delivery.id.desc())
        .limit(limit)
    ).all()
    bounced = set(
        session.scalars(
            select(Bounce.delivery_id).where(Bounce.delivery_id.in_(recent), Bounce.kind == BounceKind.SOFT)
        )
    )
    run = 0
    for delivery_id in recent:
        if delivery_id not in bounced:
            break
        run += 1
    return run


def end(session: Session, delivery: Delivery, words: str) -> None:
    """The reader's mailbox is gone: on the suppression list, and bounced unless they had left
    (a forgotten reader's hash is on the list already)."""
    subscriber = session.get(Subscriber, delivery.subscriber_id)
    if subscriber is None or subscriber.email.startswith("sha256:"):
        return
    suppress_recipients(session, [(delivery.id, f"bounced: {words}")], SuppressionReason.BOUNCE)
    if subscriber.status in (SubscriberStatus.ACTIVE, SubscriberStatus.PENDING):
        subscriber.status = SubscriberStatus.BOUNCED
