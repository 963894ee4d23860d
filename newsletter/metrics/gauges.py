"""What the store knows, read at each scrape: the ledger's deliveries by newsletter and status,
those due and how long the oldest has waited, each feed's last fetch, each newsletter's last
edition's duration, the readers by status. Read from the store, the figures match it exactly,
whichever process did the work, and survive restarts.

A store that cannot be read answers `newsletter_store_up 0` and nothing else of its own: a
scrape never fails for it, and the alert on it is the operator's word that it is down.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from newsletter.editions.slots import slot_time
from newsletter.settings import masked
from newsletter.store.availability import UNAVAILABLE
from newsletter.store.db import reading
from newsletter.store.models import Delivery, Edition, Feed, Subscriber
from newsletter.store.runtime import Runtime, driver_words
from newsletter.store.statuses import DeliveryStatus, EditionStatus, FeedStatus, SubscriberStatus
from newsletter.text import display_url

log = logging.getLogger("newsletter.metrics")
Clock = Callable[[], datetime]
# Editions whose pending deliveries may be due: prepared (at or after their slot) or being sent.
UNDER_WAY = (EditionStatus.READY, EditionStatus.SENDING)
FINISHED = (EditionStatus.COMPLETE, EditionStatus.PARTIAL)
# What says the store cannot be read now: the scrape answers `newsletter_store_up 0`.
UNREADABLE: tuple[type[Exception], ...] = (*UNAVAILABLE, SQLAlchemyError)


@dataclass
class Due:
    """A newsletter's deliveries whose moment has come, and since when the oldest has waited."""

    count: int = 0
    oldest: datetime | None = None


@dataclass
class Reading:
    """One scrape's figures, read in one read-only session."""

    deliveries: dict[tuple[str, str], int] = field(default_factory=dict)
    due: dict[str, Due] = field(default_factory=dict)
    feeds: list[Feed] = field(default_factory=list)
    durations: dict[str, tuple[float, datetime]] = field(default_factory=dict)
    readers: dict[str, int] = field(default_factory=dict)


class StoreCollector(Collector):
    """The store's figures, as Prometheus gauges, read afresh at each scrape."""

    def __init__(self, runtime: Runtime, clock: Clock) -> None:
        self.runtime = runtime
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.clock()
        up = GaugeMetricFamily("newsletter_store_up", "1 when the store could be read for this scrape.")
        try:
            with reading(self.runtime.factory) as session:
                found = read(session, self.runtime, now)
        except UNREADABLE as exc:
            words = driver_words(self.runtime.settings, exc) if isinstance(exc, SQLAlchemyError) else str(exc)
            log.warning("metrics: the store could not be read: %s", words)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families(found, self.runtime, now)


def read(session: Session, runtime: Runtime, now: datetime) -> Reading:
    """One scrape's figures, in one read-only session: the same moment of the store for all."""
    found = Reading()
    _deliveries(session, found)
    _due(session, runtime, now, found)
    configured = {feed.url for feed in runtime.settings.feeds}
    found.feeds = [
        feed for feed in session.scalars(select(Feed).order_by(Feed.url)) if feed.url in configured
    ]
    last = (
        select(Edition.newsletter, func.max(Edition.finished_at).label("at"))
        .where(Edition.status.in_(FINISHED), Edition.started_at.is_not(None))
        .group_by(Edition.newsletter)
        .subquery()
    )
    for edition in session.scalars(
        select(Edition).join(
            last, and_(Edition.newsletter == last.c.newsletter, Edition.finished_at == last.c.at)
        )
    ):
        assert edition.started_at is not None and edition.finished_at is not None
        took = max((edition.finished_at - edition.started_at).total_seconds(), 0.0)
        found.durations[edition.newsletter] = (took, edition.finished_at)
    found.readers = {
        str(status): count
        for status, count in session.execute(
            select(Subscriber.status, func.count()).group_by(Subscriber.status)
        )
    }
    return found


def _deliveries(session: Session, found: Reading) -> None:
    """Counted per edition on the ledger's claim index, then by newsletter; a pruned edition's
    kept counts too, so a newsletter's figures do not fall when old rows go."""
    per_edition = (
        select(Delivery.edition_id, Delivery.status, func.count().label("n"))
        .group_by(Delivery.edition_id, Delivery.status)
        .subquery()
    )
    counted: dict[tuple[str, str], int] = defaultdict(int)
    rows = session.execute(
        select(Edition.newsletter, per_edition.c.status, func.sum(per_edition.c.n))
        .join(per_edition, per_edition.c.edition_id == Edition.id)
        .group_by(Edition.newsletter, per_edition.c.status)
    )
    for newsletter, status, count in rows:
        counted[newsletter, str(status)] += int(count)
    for newsletter, tallies in session.execute(
        select(Edition.newsletter, Edition.tallies).where(Edition.tallies.is_not(None))
    ):
        for status, count in json.loads(tallies or "{}").items():
            counted[newsletter, status] += int(count)
    found.deliveries = dict(counted)


