"""What the scheduled job does and when, decided from the database, so it holds across restarts
and between several schedulers: a slot's edition goes out once, within the grace; past it, the
slot is recorded as missed. The scheduler only wakes the process; every decision is here."""

from __future__ import annotations

import html
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from newsletter.editions.compose import Composer, Markers
from newsletter.editions.edition import (
    FINISHED,
    begun,
    close_window,
    decided,
    due_slot,
    mark_missed,
    next_slot,
    open_edition,
    skip_stale_holds,
    slot_label,
)
from newsletter.editions.prepare import EmptyEdition, NoNews, check_news, prepare
from newsletter.editions.slots import slot_name, slot_time, wall_clock
from newsletter.errors import NewsletterError, StoreUnavailable
from newsletter.sending.report import SendError, SendReport
from newsletter.sending.single import send_one
from newsletter.services import accounts, checks, sending
from newsletter.services.alerts import alert
from newsletter.services.editions import grace
from newsletter.services.sending import EditionHeld, NotDue
from newsletter.settings import Settings
from newsletter.store import ledger
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Article, Delivery, Edition, Variant, VariantArticle
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import DeliveryStatus, EditionStatus
from newsletter.text import printable

log = logging.getLogger("newsletter.schedule")
# Headlines the review mail lists: those at the top of the variant most readers get.
REVIEW_HEADLINES = 5


@dataclass(frozen=True)
class EditionRun:
    """What a newsletter's job did at `now`: sent (or finished) its edition, waited for news
    within the grace, recorded its slot as missed, stopped on the provider's refusal, or nothing;
    before the slot, composed its edition for the editors' review (and mailed them)."""

    newsletter: str
    slot: datetime
    # sent (complete), partial, unfinished (stopped between batches), wave (a local-time wave
    # sent, others to come), waiting, held, missed, stopped, composed, mailed, nothing
    action: str
    report: SendReport | None = None
    problem: str | None = None
    reason: str | None = None  # why there was nothing to do

    def told(self) -> str:
        """The run as a log line says it: the slot with its zone, what happened and why."""
        said = f"nothing to send: {self.reason}" if self.action == "nothing" and self.reason else self.action
        why = f" ({self.problem})" if self.problem else ""
        return f"{self.newsletter} edition of {wall_clock(self.slot)}: {said}{why}"


def run_edition(runtime: Runtime, newsletter: str, now: datetime, stop: threading.Event) -> EditionRun:
    """The newsletter's job at `now`: send the due edition (or finish a stopped one) while inside
    the grace; past it, record the slot as missed and tell the operators, unless it came before
    the newsletter's first edition (see `mark_missed`)."""
    settings = runtime.settings
    zone = settings.zone
    slot = due_slot(settings, newsletter, now)
    with unit_of_work(runtime.factory) as session:
        for skipped in skip_stale_holds(session, settings, newsletter, slot):
            log.warning(
                "the %s edition of %s was %s", newsletter, slot_label(skipped.slot, zone), skipped.note
            )
        edition = session.scalars(
            select(Edition).where(Edition.newsletter == newsletter, Edition.slot == slot_name(slot))
        ).one_or_none()
        approval = settings.newsletter(newsletter).approval
        status = edition.status if edition is not None else None
        waiting = edition.waiting(approval) if edition is not None else None
        released = edition is not None and decided(edition, approval)
    if status in FINISHED:
        return EditionRun(newsletter, slot, "nothing", reason=f"it is {status}")
    if waiting is not None:  # an editor's hold: not sent, not missed, until released or the next slot
        return EditionRun(newsletter, slot, "held", problem=waiting)
    if status == EditionStatus.SENDING or released or now - slot <= grace(settings):
        return send_due(runtime, newsletter, slot, now, stop)
    with unit_of_work(runtime.factory) as session:
        first = not begun(session, newsletter, slot)
        missed = mark_missed(session, settings, newsletter, slot)
    if missed is None:
        reason = "its slot came before the newsletter's first edition" if first else "it went out meanwhile"
        return EditionRun(newsletter, slot, "nothing", reason=reason)
    when = wall_clock(slot)
    alert(
        runtime,
        f"the {newsletter} edition of {when} was missed",
        [
            f"its slot passed more than {settings.scheduler.misfire_grace_minutes:g} minutes ago with "
            "nothing sent; its articles go with the next edition"
        ],
    )
    return EditionRun(newsletter, slot, "missed")


