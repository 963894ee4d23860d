"""Editions: one newsletter for one slot, and the window of articles it covers.

The (newsletter, slot) pair is unique in the database, so whichever process or scheduler asks
first creates the edition and every other one finds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.editions.slots import last_slot, next_slot_after, slot_name, slot_time, wall_clock
from newsletter.errors import NewsletterError
from newsletter.settings import Settings
from newsletter.store.models import Edition
from newsletter.store.statuses import EditionStatus

# An edition in these states is over (gone out, or its slot missed); the next one is ahead.
FINISHED = (EditionStatus.COMPLETE, EditionStatus.PARTIAL, EditionStatus.MISSED)


class EditionError(NewsletterError):
    """An edition or article named on the command line does not exist or cannot change."""


class EditionHeld(EditionError):
    """An editor holds the edition, or it waits for an editor's approval."""


@dataclass(frozen=True)
class EditionInfo:
    """An edition as entry points show it: plain data, readable after the session is gone."""

    id: int | None  # None for an edition not yet created
    newsletter: str
    slot: str
    status: EditionStatus
    window_start: datetime
    window_end: datetime
    # An alert's article (its id and title); None for a digest.
    article_id: int | None = None
    article_title: str | None = None

    @classmethod
    def of(cls, edition: Edition) -> EditionInfo:
        return cls(
            edition.id,
            edition.newsletter,
            edition.slot,
            EditionStatus(edition.status),
            edition.window_start,
            edition.window_end,
            edition.article_id,
            edition.article_title if edition.article_id is not None else None,
        )


def slot_label(name: str, zone: ZoneInfo) -> str:
    """A slot's name as every printed time reads: the site's wall clock with the zone's name."""
    return wall_clock(slot_time(name, zone))


def due_slot(settings: Settings, newsletter: str, now: datetime) -> datetime:
    """The slot a send at `now` is for: the latest scheduled time at or before it."""
    config = settings.newsletter(newsletter)
    return last_slot(config.days, config.at, settings.zone, now)


def upcoming_slot(settings: Settings, newsletter: str, now: datetime) -> datetime:
    """The first slot after `now`."""
    config = settings.newsletter(newsletter)
    return next_slot_after(config.days, config.at, settings.zone, now)


def interval(settings: Settings, newsletter: str, slot: datetime) -> timedelta:
    """How long the newsletter's schedule leaves before `slot`: the gap from the slot before it
    (a week for a weekly, three or four days for Mondays and Thursdays)."""
    config = settings.newsletter(newsletter)
    before = last_slot(config.days, config.at, settings.zone, slot - timedelta(microseconds=1))
    return slot.astimezone(UTC) - before.astimezone(UTC)  # as instants: one zone subtracts wall clocks


def begun(session: Session, newsletter: str, slot: datetime) -> bool:
    """The newsletter had begun by `slot`: it has an edition of that slot or an earlier one. A
    slot before its first edition (a new site, a newsletter just added) can be neither missed
    nor late; its first edition is the next slot's, or this one's within the grace."""
    first = session.scalar(
        select(Edition.id).where(Edition.newsletter == newsletter, Edition.slot <= slot_name(slot)).limit(1)
    )
    return first is not None


def next_slot(
    session: Session, settings: Settings, newsletter: str, now: datetime, grace: timedelta
) -> datetime:
    """The slot of the next edition to go out, the one every command means by default.

    The edition due at `now` while it has not gone out: always when it is prepared (a stopped
    send is finished), within `grace` of its slot when it is only a draft or not made yet (past
    that, the slot was missed); else the next slot ahead.
    """
    due = due_slot(settings, newsletter, now)
    edition = session.scalars(
        select(Edition).where(Edition.newsletter == newsletter, Edition.slot == slot_name(due))
    ).one_or_none()
    status = edition.status if edition is not None else None
    if status in (EditionStatus.READY, EditionStatus.SENDING):
        return due
    if (
        edition is not None
        and status not in FINISHED
        and decided(edition, settings.newsletter(newsletter).approval)
    ):
        return due  # an editor's hold is not a scheduler down: it stays next until the next slot
    if status not in FINISHED and now - due <= grace:
        return due
    return open_slot_after(session, settings, newsletter, now)


def open_slot_after(session: Session, settings: Settings, newsletter: str, now: datetime) -> datetime:
    """The first slot after `now` whose edition is not over: an edition sent early (--now) is
    over, the one after it is next."""
    ahead = upcoming_slot(settings, newsletter, now)
    for _week in range(60):
        ahead_status = session.scalar(
            select(Edition.status).where(Edition.newsletter == newsletter, Edition.slot == slot_name(ahead))
        )
        if ahead_status not in FINISHED:
            break
        ahead = upcoming_slot(settings, newsletter, ahead)
    return ahead


