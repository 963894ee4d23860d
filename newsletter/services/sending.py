"""Sending: the next edition prepared once and sent (or resumed), rehearsed, or tried on one address."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from newsletter.editions.edition import (
    EditionError,
    EditionHeld,
    EditionInfo,
    close_window,
    interval,
    next_slot,
    open_edition,
    slot_label,
)
from newsletter.editions.slots import slot_name, slot_time, wall_clock
from newsletter.sending.pace import Pace
from newsletter.sending.providers import (
    Outcome,
    Provider,
    make_provider,
)
from newsletter.sending.report import SendReport
from newsletter.sending.sender import Sender
from newsletter.services.editions import edition, grace
from newsletter.settings import plain_http
from newsletter.store import ledger
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Delivery, Edition, Variant
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import OPEN, DeliveryStatus, EditionStatus
from newsletter.subscribers.addresses import normalize_email

if TYPE_CHECKING:
    from newsletter.editions.prepare import Prepared

log = logging.getLogger("newsletter.send")
# Preparing, checking, archiving and test sends import their parts where they run: a sender
# process (`send --edition`, each of `send --workers`) then loads only what sends, not the
# composer (premailer), the checks and the syndication (feedgen, httpx).


class NotDue(EditionError):
    """The next edition's slot is still ahead: it goes out on time, or when told to (--now)."""


class TooSoon(EditionError):
    """Sent ahead of its slot (--now), the edition would follow the last one sooner than the
    newsletter's schedule ever does: a second edition minutes after the first. --force sends it."""


@dataclass(frozen=True)
class VariantPlan:
    subject: str
    language: str
    categories: list[str]
    recipients: int


@dataclass
class DryRun:
    """What sending would do, found by preparing the edition in a transaction rolled back: sent
    now, or (its slot still ahead, without --now) at `due`."""

    edition: EditionInfo
    variants: list[VariantPlan]
    counts: dict[DeliveryStatus, int]
    warnings: list[str] = field(default_factory=list)
    due: datetime | None = None  # its slot, when it would wait for it
    early: bool = False  # it would go now, ahead of its slot (--now)


def prepare_next(
    runtime: Runtime,
    newsletter: str,
    now: datetime,
    ahead_ok: bool = False,
    force: bool = False,
    told: Callable[[EditionInfo], None] = lambda _e: None,
) -> tuple[int, list[str]]:
    """Open the next edition to go out and prepare it (once); its id and any warnings.

    Refuses an edition whose slot is still ahead unless `ahead_ok`, and, unless `force`, one
    that no feed has been read for since its window opened (see `check_news`) or one sent ahead
    sooner after the last than the newsletter's schedule allows (see `_too_soon`). `told` hears
    the edition, with the window this send gives it, before anything is refused.
    """
    from newsletter.services import checks

    settings = runtime.settings
    settings.signing_key()  # refuse a missing or placeholder key before any work
    with unit_of_work(runtime.factory) as session:
        edition, prepared, warnings = _prepare(session, runtime, newsletter, now, ahead_ok, force, told=told)
        if plain := plain_http(settings):  # told of an edition that goes, not of a refusal
            log.warning("%s", plain)
        why = edition.waiting(settings.newsletter(newsletter).approval)
        if prepared is not None:
            log.info(
                "the %s edition of %s prepared: %d recipient%s in %d variant%s, %d skipped, %d suppressed",
                edition.newsletter,
                slot_label(edition.slot, settings.zone),
                prepared.recipients,
                "" if prepared.recipients == 1 else "s",
                prepared.variants,
                "" if prepared.variants == 1 else "s",
                prepared.skipped,
                prepared.suppressed,
            )
        checking = prepared is not None and settings.newsletter(newsletter).hold_on_failed_checks
        if checking:
            checks.hold(edition, now)
        edition_id, slot = edition.id, slot_label(edition.slot, settings.zone)
    if prepared is not None:
        _analyze(runtime)
    if checking:
        why = checks.settle(runtime, newsletter, edition_id, now)
    if why is not None:  # after the commit: the draft stays for the editors to decide on
        raise EditionHeld(_waiting(newsletter, slot, why))
    return edition_id, warnings