def send_due(
    runtime: Runtime,
    newsletter: str,
    slot: datetime,
    now: datetime,
    stop: threading.Event,
    edition_id: int | None = None,
    due_by: datetime | None = None,
) -> EditionRun:
    """The edition sent (or resumed), what happened said as a run; a local-time edition's
    waves due by `due_by` only."""
    when = wall_clock(slot)
    try:
        report = sending.send(runtime, newsletter, now, edition_id, stop=stop, due_by=due_by)
    except NotDue:  # another scheduler, or an operator, sent it meanwhile
        return EditionRun(newsletter, slot, "nothing", reason="it went out meanwhile")
    except EditionHeld as exc:  # an editor held it meanwhile
        return EditionRun(newsletter, slot, "held", problem=str(exc))
    except (NoNews, EmptyEdition) as exc:  # tried again at each refresh until the grace is over
        log.warning("the %s edition of %s waits: %s", newsletter, when, exc)
        return EditionRun(newsletter, slot, "waiting", problem=str(exc))
    except SendError as exc:
        alert(runtime, f"the {newsletter} edition of {when} stopped", [str(exc)])
        return EditionRun(newsletter, slot, "stopped", problem=str(exc))
    except StoreUnavailable as exc:  # no alert can be stored; the next refresh resumes it
        log.error("the %s edition of %s stopped: %s", newsletter, when, exc)
        return EditionRun(newsletter, slot, "stopped", problem=str(exc))
    counts = ", ".join(f"{n} {status}" for status, n in sorted(report.counts.items()))
    if report.status == EditionStatus.PARTIAL:
        alert(
            runtime,
            f"the {newsletter} edition of {when} ended partial",
            [counts, f"`newsletter deliveries {report.edition_id} --status failed` lists who and why"],
        )
        return EditionRun(newsletter, slot, "partial", report, problem=counts)
    if report.status != EditionStatus.COMPLETE and due_by is not None:  # a wave sent, others to come
        return EditionRun(newsletter, slot, "wave", report, problem=counts)
    if report.status != EditionStatus.COMPLETE:  # stopped between batches: what is left, said
        return EditionRun(newsletter, slot, "unfinished", report, problem=counts)
    return EditionRun(newsletter, slot, "sent", report)


def take_over(runtime: Runtime, now: datetime, stop: threading.Event) -> list[EditionRun]:
    """Editions being sent whose claims a sender left silent past their lease (it died, or its
    host did): finished from here, what it handed over kept uncertain (see `ledger.recover`)."""
    lease = timedelta(minutes=runtime.settings.sending.lease_minutes)
    with reading(runtime.factory) as session:
        stale = ledger.stale_claims(session, now - lease)
        abandoned = session.execute(
            select(Edition.id, Edition.newsletter, Edition.slot)
            .where(Edition.id.in_(list(stale)), Edition.status == EditionStatus.SENDING)
            .order_by(Edition.id)
        ).all()
    runs = []
    for edition_id, newsletter, name in abandoned:
        if stop.is_set():
            break
        slot = slot_time(name, runtime.settings.zone)
        log.warning(
            "the %s edition of %s: %d deliveries held by a sender silent past its lease; taking them over",
            newsletter,
            wall_clock(slot),
            stale[edition_id][0],
        )
        runs.append(send_due(runtime, newsletter, slot, now, stop, edition_id))
    return runs


@dataclass(frozen=True)
class ReviewMail:
    """What the editors are told of an edition composed for their review: counts and
    headlines, never a reader's address."""

    newsletter: str
    slot: datetime
    closed: datetime  # its window's end
    waiting: str | None
    variants: int
    counts: dict[DeliveryStatus, int]
    headlines: list[str]


def review_due(runtime: Runtime, newsletter: str, now: datetime) -> EditionRun:
    """Within `review_minutes` of its slot, the newsletter's next edition composed now (its
    window closes now: later articles go to the next edition) and the editors mailed a link to
    it, once per edition whichever scheduler comes first. Held or waiting for approval, it is
    composed all the same (and checked, with `hold_on_failed_checks`, before the mail says
    whether it goes); no news yet, it is tried again at the next refresh."""
    settings = runtime.settings
    config = settings.newsletter(newsletter)
    ahead = timedelta(minutes=config.review_minutes)
    with reading(runtime.factory) as session:
        slot = next_slot(session, settings, newsletter, now, grace(settings))
    if not ahead or not now < slot <= now + ahead or config.local_time:  # composed by its first wave
        return EditionRun(newsletter, slot, "nothing")
    try:
        with unit_of_work(runtime.factory) as session:
            edition = open_edition(session, settings, newsletter, slot)
            session.refresh(edition, with_for_update=True)  # another scheduler waits, then finds it done
            composed = edition.status == EditionStatus.DRAFT
            if composed:
                close_window(session, settings, edition, now)
                for warning in check_news(session, settings, edition):
                    log.warning("the %s edition of %s: %s", newsletter, wall_clock(slot), warning)
                prepare(session, settings, edition, Composer(settings.templates_path()))
            checking = composed and config.hold_on_failed_checks
            if checking:
                checks.hold(edition, now)
            mail = None if checking else _claim_review(session, settings, edition, slot, composed, now)
            edition_id = edition.id
    except (NoNews, EmptyEdition) as exc:
        return EditionRun(newsletter, slot, "waiting", problem=str(exc))
    if checking:  # the mail says whether it goes, once the checks have settled that
        checks.settle(runtime, newsletter, edition_id, now)
        with unit_of_work(runtime.factory) as session:
            mail = _claim_review(session, settings, session.get_one(Edition, edition_id), slot, True, now)
    if mail is not None:
        _mail_review(runtime, mail, now)
    return EditionRun(newsletter, slot, "composed" if composed else "mailed" if mail else "nothing")


