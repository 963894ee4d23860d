"""Editions: the next one to go out, the list, one edition and its deliveries."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, select

from newsletter.editions.edition import EditionError, EditionInfo, draft, next_slot
from newsletter.settings import Settings
from newsletter.store import ledger, waves
from newsletter.store.db import reading
from newsletter.store.models import Delivery, Edition, Subscriber
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import DeliveryStatus
from newsletter.store.waves import Waves

# The order deliveries are listed in: what needs a person's eye first.
LISTED = (
    DeliveryStatus.FAILED,
    DeliveryStatus.SENDING,
    DeliveryStatus.PENDING,
    DeliveryStatus.SUPPRESSED,
    DeliveryStatus.SKIPPED,
    DeliveryStatus.SENT,
)


@dataclass(frozen=True)
class EditionSummary:
    edition: EditionInfo
    counts: dict[DeliveryStatus, int] = field(default_factory=dict)
    waves: Waves | None = None  # a local-time edition's, while its delivery rows are kept


@dataclass(frozen=True)
class DeliveryRow:
    """One delivery as an operator needs to see it: who, what became of it, and why."""

    delivery_id: int
    email: str
    name: str | None
    status: DeliveryStatus
    detail: str | None
    attempts: int
    sent_at: datetime | None
    message_id: str | None
    provider_event: str | None  # the provider's word on it (an event), and when
    provider_event_at: datetime | None


def grace(settings: Settings) -> timedelta:
    """How long after its slot an edition not yet made still goes out."""
    return timedelta(minutes=settings.scheduler.misfire_grace_minutes)


def next_edition(runtime: Runtime, newsletter: str, now: datetime) -> EditionSummary:
    """The edition every command means by default: the next one to go out (see `next_slot`)."""
    settings = runtime.settings
    with reading(runtime.factory) as session:
        edition = draft(
            session, settings, newsletter, next_slot(session, settings, newsletter, now, grace(settings))
        )
        counts = ledger.counts(session, edition.id) if edition.id is not None else {}
        shown = waves.waves(session, [edition.id]) if edition.id is not None else {}
        return EditionSummary(EditionInfo.of(edition), counts, shown.get(edition.id or 0))


def editions(runtime: Runtime, limit: int = 50) -> list[EditionSummary]:
    """The latest editions, newest first, with their deliveries per status."""
    with reading(runtime.factory) as session:
        rows = session.scalars(select(Edition).order_by(Edition.id.desc()).limit(limit)).all()
        tallies = ledger.tallies(session, [e.id for e in rows])
        shown = waves.waves(session, [e.id for e in rows])
        return [
            EditionSummary(EditionInfo.of(e), _counts(e, tallies.get(e.id, {})), shown.get(e.id))
            for e in rows
        ]


def edition(runtime: Runtime, edition_id: int) -> EditionSummary:
    """One edition with its deliveries per status."""
    with reading(runtime.factory) as session:
        row = session.get(Edition, edition_id)
        if row is None:
            raise EditionError(f"no edition {edition_id}")
        counts = _counts(row, ledger.counts(session, edition_id))
        return EditionSummary(EditionInfo.of(row), counts, waves.waves(session, [edition_id]).get(edition_id))


def _counts(edition: Edition, live: dict[DeliveryStatus, int]) -> dict[DeliveryStatus, int]:
    """The deliveries per status: counted from the ledger, or kept on the edition once pruned."""
    if edition.tallies and not live:
        return {DeliveryStatus(status): n for status, n in json.loads(edition.tallies).items()}
    return live


def deliveries(
    runtime: Runtime, edition_id: int, statuses: list[DeliveryStatus] | None = None, limit: int | None = None
) -> list[DeliveryRow]:
    """An edition's deliveries, failures first, with each reader's address and the provider's words."""
    edition(runtime, edition_id)  # a clear error for an edition that does not exist
    first = case(
        {status: rank for rank, status in enumerate(LISTED)}, value=Delivery.status, else_=len(LISTED)
    )
    query = (
        select(Delivery, Subscriber.email, Subscriber.name)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.edition_id == edition_id)
        .order_by(first, Delivery.id)
        .limit(limit)
    )
    if statuses:
        query = query.where(Delivery.status.in_(statuses))
    with reading(runtime.factory) as session:
        return [
            DeliveryRow(
                d.id,
                email,
                name,
                DeliveryStatus(d.status),
                d.detail,
                d.attempts,
                d.sent_at,
                d.provider_message_id,
                d.provider_event,
                d.provider_event_at,
            )
            for d, email, name in session.execute(query)
        ]
