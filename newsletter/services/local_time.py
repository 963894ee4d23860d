"""A local-time newsletter's job (`local_time = true`): each edition composed once, before the
earliest reader's hour (and `review_minutes` before that), its window closing then; then sent in
waves, each reader's delivery claimed only once their hour has come (`ledger.claim`), so a
restart, a second scheduler or a manual send never sends a wave early or twice. A wave the job
was down for goes within the grace; later, its readers' deliveries are recorded as missed.

Everything is decided from the database, as for the site-time job (`services.schedule`)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.editions.compose import Composer
from newsletter.editions.edition import FINISHED, begun, close_window, decided, mark_missed, open_edition
from newsletter.editions.prepare import EmptyEdition, NoNews, check_news, prepare
from newsletter.editions.slots import last_slot, next_slot_after, slot_name, slot_time, wall_clock
from newsletter.editions.waves import moments
from newsletter.services.alerts import alert
from newsletter.services.editions import grace
from newsletter.services.schedule import EditionRun, send_due
from newsletter.settings import Settings
from newsletter.store import ledger, waves
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Delivery, Edition
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import OPEN, DeliveryStatus, EditionStatus

log = logging.getLogger("newsletter.schedule")
# A wave is missed only this late at least, whatever the grace: the job wakes a moment after
# each wave's time, and a grace of 0 must not make that moment a miss.
LATE = timedelta(minutes=1)


def span(session: Session, settings: Settings, newsletter: str, slot: datetime) -> tuple[datetime, datetime]:
    """The first and last reader's moment for the edition of `slot`, from the zones its readers
    hold now (none: the site's slot alone)."""
    config = settings.newsletter(newsletter)
    found = moments(
        slot_name(slot), config.at, waves.newsletter_zones(session, newsletter) or [None], settings.zone
    )
    return min(found.values()), max(found.values())


def run(runtime: Runtime, newsletter: str, now: datetime, stop: threading.Event) -> list[EditionRun]:
    """The job at `now`: the last slot's edition while any of its waves is unsent (prepared
    now if the job was down, missed as a whole past its last wave's grace), then the next
    slot's once its preparation time has come (waves of two editions may overlap)."""
    settings = runtime.settings
    config = settings.newsletter(newsletter)
    ahead = timedelta(minutes=config.review_minutes)
    previous = last_slot(config.days, config.at, settings.zone, now)
    upcoming = next_slot_after(config.days, config.at, settings.zone, now)
    with reading(runtime.factory) as session:  # older editions whose far zones' waves are still to go
        under_way = session.scalars(
            select(Edition.slot).where(
                Edition.newsletter == newsletter,
                Edition.status.in_((EditionStatus.READY, EditionStatus.SENDING)),
            )
        ).all()
    older = set()
    for name in under_way:
        try:
            older.add(slot_time(name, settings.zone))
        except ValueError:  # a slot the schedule never names (an edition sent by hand)
            continue
    runs = []
    for slot in sorted({previous, upcoming, *older}):
        with reading(runtime.factory) as session:
            status = session.scalar(
                select(Edition.status).where(
                    Edition.newsletter == newsletter, Edition.slot == slot_name(slot)
                )
            )
            first, last = span(session, settings, newsletter, slot)
            started = begun(session, newsletter, slot)
        if status in FINISHED:
            continue
        if now < first - ahead:
            runs.append(
                EditionRun(
                    newsletter,
                    slot,
                    "nothing",
                    reason=f"its first wave is at {wall_clock(first, settings.zone)}",
                )
            )
            continue
        if status is None and not started and now - first > grace(settings):
            # as a site-time slot before the first edition: the newsletter starts with the next
            reason = "its first wave came before the newsletter's first edition"
            runs.append(EditionRun(newsletter, slot, "nothing", reason=reason))
            continue
        if status in (None, EditionStatus.DRAFT) and now - last > grace(settings):
            runs.append(_missed(runtime, newsletter, slot))
            continue
        runs.append(_waves(runtime, newsletter, slot, now, stop))
    return runs or [EditionRun(newsletter, upcoming, "nothing", reason="its editions went out")]


def _missed(runtime: Runtime, newsletter: str, slot: datetime) -> EditionRun:
    """Every wave of a slot passed beyond the grace with nothing prepared: the slot is missed."""
    settings = runtime.settings
    with unit_of_work(runtime.factory) as session:
        first = not begun(session, newsletter, slot)
        missed = mark_missed(session, settings, newsletter, slot)
    if missed is None:
        reason = "its slot came before the newsletter's first edition" if first else "it went out meanwhile"
        return EditionRun(newsletter, slot, "nothing", reason=reason)
    alert(
        runtime,
        f"the {newsletter} edition of {wall_clock(slot)} was missed",
        ["every wave passed beyond the grace with nothing sent; its articles go with the next edition"],
    )
    return EditionRun(newsletter, slot, "missed")


def _waves(
    runtime: Runtime, newsletter: str, slot: datetime, now: datetime, stop: threading.Event
) -> EditionRun:
    """The edition of `slot` prepared once (its window closing now), its waves past the grace
    recorded as missed, those due sent; complete once its last wave is."""
    settings = runtime.settings
    approval = settings.newsletter(newsletter).approval
    try:
        with unit_of_work(runtime.factory) as session:
            edition = open_edition(session, settings, newsletter, slot)
            session.refresh(edition, with_for_update=True)  # another scheduler waits, then finds it prepared
            if edition.status == EditionStatus.DRAFT:
                if now < edition.window_end:
                    close_window(session, settings, edition, now)
                for warning in check_news(session, settings, edition):
                    log.warning("the %s edition of %s: %s", newsletter, wall_clock(slot), warning)
                prepare(session, settings, edition, Composer(settings.templates_path()))
            waiting = edition.waiting(approval)
            # An editor's decision is not a job down: held, nothing is missed; released, the
            # waves that passed meanwhile go at once.
            decision = decided(edition, approval)
            missed = 0 if decision else waves.miss(session, edition.id, now - max(grace(settings), LATE))
            due = session.scalar(
                select(func.count()).where(
                    Delivery.edition_id == edition.id,
                    Delivery.status == DeliveryStatus.PENDING,
                    Delivery.due_at <= now,
                )
            )
            if not due:  # nothing to send now: done when no wave is left
                tally = ledger.counts(session, edition.id)
                if not any(tally.get(status, 0) for status in OPEN):
                    ledger.finish(edition, tally)
            edition_id = edition.id
    except (NoNews, EmptyEdition) as exc:
        log.warning("the %s edition of %s waits: %s", newsletter, wall_clock(slot), exc)
        return EditionRun(newsletter, slot, "waiting", problem=str(exc))
    if missed:
        alert(
            runtime,
            f"{missed} readers missed their wave of the {newsletter} edition of {wall_clock(slot)}",
            [
                f"their hour passed more than {settings.scheduler.misfire_grace_minutes:g} minutes ago "
                "while the job was down; they get the next edition"
            ],
        )
    if waiting is not None:
        return EditionRun(newsletter, slot, "held", problem=waiting)
    if not due:
        return EditionRun(newsletter, slot, "nothing", reason="no wave is due")
    return send_due(runtime, newsletter, slot, now, stop, edition_id, due_by=now)


def next_wake(session: Session, settings: Settings, newsletter: str, now: datetime) -> datetime:
    """The next moment the newsletter's job has work: a wave of a prepared edition, or the
    preparation of the next slot's (its first reader's hour less `review_minutes`)."""
    config = settings.newsletter(newsletter)
    wave = session.scalar(
        select(func.min(Delivery.due_at))
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(
            Edition.newsletter == newsletter,
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.due_at > now,
        )
    )
    slot = next_slot_after(config.days, config.at, settings.zone, now)
    for _slot in range(400):  # the first slot not yet prepared whose preparation is ahead
        status = session.scalar(
            select(Edition.status).where(Edition.newsletter == newsletter, Edition.slot == slot_name(slot))
        )
        first, _last = span(session, settings, newsletter, slot)
        prepared = first - timedelta(minutes=config.review_minutes)
        if status in (None, EditionStatus.DRAFT) and prepared > now:
            break
        slot = next_slot_after(config.days, config.at, settings.zone, slot)
    return min(t for t in (wave, prepared) if t is not None)
