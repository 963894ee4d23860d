"""What the scheduled job does and when, decided from the database, so it holds across restarts
and between several schedulers: a slot's edition goes out once, within the grace; past it, the
slot is recorded as missed. The scheduler only wakes the process; every decision is here."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from newsletter.editions.edition import (
    FINISHED,
    decided,
    due_slot,
    mark_missed,
    skip_stale_holds,
    upcoming_slot,
)
from newsletter.editions.prepare import EmptyEdition, NoNews
from newsletter.editions.slots import next_slot_after, slot_name
from newsletter.ingest.fetch import display_url
from newsletter.sending.report import SendError, SendReport
from newsletter.services import bounces, sending
from newsletter.services.alerts import alert
from newsletter.services.editions import grace
from newsletter.services.sending import EditionHeld, NotDue
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Edition, Feed
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import READ, EditionStatus

log = logging.getLogger("newsletter.schedule")


@dataclass(frozen=True)
class EditionRun:
    """What a newsletter's job did at `now`: sent (or finished) its edition, waited for news
    within the grace, recorded its slot as missed, stopped on the provider's refusal, or nothing."""

    newsletter: str
    slot: datetime
    action: str  # sent, waiting, missed, stopped, nothing
    report: SendReport | None = None
    problem: str | None = None


@dataclass(frozen=True)
class JobTime:
    job_id: str
    what: str
    next_run: datetime


def run_edition(runtime: Runtime, newsletter: str, now: datetime, stop: threading.Event) -> EditionRun:
    """The newsletter's job at `now`: send the due edition (or finish a stopped one) while inside
    the grace; past it, record the slot as missed and tell the operators."""
    settings = runtime.settings
    slot = due_slot(settings, newsletter, now)
    with unit_of_work(runtime.factory) as session:
        for skipped in skip_stale_holds(session, settings, newsletter, slot):
            log.warning("the %s edition of %s was %s", newsletter, skipped.slot, skipped.note)
        edition = session.scalars(
            select(Edition).where(Edition.newsletter == newsletter, Edition.slot == slot_name(slot))
        ).one_or_none()
        approval = settings.newsletter(newsletter).approval
        status = edition.status if edition is not None else None
        waiting = edition.waiting(approval) if edition is not None else None
        released = edition is not None and decided(edition, approval)
    if status in FINISHED:
        return EditionRun(newsletter, slot, "nothing")
    if waiting is not None:  # an editor's hold: not sent, not missed, until released or the next slot
        return EditionRun(newsletter, slot, "held", problem=waiting)
    if status in (EditionStatus.READY, EditionStatus.SENDING) or released or now - slot <= grace(settings):
        return _send(runtime, newsletter, slot, now, stop)
    with unit_of_work(runtime.factory) as session:
        missed = mark_missed(session, settings, newsletter, slot)
    if missed is None:
        return EditionRun(newsletter, slot, "nothing")
    when = f"{slot:%Y-%m-%d %H:%M %Z}"
    alert(
        runtime,
        f"the {newsletter} edition of {when} was missed",
        [
            f"its slot passed more than {settings.scheduler.misfire_grace_minutes:g} minutes ago with "
            "nothing sent; its articles go with the next edition"
        ],
    )
    return EditionRun(newsletter, slot, "missed")


def _send(
    runtime: Runtime, newsletter: str, slot: datetime, now: datetime, stop: threading.Event
) -> EditionRun:
    when = f"{slot:%Y-%m-%d %H:%M %Z}"
    try:
        report = sending.send(runtime, newsletter, now, stop=stop)
    except NotDue:  # another scheduler, or an operator, sent it meanwhile
        return EditionRun(newsletter, slot, "nothing")
    except EditionHeld as exc:  # an editor held it meanwhile
        return EditionRun(newsletter, slot, "held", problem=str(exc))
    except (NoNews, EmptyEdition) as exc:  # tried again at each refresh until the grace is over
        log.warning("the %s edition of %s waits: %s", newsletter, when, exc)
        return EditionRun(newsletter, slot, "waiting", problem=str(exc))
    except SendError as exc:
        alert(runtime, f"the {newsletter} edition of {when} stopped", [str(exc)])
        return EditionRun(newsletter, slot, "stopped", problem=str(exc))
    if report.status == EditionStatus.PARTIAL:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(report.counts.items()))
        alert(
            runtime,
            f"the {newsletter} edition of {when} ended partial",
            [counts, f"`newsletter deliveries {report.edition_id} --status failed` lists who and why"],
        )
    return EditionRun(newsletter, slot, "sent", report)


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
    every = timedelta(minutes=settings.scheduler.refresh_minutes)
    feeds = "fetch every feed" + (" and read the bounce mailbox" if bounces.configured(settings) else "")
    found = [JobTime("feeds", f"{feeds}, every {every}", max(now, last + every) if last else now)]
    for name in sorted(settings.newsletters):
        found.append(JobTime(f"edition:{name}", f"the {name} edition", upcoming_slot(settings, name, now)))
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
    a newsletter partial or missed, a due edition not sent within the grace, failing feeds."""
    settings = runtime.settings
    found: list[str] = []
    with reading(runtime.factory) as session:
        for name in sorted(settings.newsletters):
            slot = due_slot(settings, name, now)
            last = session.scalars(
                select(Edition).where(Edition.newsletter == name).order_by(Edition.window_end.desc()).limit(1)
            ).one_or_none()
            if last is not None and last.status in (EditionStatus.PARTIAL, EditionStatus.MISSED):
                found.append(f"the {name} edition of {last.slot} is {last.status}")
            due = session.scalar(
                select(Edition.status).where(Edition.newsletter == name, Edition.slot == slot_name(slot))
            )
            if due not in FINISHED and now - slot > grace(settings):
                found.append(
                    f"the {name} edition of {slot_name(slot)} has not gone out (is `newsletter run` running?)"
                )
    for feed in failing_feeds(runtime, now):
        since = (
            f"{feed.last_ok_at.astimezone(settings.zone):%Y-%m-%d %H:%M %Z}" if feed.last_ok_at else "ever"
        )
        found.append(f"feed {display_url(feed.url)} not read since {since}: {feed.last_error or 'no answer'}")
    return found
