"""The scheduled job's timetable, read from the settings and the store: when each job runs
next, and what is late (for `status`, `run` and the scheduler). It decides nothing and sends
nothing: `schedule` does, so reading it stays light."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.editions.edition import (
    FINISHED,
    begun,
    due_slot,
    open_slot_after,
    slot_label,
    upcoming_slot,
)
from newsletter.editions.slots import next_slot_after, slot_name, wall_clock
from newsletter.services import local_time
from newsletter.services.editions import grace
from newsletter.settings import SendingSettings, Settings
from newsletter.store import ledger
from newsletter.store.db import reading
from newsletter.store.models import Delivery, Edition, Feed
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import READ, DeliveryStatus, EditionStatus
from newsletter.text import display_url


@dataclass(frozen=True)
class JobTime:
    job_id: str
    what: str
    next_run: datetime


def reads_bounces(settings: Settings) -> bool:
    """A bounce mailbox is named in the settings: the feeds job reads it then."""
    return settings.bounce_maildir is not None or settings.bounce_imap_host is not None


def review_time(settings: Settings, newsletter: str, now: datetime) -> datetime | None:
    """When the newsletter's next edition is composed for review: `review_minutes` before the
    first slot for which that is still ahead; None when it has no review."""
    ahead = timedelta(minutes=settings.newsletter(newsletter).review_minutes)
    if not ahead:
        return None
    slot = upcoming_slot(settings, newsletter, now)
    while slot - ahead <= now:
        slot = upcoming_slot(settings, newsletter, slot)
    return slot - ahead


def failing_feeds(runtime: Runtime, now: datetime) -> list[Feed]:
    """Feeds not read for longer than `[scheduler] feed_alert_hours`."""
    settings = runtime.settings
    limit = now - timedelta(hours=settings.scheduler.feed_alert_hours)
    urls = [feed.url for feed in settings.feeds]
    with reading(runtime.factory) as session:
        feeds = session.scalars(select(Feed).where(Feed.url.in_(urls))).all() if urls else []
    return [
        f for f in feeds if f.last_status not in READ and (f.last_ok_at or f.last_fetched_at or now) < limit
    ]


def jobs(runtime: Runtime, now: datetime) -> list[JobTime]:
    """Each job's next run, computed from the settings and the store (another process cannot
    see the scheduler's memory)."""
    settings = runtime.settings
    with reading(runtime.factory) as session:
        last = session.scalar(select(func.max(Feed.last_fetched_at)))
        # an edition sent early (--now) is complete: the job's next run is the one after it
        slots = {
            name: local_time.next_wake(session, settings, name, now)
            if settings.newsletter(name).local_time
            else open_slot_after(session, settings, name, now)
            for name in settings.digests()
        }
    every = timedelta(minutes=settings.scheduler.refresh_minutes)
    feeds = "fetch every feed" + (" and read the bounce mailbox" if reads_bounces(settings) else "")
    found = [JobTime("feeds", f"{feeds}, every {every}", max(now, last + every) if last else now)]
    for name in settings.digests():
        found.append(JobTime(f"edition:{name}", f"the {name} edition", slots[name]))
        review = review_time(settings, name, now)
        if review is not None:
            found.append(JobTime(f"review:{name}", f"the {name} edition composed for review", review))
    found.append(
        JobTime(
            "maintenance",
            "prune old delivery rows and outbox files",
            next_slot_after("*", settings.scheduler.maintenance_at, settings.zone, now),
        )
    )
    return found


def problems(runtime: Runtime, now: datetime) -> list[str]:
    """What a monitoring system should hear of (`newsletter status --check`): the last edition of
    a newsletter partial or missed, a due edition not sent within the grace (once the newsletter
    has begun: what `run` records as missed), a send stopped unfinished or left by a silent
    sender, failing feeds."""
    settings = runtime.settings
    zone = settings.zone
    found: list[str] = []
    with reading(runtime.factory) as session:
        for name in settings.digests():
            slot = due_slot(settings, name, now)
            last = session.scalars(
                select(Edition).where(Edition.newsletter == name).order_by(Edition.window_end.desc()).limit(1)
            ).one_or_none()
            if last is not None and last.status in (EditionStatus.PARTIAL, EditionStatus.MISSED):
                found.append(f"the {name} edition of {slot_label(last.slot, zone)} is {last.status}")
            if settings.newsletter(name).local_time:  # in waves: one late wave is the problem
                found += _late_waves(session, settings, name, now)
                continue
            due = session.scalar(
                select(Edition.status).where(Edition.newsletter == name, Edition.slot == slot_name(slot))
            )
            if due not in FINISHED and now - slot > grace(settings) and begun(session, name, slot):
                found.append(
                    f"the {name} edition of {wall_clock(slot)} has not gone out "
                    "(is `newsletter run` running?)"
                )
        lease = timedelta(minutes=settings.sending.lease_minutes)
        stale = ledger.stale_claims(session, now - lease)
        for edition in session.scalars(
            select(Edition).where(Edition.id.in_(list(stale))).order_by(Edition.id)
        ):
            count, silent = stale[edition.id]
            found.append(
                f"the {edition.newsletter} edition of {slot_label(edition.slot, zone)} has {count} "
                "deliveries held by a sender "
                f"silent since {silent.astimezone(zone):%Y-%m-%d %H:%M:%S %Z} (past its lease): "
                "a live sender or `newsletter run` takes them over "
                f"(at once: `newsletter send --edition {edition.id}`)"
            )
        found += stopped_sends(session, settings, now)
    for feed in failing_feeds(runtime, now):
        since = wall_clock(feed.last_ok_at, settings.zone) if feed.last_ok_at else "ever"
        found.append(f"feed {display_url(feed.url)} not read since {since}: {feed.last_error or 'no answer'}")
    return found