def _claim_review(
    session: Session, settings: Settings, edition: Edition, slot: datetime, composed: bool, now: datetime
) -> ReviewMail | None:
    """The review mail of a prepared edition, for the one caller that marks it mailed."""
    if edition.status != EditionStatus.READY:
        return None  # sent meanwhile (`send --now`)
    if edition.held_by == checks.HOLDER and not composed:
        return None  # being checked: its composer mails once the checks have settled
    claimed = session.execute(
        update(Edition)
        .where(Edition.id == edition.id, Edition.review_mailed_at.is_(None))
        .values(review_mailed_at=now)
    )
    if not getattr(claimed, "rowcount", 0):
        return None
    variants = session.scalar(
        select(func.count()).select_from(Variant).where(Variant.edition_id == edition.id)
    )
    widest = session.scalar(  # the variant most readers get
        select(Delivery.variant_id)
        .where(Delivery.edition_id == edition.id, Delivery.variant_id.is_not(None))
        .group_by(Delivery.variant_id)
        .order_by(func.count().desc(), Delivery.variant_id)
        .limit(1)
    )
    headlines = session.scalars(
        select(Article.title)
        .join(VariantArticle, VariantArticle.article_id == Article.id)
        .where(VariantArticle.variant_id == widest)
        .order_by(VariantArticle.position)
        .limit(REVIEW_HEADLINES)
    ).all()
    return ReviewMail(
        edition.newsletter,
        slot,
        edition.window_end,
        edition.waiting(settings.newsletter(edition.newsletter).approval),
        variants or 0,
        ledger.counts(session, edition.id),
        [printable(title) for title in headlines],
    )


def _mail_review(runtime: Runtime, mail: ReviewMail, now: datetime) -> None:
    """To every editor, through the configured provider, outside the ledger; a mail that cannot
    go is logged and alerted, and the edition goes on all the same."""
    settings = runtime.settings
    zone = settings.zone
    when = wall_clock(mail.slot, zone)
    if mail.waiting is None:
        fate = "goes at its slot unless held"
    elif mail.waiting.startswith("held"):
        fate = f"{mail.waiting}: goes once released"
    else:
        fate = "waits for your approval"
    subject = f"[review] {mail.newsletter} edition of {when}: {fate}"
    link = f"{str(settings.public_url).rstrip('/')}/editor/upcoming/{quote(mail.newsletter, safe='')}"
    tally = ", ".join(f"{n} {status}" for status, n in sorted(mail.counts.items())) or "no readers"
    lines = [
        f"The {mail.newsletter} edition of {when} is composed for your review: it {fate}.",
        f"Its window closed at {wall_clock(mail.closed, zone)}; "
        "articles published since go in the next edition.",
        f"{mail.variants} variant(s); deliveries: {tally}.",
        "Top headlines:" if mail.headlines else "No headlines: every reader is skipped.",
        *(f"- {title}" for title in mail.headlines),
        f"Review it, hold it or approve it: {link}",
        f"(or: newsletter edition hold|release|approve -n {mail.newsletter})",
    ]
    text = "\n".join([*lines, "", "-- newsletter run"]) + "\n"
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    editors = [account.email for account in accounts.accounts(runtime, now)]
    if not editors:
        log.warning("no editor to mail the review of the %s edition of %s to", mail.newsletter, when)
    failed: list[str] = []
    for to in editors:
        try:
            _address, outcome = send_one(
                settings,
                to,
                subject,
                f"<!DOCTYPE html><html><body>{body}</body></html>",
                text,
                Markers.fresh(),
                f"{settings.site.name} editors",
                "review",
                {"X-Newsletter-Review": f"{mail.newsletter} {slot_name(mail.slot)}"},
                list_headers=False,
            )
        except NewsletterError as exc:
            failed.append(f"{to}: {exc}")
            continue
        if outcome.status != "sent":
            failed.append(f"{to}: {outcome.detail}")
    if failed:
        alert(runtime, f"the review mail of the {mail.newsletter} edition of {when} did not go", failed)
