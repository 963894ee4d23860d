"""The scheduled job: feeds refreshed every few minutes, each newsletter's edition at its slot,
a dead sender's edition taken over within its lease, a daily maintenance, until a signal stops it.

APScheduler 3 only wakes the process: at each newsletter's next slot (computed by the project's
own slot arithmetic, which knows the changes of time), at each refresh and at the maintenance
hour. Every decision, what is due, what was missed, is taken by the services from the database
(`services.schedule`), so it holds across a restart and between several schedulers. Jobs run one
at a time, in one worker thread, and a stop flag ends a send between batches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger

from newsletter.errors import NewsletterError
from newsletter.services import (
    archive,
    bounces,
    breaking,
    events,
    feeds,
    local_time,
    maintenance,
    schedule,
    timetable,
)
from newsletter.services.alerts import alert
from newsletter.store.runtime import Runtime

log = logging.getLogger("newsletter.schedule")
Clock = Callable[[], datetime]
# How often alerts held by quiet hours or stopped mid-send are looked for.
ALERT_SECONDS = 60.0


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Runner:
    """The job's work, one method per job, each taking its moment from `clock` (tests give a
    clock of their own and call the methods: no test waits for wall-clock time)."""

    def __init__(self, runtime: Runtime, clock: Clock = wall_clock) -> None:
        self.runtime = runtime
        self.clock = clock
        self.stop = threading.Event()
        self.alerted_feeds: set[tuple[str, datetime | None]] = set()
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(1)},  # one job at a time: a send never races a fetch
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def refresh(self) -> None:
        """Fetch every feed, then let every newsletter catch up: an edition within its review
        time is composed, a due edition goes out (or a stopped one is finished), a slot past the
        grace is recorded as missed; then the WebSub hubs are told of the feeds that changed."""
        for step in (self.fetch, self.breaking, self.read_bounces, self.settle):
            if self.stop.is_set():
                return
            self._survive(step)
        for name in self.runtime.settings.digests():
            if self.stop.is_set():
                return
            self._survive(partial(self.review, name, reschedule=False))
            self._survive(partial(self.edition, name, reschedule=False))
        self._survive(self.push)

    def _survive(self, step: Callable[[], object]) -> None:
        """One step of the refresh: whatever goes wrong in it is logged, and the others run."""
        try:
            step()
        except NewsletterError as exc:
            log.error("%s", exc)
        except Exception:
            log.exception("a step of the refresh failed")

    def settle(self) -> None:
        """Stored provider events read, uncertain deliveries nothing settled in time sent again."""
        for report in events.settle(self.runtime, self.clock(), self.stop):
            log.info("edition %d: uncertain deliveries sent again: %s", report.edition_id, report.status)

    def take_over(self) -> None:
        """Every half lease: an edition whose sender died mid-send (its claims silent past their
        lease) is finished here, within a minute, not at the next refresh."""
        for run in schedule.take_over(self.runtime, self.clock(), self.stop):
            log.info("%s", run.told())

    def fetch(self) -> None:
        try:
            reports = feeds.fetch(self.runtime, stop=self.stop)
        except NewsletterError as exc:
            log.error("fetching the feeds: %s", exc)
            return
        log.info("feeds: %d read, %d failed", sum(r.read for r in reports), sum(not r.read for r in reports))
        self.alert_failing_feeds()

    def breaking(self) -> None:
        """Alerts due: opened by a feed's trigger or an editor, past their quiet hours, or
        stopped mid-send; every minute, and at once after each fetch."""
        breaking.trigger(self.runtime, self.clock())
        for report in breaking.send_due(self.runtime, self.clock(), self.stop):
            log.info("alert %d: %s, %d sent", report.edition_id, report.status, report.sent)

    def push(self) -> None:
        """The WebSub hubs told of the feeds that changed (after the sends: never before one)."""
        if not self.runtime.settings.syndication.hubs:
            return
        report = archive.push(self.runtime, self.clock())
        if report.attempts:
            log.info("WebSub hubs: %d accepted, %d to try again", len(report.accepted), len(report.failed))

    def read_bounces(self) -> None:
        """The bounce mailbox, when the settings name one: read at every refresh, so a bounced
        reader is suppressed before the next edition."""
        settings = self.runtime.settings
        if not timetable.reads_bounces(settings):
            return
        try:
            boxes = bounces.open_mailboxes(settings, None, imap=False)
            report = bounces.read_mailboxes(self.runtime, boxes, self.clock())
        except NewsletterError as exc:
            log.error("reading the bounce mailbox: %s", exc)
            return
        if report.handled:
            log.info("bounce mailbox: %s", ", ".join(f"{n} {what}" for what, n in report.counts().items()))

    def edition(self, newsletter: str, reschedule: bool = True) -> schedule.EditionRun:
        """A newsletter's slot: fetch first, then send what is due."""
        try:
            if reschedule:
                self.fetch()
            if self.runtime.settings.newsletter(newsletter).local_time:  # in waves
                runs = local_time.run(self.runtime, newsletter, self.clock(), self.stop)
            else:
                runs = [schedule.run_edition(self.runtime, newsletter, self.clock(), self.stop)]
        finally:  # whatever happened (the store down), the next slot is kept
            if reschedule:
                self.wake_for(newsletter)
        for run in runs:
            log.info("%s", run.told())
        return next((run for run in runs if run.action != "nothing"), runs[-1])

    def review(self, newsletter: str, reschedule: bool = True) -> schedule.EditionRun:
        """`review_minutes` before a newsletter's slot: fetch first, then compose its edition and
        mail the editors (the refresh catches up on one missed while down)."""
        try:
            if reschedule:
                self.fetch()
            run = schedule.review_due(self.runtime, newsletter, self.clock())
        finally:
            if reschedule:
                self.wake_for_review(newsletter)
        if run.action != "nothing":
            log.info("%s (for review)", run.told())
        return run

    def maintain(self) -> None:
        pruned = maintenance.prune(self.runtime, self.clock())
        log.info(
            "maintenance: %d editions' delivery rows pruned (%d rows)", pruned.editions, pruned.deliveries
        )
        self.wake_for_maintenance()

    def alert_failing_feeds(self) -> None:
        """Once per feed and failing spell: a feed failing for longer than the setting says."""
        for feed in timetable.failing_feeds(self.runtime, self.clock()):
            spell = (feed.url, feed.last_ok_at)
            if spell not in self.alerted_feeds:
                self.alerted_feeds.add(spell)
                alert(self.runtime, "a feed keeps failing", [f"{feed.url}: {feed.last_error or 'no answer'}"])

    # --- waking ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Schedule every job (explicit ids, replacing any earlier copy) and catch up at once."""
        settings = self.runtime.settings
        every = timedelta(minutes=settings.scheduler.refresh_minutes)
        self.scheduler.add_job(
            self.refresh,
            "interval",
            seconds=every.total_seconds(),
            id="feeds",
            replace_existing=True,
            next_run_time=self.clock(),  # catch up now: an edition missed while down, a stopped send
        )
        self.scheduler.add_job(
            self._survive,
            "interval",
            args=[self.take_over],
            seconds=max(settings.sending.lease_minutes * 30, 1.0),
            id="claims",
            replace_existing=True,
        )
        if settings.alerts():
            self.scheduler.add_job(
                self._survive,
                "interval",
                args=[self.breaking],
                seconds=ALERT_SECONDS,
                id="alerts",
                replace_existing=True,
            )
        for name in settings.digests():
            self.wake_for(name)
            self.wake_for_review(name)
        self.wake_for_maintenance()
        self.scheduler.start()

    def wake_for(self, newsletter: str) -> None:
        """The next wake for the newsletter: its next slot, as the slot arithmetic has it (a
        local-time newsletter's: its next wave, or its next edition's preparation)."""
        when = next(
            job.next_run
            for job in timetable.jobs(self.runtime, self.clock())
            if job.job_id == f"edition:{newsletter}"
        )
        self.scheduler.add_job(
            self.edition,
            DateTrigger(run_date=when),
            args=[newsletter],
            id=f"edition:{newsletter}",
            replace_existing=True,
        )

    def wake_for_review(self, newsletter: str) -> None:
        """The newsletter's next review time, when it has one."""
        when = timetable.review_time(self.runtime.settings, newsletter, self.clock())
        if when is not None:
            self.scheduler.add_job(
                self.review,
                DateTrigger(run_date=when),
                args=[newsletter],
                id=f"review:{newsletter}",
                replace_existing=True,
            )

    def wake_for_maintenance(self) -> None:
        when = next(
            job.next_run for job in timetable.jobs(self.runtime, self.clock()) if job.job_id == "maintenance"
        )
        self.scheduler.add_job(
            self.maintain, DateTrigger(run_date=when), id="maintenance", replace_existing=True
        )

    def shutdown(self) -> None:
        """Stop between batches: the batch in flight is finished and recorded, then out."""
        self.stop.set()
        self.scheduler.shutdown(wait=True)