def _late_waves(session: Session, settings: Settings, newsletter: str, now: datetime) -> list[str]:
    """A local-time newsletter's readers whose wave passed beyond the grace with their delivery
    still pending (the job that records them missed, or sends them, has not run)."""
    rows = session.execute(
        select(Edition.slot, func.count(), func.min(Delivery.due_at))
        .join(Delivery, Delivery.edition_id == Edition.id)
        .where(
            Edition.newsletter == newsletter,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.due_at < now - grace(settings),
        )
        .group_by(Edition.slot)
        .order_by(Edition.slot)
    ).all()
    return [
        f"the {newsletter} edition of {slot_label(slot, settings.zone)} has {count} readers whose wave "
        f"of {wall_clock(first, settings.zone)} has not gone out (is `newsletter run` running?)"
        for slot, count, first in rows
        if first is not None
    ]


# A sender with nothing claimed naps at most this long past a deferred delivery's retry time
# (Sender._deferred_wait's cap).
DEFERRED_NAP = timedelta(minutes=1)


def longest_pause(sending: SendingSettings) -> timedelta:
    """How long a live sender may leave its edition's ledger untouched with nothing claimed: a
    busy provider's whole backoff streak (each refused try undoes its claim), the store tried
    again, a nap past a deferred delivery's time, and a lease on top, as for a silent sender."""
    busy = sending.max_retries * sending.max_backoff_seconds
    return timedelta(seconds=busy + sending.store_retry_seconds, minutes=sending.lease_minutes) + DEFERRED_NAP


def stopped_sends(session: Session, settings: Settings, now: datetime) -> list[str]:
    """Editions that began going out and stopped (the provider refused, the process ended) with
    deliveries ready to go, no sender holding any, and nothing in their ledger changed for longer
    than a live sender pauses (backing off, napping, waiting for the store): the newest claim,
    hand-over, send, provider event or retry time come, else the start. A silent sender's claims
    are told apart."""
    ready = (
        (Delivery.status == DeliveryStatus.PENDING)
        & (Delivery.retry_at.is_(None) | (Delivery.retry_at <= now))
        & (Delivery.due_at.is_(None) | (Delivery.due_at <= now))  # a later wave is not stopped
    )
    traces = [
        func.max(Delivery.claimed_at),
        func.max(Delivery.handed_at),
        func.max(Delivery.sent_at),
        func.max(Delivery.provider_event_at),
        func.max(Delivery.retry_at).filter(Delivery.retry_at <= now),
    ]
    tally = (
        select(
            Delivery.edition_id,
            func.count().filter(Delivery.status == DeliveryStatus.SENDING).label("held"),
            func.count().filter(ready).label("ready"),
            *(trace.label(f"trace{i}") for i, trace in enumerate(traces)),
        )
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(Edition.status == EditionStatus.SENDING)
        .group_by(Delivery.edition_id)
        .subquery()
    )
    rows = session.execute(
        select(Edition, tally.c.ready, *(tally.c[f"trace{i}"] for i in range(len(traces))))
        .join(tally, tally.c.edition_id == Edition.id)
        .where(tally.c.held == 0, tally.c.ready > 0)
        .order_by(Edition.id)
    ).all()
    quiet = now - longest_pause(settings.sending)
    found = []
    for edition, count, *stamps in rows:
        last = max((t for t in (edition.started_at, *stamps) if t is not None), default=None)
        if last is not None and last >= quiet:
            continue  # a live sender may be backing off, napping or between two claims
        since = f" since {last.astimezone(settings.zone):%Y-%m-%d %H:%M:%S %Z}" if last else ""
        found.append(
            f"the {edition.newsletter} edition of {slot_label(edition.slot, settings.zone)} "
            f"stopped sending with {count} {'delivery' if count == 1 else 'deliveries'} pending and no "
            f"sender at work{since}: `newsletter send --edition {edition.id}` resumes it"
        )
    return found