def draft(session: Session, settings: Settings, newsletter: str, slot: datetime) -> Edition:
    """The edition for a slot as it stands, or as it would be created (not added to the session)."""
    name = slot_name(slot)
    existing = session.scalars(
        select(Edition).where(Edition.newsletter == newsletter, Edition.slot == name)
    ).one_or_none()
    if existing is not None:
        return existing
    start = previous_end(session, newsletter, slot) or first_window_start(settings, newsletter, slot, slot)
    return Edition(
        newsletter=newsletter, slot=name, window_start=start, window_end=slot, status=EditionStatus.DRAFT
    )


def previous_end(session: Session, newsletter: str, before: datetime) -> datetime | None:
    """Where the window of the newsletter's last edition before `before` ended; None for its first.
    A missed edition sent nothing: its window is the next one's."""
    return session.scalar(
        select(func.max(Edition.window_end)).where(
            Edition.newsletter == newsletter,
            Edition.window_end < before,
            Edition.status != EditionStatus.MISSED,
        )
    )


def first_window_start(settings: Settings, newsletter: str, slot: datetime, closes: datetime) -> datetime:
    """A newsletter's first edition looks back `first_window_days` from when its window closes;
    unset, as far as its schedule leaves between two slots (a day for a daily, a week for a
    weekly), as any later edition does."""
    days = settings.newsletter(newsletter).first_window_days
    return closes - (timedelta(days=days) if days else interval(settings, newsletter, slot))


def open_edition(session: Session, settings: Settings, newsletter: str, slot: datetime) -> Edition:
    """Get or create the slot's edition; safe when several processes race to create it."""
    edition = draft(session, settings, newsletter, slot)
    if edition.id is not None:
        return edition
    try:
        with session.begin_nested():
            session.add(edition)
    except IntegrityError:
        return session.scalars(
            select(Edition).where(Edition.newsletter == newsletter, Edition.slot == edition.slot)
        ).one()
    return edition


def close_window(session: Session, settings: Settings, edition: Edition, now: datetime) -> None:
    """End a draft's window at `now`, before its slot (composed early for the editors' review,
    or sent early with --now): articles published later belong to the next edition, whose window
    starts here, a draft of it made already included. A newsletter's first edition looks back
    `first_window_days` from now, so sent early it still holds the days before it goes."""
    if previous_end(session, edition.newsletter, edition.window_end) is None:
        edition.window_start = first_window_start(
            settings, edition.newsletter, slot_time(edition.slot, settings.zone), now
        )
    session.execute(
        update(Edition)
        .where(
            Edition.newsletter == edition.newsletter,
            Edition.slot > edition.slot,
            Edition.status == EditionStatus.DRAFT,
            Edition.window_start == edition.window_end,
        )
        .values(window_start=now)
    )
    edition.window_end = now


def mark_missed(session: Session, settings: Settings, newsletter: str, slot: datetime) -> Edition | None:
    """Record a slot that passed beyond the grace with nothing sent; None when its edition was
    sent after all (another scheduler, a manual send), or when the newsletter had not begun by
    then (see `begun`). A prepared edition no sender started (composed early for review) is
    missed too: its deliveries stay pending, never sent."""
    if not begun(session, newsletter, slot):
        return None
    edition = open_edition(session, settings, newsletter, slot)
    if edition.status not in (EditionStatus.DRAFT, EditionStatus.READY):
        return None
    edition.status = EditionStatus.MISSED
    return edition


def skip_stale_holds(session: Session, settings: Settings, newsletter: str, due: datetime) -> list[Edition]:
    """Editions of earlier slots still held (or not approved) when a later slot has come: they
    are skipped, the reason kept; their articles go with the next edition."""
    approval = settings.newsletter(newsletter).approval
    stale = session.scalars(
        select(Edition).where(
            Edition.newsletter == newsletter,
            Edition.slot < slot_name(due),
            Edition.status.in_((EditionStatus.DRAFT, EditionStatus.READY)),
        )
    ).all()
    skipped = []
    for edition in stale:
        why = edition.waiting(approval)
        if why is not None:
            edition.status, edition.note = (
                EditionStatus.MISSED,
                f"skipped: still {why} when the next slot came",
            )
            skipped.append(edition)
    return skipped


def decided(edition: Edition, approval: str) -> bool:
    """An editor holds the edition (or it waits for approval), or released it: its slot's
    grace does not apply, it stays the next edition until the newsletter's next slot."""
    return edition.waiting(approval) is not None or edition.released_at is not None