def _due(session: Session, runtime: Runtime, now: datetime, found: Reading) -> None:
    """Pending deliveries whose moment has come (the edition's slot, a local-time reader's own
    wave, or the later try their mailbox asked for) in an edition that may go (no editor's hold
    or approval awaited), and those a dead sender claimed and never handed over: due since that
    moment. A wave still ahead is not late, whatever the site's slot."""
    settings = runtime.settings
    lease = timedelta(minutes=settings.sending.lease_minutes)
    found.due = {name: Due() for name in settings.newsletters}
    for edition in session.scalars(select(Edition).where(Edition.status.in_(UNDER_WAY))):
        config = settings.newsletters.get(edition.newsletter)
        if edition.waiting(config.approval if config else "auto") is not None:
            continue  # an editor's to release: not late by any fault of the job's
        try:
            slot = slot_time(edition.slot, settings.zone)
        except ValueError:  # a slot not named by the schedule: its window's end
            slot = edition.window_end
        if edition.status != EditionStatus.READY:
            slot = min(slot, now)  # sent before its slot (by hand): due from now
        came = literal(slot, Delivery.due_at.type)
        wave = func.coalesce(Delivery.due_at, came)  # a local-time reader's moment, or the slot
        stale = and_(  # claimed by a sender silent past its lease, never handed over: to go again
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.claimed_at < now - lease,
            Delivery.handed_at.is_(None),
        )
        moment = case((stale, wave), else_=func.coalesce(Delivery.retry_at, wave))
        count, oldest = session.execute(
            select(func.count(), func.min(moment)).where(
                Delivery.edition_id == edition.id,
                or_(Delivery.status == DeliveryStatus.PENDING, stale),
                moment <= now,
            )
        ).one()
        if not count:
            continue
        due = found.due.setdefault(edition.newsletter, Due())
        due.count += count
        due.oldest = oldest if due.oldest is None else min(due.oldest, oldest)


def families(found: Reading, runtime: Runtime, now: datetime) -> Iterator[GaugeMetricFamily]:
    """The figures as metric families, every configured newsletter and feed named even at 0."""
    settings = runtime.settings
    deliveries = GaugeMetricFamily(
        "newsletter_deliveries",
        "Deliveries in the ledger (pruned editions' kept counts included), by newsletter and status.",
        labels=["newsletter", "status"],
    )
    for newsletter in sorted({*settings.newsletters, *(n for n, _s in found.deliveries)}):
        for status in DeliveryStatus:
            deliveries.add_metric(
                [newsletter, status.value], found.deliveries.get((newsletter, status.value), 0)
            )
    yield deliveries
    due = GaugeMetricFamily(
        "newsletter_deliveries_due",
        "Pending deliveries whose moment has come (slot passed, edition not held), by newsletter.",
        labels=["newsletter"],
    )
    oldest = GaugeMetricFamily(
        "newsletter_oldest_due_delivery_age_seconds",
        "How long the oldest due delivery has waited, by newsletter (0 when none is due).",
        labels=["newsletter"],
    )
    for newsletter, waiting in sorted(found.due.items()):
        due.add_metric([newsletter], waiting.count)
        age = (now - waiting.oldest).total_seconds() if waiting.oldest is not None else 0.0
        oldest.add_metric([newsletter], max(age, 0.0))
    yield due
    yield oldest
    yield from _feed_families(found.feeds)
    duration = GaugeMetricFamily(
        "newsletter_edition_duration_seconds",
        "How long the newsletter's last finished edition took to send, from its first send to its end.",
        labels=["newsletter"],
    )
    finished = GaugeMetricFamily(
        "newsletter_edition_finished_timestamp_seconds",
        "When the newsletter's last finished edition ended (Unix time).",
        labels=["newsletter"],
    )
    for newsletter, (took, at) in sorted(found.durations.items()):
        duration.add_metric([newsletter], took)
        finished.add_metric([newsletter], at.timestamp())
    yield duration
    yield finished
    readers = GaugeMetricFamily("newsletter_readers", "Readers by status.", labels=["status"])
    for standing in SubscriberStatus:
        readers.add_metric([standing.value], found.readers.get(standing.value, 0))
    yield readers


def _feed_families(feeds: list[Feed]) -> Iterator[GaugeMetricFamily]:
    status = GaugeMetricFamily(
        "newsletter_feed_last_fetch_status",
        "1 for the outcome of the feed's last fetch (ok, not-modified, partial, error), else 0.",
        labels=["feed", "status"],
    )
    seconds = GaugeMetricFamily(
        "newsletter_feed_last_fetch_duration_seconds", "How long the feed's last fetch took.", labels=["feed"]
    )
    fetched = GaugeMetricFamily(
        "newsletter_feed_last_fetch_timestamp_seconds",
        "When the feed was last fetched (Unix time).",
        labels=["feed"],
    )
    read = GaugeMetricFamily(
        "newsletter_feed_last_success_timestamp_seconds",
        "When the feed was last read in full or found unchanged (Unix time); 0: never.",
        labels=["feed"],
    )
    for feed in feeds:
        name = display_url(masked(feed.url))  # no credentials in a label
        for outcome in FeedStatus:
            status.add_metric([name, outcome.value], 1 if feed.last_status == outcome else 0)
        if feed.last_fetch_seconds is not None:
            seconds.add_metric([name], feed.last_fetch_seconds)
        if feed.last_fetched_at is not None:
            fetched.add_metric([name], feed.last_fetched_at.timestamp())
        read.add_metric([name], feed.last_ok_at.timestamp() if feed.last_ok_at else 0)
    yield from (status, seconds, fetched, read)