def _analyze(runtime: Runtime) -> None:
    """The store's statistics brought up to date for the send (see `ledger.analyze`); a store
    too busy for it sends all the same."""
    try:
        with unit_of_work(runtime.factory) as session:
            ledger.analyze(session)
    except OperationalError as exc:
        log.warning("the store's statistics were not refreshed before the send: %s", exc.orig)


def _waiting(newsletter: str, slot: str, why: str) -> str:
    """Why an edition held, or waiting for approval, does not go, and what lets it."""
    return (
        f"the {newsletter} edition of {slot} is {why}: it goes when released "
        "(`newsletter edition release`) or approved (`newsletter edition approve`)"
    )


def _prepare(
    session: Session,
    runtime: Runtime,
    newsletter: str,
    now: datetime,
    ahead_ok: bool,
    force: bool,
    rehearsal: bool = False,
    told: Callable[[EditionInfo], None] = lambda _e: None,
) -> tuple[Edition, Prepared | None, list[str]]:
    """The next edition, prepared now (its summary) or before (None), and the warnings. A
    rehearsal (`dry_run`) refuses nothing it can list: what a send would refuse (sent too soon,
    no news read, held or waiting for approval) is among its warnings."""
    from newsletter.editions.compose import Composer
    from newsletter.editions.prepare import NoNews, check_news, prepare

    settings = runtime.settings
    if settings.newsletter(newsletter).is_alert:
        raise EditionError(
            f"{newsletter} is an alert newsletter: it sends one article at a time "
            f"(`newsletter alert ARTICLE -n {newsletter}`), not editions on a schedule"
        )
    slot = next_slot(session, settings, newsletter, now, grace(settings))
    # An edition that has begun going out (sent early, then stopped) is resumed whatever its slot.
    started = (
        session.scalar(
            select(Edition.status).where(Edition.newsletter == newsletter, Edition.slot == slot_name(slot))
        )
        == EditionStatus.SENDING
    )
    early = slot > now and (ahead_ok or started)
    if slot > now and not early and not rehearsal:
        raise NotDue(
            f"the next {newsletter} edition is the one of {wall_clock(slot)}, not due yet: "
            "it goes out then (send --now sends it at once)"
        )
    edition = open_edition(session, settings, newsletter, slot)
    session.refresh(edition, with_for_update=True)  # an editor's change to it waits, or is seen
    waiting = edition.waiting(settings.newsletter(newsletter).approval)
    closes = early and edition.status == EditionStatus.DRAFT and edition.window_end > now
    if closes and (waiting is None or rehearsal):  # what is published later goes with the next one
        close_window(session, settings, edition, now)
    told(EditionInfo.of(edition))
    refusals = []
    soon = _too_soon(session, runtime, edition, now) if early and not force else None
    if soon is not None and not rehearsal:
        raise TooSoon(soon)
    if soon is not None:
        refusals.append(f"send --now refuses it: {soon}")
    if waiting is not None and not rehearsal:
        return edition, None, []  # the caller refuses it, once the draft is kept
    if waiting is not None:
        label = slot_label(edition.slot, settings.zone)
        refusals.append(f"send refuses it: {_waiting(newsletter, label, waiting)}")
    if edition.status != EditionStatus.DRAFT:
        return edition, None, refusals
    try:
        warnings = [] if force else check_news(session, settings, edition)
    except NoNews as refused:
        if not rehearsal:
            raise
        warnings = [f"send refuses it: {refused}"]
    composer = Composer(settings.templates_path())
    prepared = prepare(session, settings, edition, composer, rehearsing=now if rehearsal else None)
    return edition, prepared, refusals + warnings + prepared.warnings


