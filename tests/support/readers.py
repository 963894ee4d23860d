"""A reader in the store, and what the sender's last check before a hand-over reads of them:
their subscription to the edition's newsletter, their status, and the suppression list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Delivery, Edition, Subscriber, SubscriberNewsletter, Suppression
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import DeliveryStatus, EditionStatus, SubscriberStatus, SubscriptionStatus
from newsletter.subscribers.addresses import address_hash


@dataclass(frozen=True)
class Gate:
    subscription: str | None  # the reader's subscription to the newsletter: active, unsubscribed, none
    status: str | None  # the reader's own status (None: no such reader any more)
    suppressed: bool  # the address (or its hash, once forgotten) is on the suppression list
    paused_until: datetime | None = None

    @property
    def mailed(self) -> bool:
        """What the sender's check says: this reader may be handed this newsletter."""
        return (
            self.subscription == SubscriptionStatus.ACTIVE
            and self.status == SubscriberStatus.ACTIVE
            and not self.suppressed
        )


def add_reader(
    runtime: Runtime,
    email: str,
    newsletters: tuple[str, ...] = ("weekly",),
    language: str = "en",
    name: str | None = None,
) -> int:
    """An active reader of these newsletters; their id."""
    with unit_of_work(runtime.factory) as session:
        reader = Subscriber(email=email, name=name, status=SubscriberStatus.ACTIVE, language=language)
        reader.newsletters = [SubscriberNewsletter(newsletter=newsletter) for newsletter in newsletters]
        session.add(reader)
        session.flush()
        return reader.id


def gate(runtime: Runtime, subscriber_id: int, newsletter: str = "weekly") -> Gate:
    """Read afresh, from a session of its own: what is committed, nothing else."""
    with reading(runtime.factory) as session:
        reader = session.get(Subscriber, subscriber_id)
        if reader is None:
            return Gate(None, None, False)
        subscription = session.scalars(
            select(SubscriberNewsletter).where(
                SubscriberNewsletter.subscriber_id == subscriber_id,
                SubscriberNewsletter.newsletter == newsletter,
            )
        ).one_or_none()
        key = runtime.settings.signing_key()
        addresses = [reader.email]
        if not reader.email.startswith("sha256:"):
            addresses.append(address_hash(reader.email, key))
        suppressed = session.scalar(select(Suppression.id).where(Suppression.email.in_(addresses)))
        return Gate(
            subscription.status if subscription else None,
            reader.status,
            suppressed is not None,
            subscription.paused_until if subscription else None,
        )


def delivery(
    runtime: Runtime,
    subscriber_id: int,
    status: DeliveryStatus = DeliveryStatus.SENDING,
    message_id: str | None = None,
    slot: str = "2026-12-07T07:00",
) -> Delivery:
    """A delivery to the reader in an edition of its own (sending: the send is running)."""
    with unit_of_work(runtime.factory) as session:
        edition = Edition(
            newsletter="weekly",
            slot=slot,
            window_start=datetime(2026, 11, 30, tzinfo=UTC),
            window_end=datetime(2026, 12, 7, tzinfo=UTC),
            status=EditionStatus.SENDING,
        )
        session.add(edition)
        session.flush()
        row = Delivery(edition_id=edition.id, subscriber_id=subscriber_id, status=status)
        session.add(row)
        session.flush()
        if message_id is not None:
            row.provider_message_id = message_id.format(edition=edition.id, subscriber=subscriber_id)
        return row