def _too_soon(session: Session, runtime: Runtime, edition: Edition, now: datetime) -> str | None:
    """Why the edition, sent at `now` ahead of its slot, comes too soon: the newsletter's last
    edition went out less than its usual interval (the gap from the slot before this one) ago;
    None when it does not, or when the edition has begun going out already (a resumed send)."""
    if edition.status not in (EditionStatus.DRAFT, EditionStatus.READY):
        return None
    last = session.scalars(
        select(Edition)
        .where(
            Edition.newsletter == edition.newsletter,
            Edition.slot < edition.slot,
            Edition.status.in_((EditionStatus.COMPLETE, EditionStatus.PARTIAL)),
        )
        .order_by(Edition.slot.desc())
        .limit(1)
    ).one_or_none()
    went = (last.started_at or last.finished_at) if last is not None else None
    zone = runtime.settings.zone
    slot = slot_time(edition.slot, zone)
    every = interval(runtime.settings, edition.newsletter, slot)
    if last is None or went is None or now - went >= every:
        return None
    days = round(every / timedelta(days=1))
    return (
        f"the last {edition.newsletter} edition (of {slot_label(last.slot, zone)}) "
        f"went out at {wall_clock(went, zone)}, less than its usual interval "
        f"({days} day{'' if days == 1 else 's'}) ago; the next is due at {wall_clock(slot)} "
        "and goes out then (send --now --force sends it at once all the same)"
    )


def publish(
    runtime: Runtime,
    provider: Provider,
    newsletter: str,
    now: datetime,
    edition_id: int | None = None,
    retry_failed: bool = False,
    pace: Pace | None = None,
    on_progress: Callable[[SendReport], None] = lambda _r: None,
    ahead_ok: bool = False,
    force: bool = False,
    stop: threading.Event | None = None,
    archive: bool = True,
    due_by: datetime | None = None,
) -> SendReport:
    """The operator's job: open the next edition, prepare it once, and send it (or resume it);
    archived once complete, unless `archive` is off (one of several senders: see `syndicate`).
    A local-time edition sends only the waves due by `due_by` (default: now)."""
    settings = runtime.settings
    warnings: list[str] = []
    if edition_id is None:
        edition_id, warnings = prepare_next(runtime, newsletter, now, ahead_ok, force)
    else:
        settings.signing_key()  # refuse a missing or placeholder key before any work
    pace = pace or Pace.from_settings(settings.sending)
    report = Sender(settings, runtime.factory, provider, pace, on_progress, stop=stop, due_by=due_by).send(
        edition_id, retry_failed
    )
    report.warnings = warnings
    if archive:
        syndicate(runtime, edition_id, report.status, now)
    return report


def syndicate(runtime: Runtime, edition_id: int, status: EditionStatus, now: datetime) -> None:
    """After the last delivery (so it delays none), a sent edition archived and the hubs told:
    by its one sender, or once by `send --workers` after its senders (each would import the
    syndication and render the archive for nothing)."""
    if status not in (EditionStatus.COMPLETE, EditionStatus.PARTIAL):
        return
    from newsletter.services import archive

    if not archive.archive_edition(runtime, edition_id, now) or not runtime.settings.syndication.hubs:
        return
    try:
        archive.push(runtime, now)
    except Exception:  # the scheduler's next refresh pushes what is still due
        log.exception("the WebSub hubs could not be told of edition %d", edition_id)


def dry_run(
    runtime: Runtime, newsletter: str, now: datetime, ahead_ok: bool = False, force: bool = False
) -> DryRun:
    """The next edition as sending it would prepare it, whenever asked: its variants with
    subjects and recipients, who is skipped or suppressed, and when it would go (at its slot,
    or now with `ahead_ok`); nothing is written (the transaction is rolled back)."""
    with runtime.factory() as session, session.begin() as transaction:
        try:
            edition, _prepared, warnings = _prepare(
                session, runtime, newsletter, now, ahead_ok, force, rehearsal=True
            )
            edition_id = edition.id
            rows = session.execute(
                select(Variant.subject, Variant.language, Variant.categories, func.count(Delivery.id))
                .join(Delivery, Delivery.variant_id == Variant.id)
                .where(Variant.edition_id == edition_id, Delivery.status.in_(OPEN))
                .group_by(Variant.id, Variant.subject, Variant.language, Variant.categories)
                .order_by(func.count(Delivery.id).desc())
            ).all()
            info = EditionInfo.of(session.get_one(Edition, edition_id))
            counts = ledger.counts(session, edition_id)
        finally:
            transaction.rollback()
    variants = [VariantPlan(s, lang, [c for c in cats.split(",") if c], n) for s, lang, cats, n in rows]
    if plain := plain_http(runtime.settings):
        warnings.append(plain)
    slot = slot_time(info.slot, runtime.settings.zone)
    ahead = slot > now
    due = slot if ahead and not ahead_ok else None
    return DryRun(info, variants, counts, warnings, due, early=ahead and ahead_ok)


@dataclass(frozen=True)
class TestSent:
    edition: EditionInfo
    to: str
    subject: str
    outcome: Outcome


def test_send(
    runtime: Runtime,
    newsletter: str,
    now: datetime,
    to: str,
    as_reader: str | None = None,
    categories: list[str] | None = None,
    language: str | None = None,
) -> TestSent:
    """The next edition as that reader (or such a reader) would get it, to `to` only, through the
    configured provider: marked as a test, its links dummies (a click unsubscribes nobody), and
    outside the ledger."""
    from newsletter.sending.single import send_one
    from newsletter.services.editors import preview

    normalize_email(to)  # a bad address is refused before any composing
    shown = preview(runtime, newsletter, now, categories, language, as_reader)
    composed = shown.composed
    if composed is None:
        raise EditionError(f"nothing to send as this reader: {shown.reason}")
    settings = runtime.settings
    subject = f"[TEST] {composed.subject}"
    address, outcome = send_one(
        settings,
        to,
        subject,
        composed.html,
        composed.text,
        composed.markers,
        f"{settings.site.name} {settings.newsletter(newsletter).title}",
        newsletter,
        {"X-Newsletter-Test": "a test send, not sent to readers"},
    )
    return TestSent(shown.edition, address, subject, outcome)


def send(
    runtime: Runtime,
    newsletter: str,
    now: datetime,
    edition_id: int | None = None,
    retry_failed: bool = False,
    rate: float | None = None,
    on_progress: Callable[[SendReport], None] = lambda _r: None,
    ahead_ok: bool = False,
    force: bool = False,
    stop: threading.Event | None = None,
    archive: bool = True,
    due_by: datetime | None = None,
) -> SendReport:
    """`publish` through the configured provider, closed afterwards; `stop` ends it between
    batches (a scheduler shutting down)."""
    provider = make_provider(runtime.settings, stop)
    try:
        pace = Pace.from_settings(runtime.settings.sending, rate)
        return publish(
            runtime,
            provider,
            newsletter,
            now,
            edition_id,
            retry_failed,
            pace,
            on_progress,
            ahead_ok,
            force,
            stop,
            archive,
            due_by,
        )
    finally:
        provider.close()


def retry_failed(runtime: Runtime, edition_id: int) -> int:
    """Put an edition's failed deliveries back to pending, for senders to try again; how many."""
    with unit_of_work(runtime.factory) as session:
        return ledger.retry_failed(session, edition_id)


def resend_uncertain(runtime: Runtime, edition_id: int) -> int:
    """Put an edition's uncertain deliveries back to pending, the operator having decided that a
    possible second copy is better than none; how many."""
    with unit_of_work(runtime.factory) as session:
        return sum(ledger.resend_uncertain(session, edition_id, None).values())


def progress(runtime: Runtime, edition_id: int) -> tuple[int, int]:
    """(done, total) deliveries of an edition, whoever is sending it."""
    with reading(runtime.factory) as session:
        tally = ledger.counts(session, edition_id)
    return sum(n for status, n in tally.items() if status not in OPEN), sum(tally.values())


def report(runtime: Runtime, edition_id: int) -> SendReport:
    """An edition's state as a send report, read from the ledger (after other processes sent it)."""
    summary = edition(runtime, edition_id)
    return SendReport(
        edition_id,
        summary.edition.status,
        summary.counts.get(DeliveryStatus.SENT, 0),
        summary.counts.get(DeliveryStatus.FAILED, 0),
        counts=summary.counts,
    )
