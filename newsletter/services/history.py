"""Past editions as the editors look back on them: what each one came to (deliveries per status,
the failures in the provider's words), the readers it lost, and the articles its readers clicked.

Everything is counted in the database (GROUP BY over indexed columns): an edition of a million
deliveries costs a handful of small answers, never its rows.

A suppression has no edition of its own: it is put down to the last edition mailed to the reader
before it was made, whatever made it (the sender's refusal, a bounce read back, the provider's
event, the reader leaving everything through the email's link).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, distinct, exists, func, select
from sqlalchemy.orm import Session, aliased

from newsletter.editions.edition import EditionError, EditionInfo
from newsletter.services.editions import DeliveryRow, _counts, deliveries
from newsletter.store import ledger
from newsletter.store import waves as store_waves
from newsletter.store.db import reading
from newsletter.store.models import Article, Click, Delivery, Edition, Subscriber, Suppression
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import DELIVERED, DeliveryStatus, EditionStatus, SuppressionReason
from newsletter.store.waves import Waves

# A delivery in these states was handed, or tried, to the reader's mailbox.
MAILED = (*DELIVERED, DeliveryStatus.FAILED)
# What a reader's answer to an edition can put on the list (not an operator's or an erasure).
CAUSED = (SuppressionReason.BOUNCE, SuppressionReason.COMPLAINT, SuppressionReason.UNSUBSCRIBE)


@dataclass(frozen=True)
class PastEdition:
    """An edition looked back on: when it went, who held or approved it, and what it came to."""

    edition: EditionInfo
    started_at: datetime | None
    finished_at: datetime | None
    held_by: str | None
    held_at: datetime | None
    released_at: datetime | None
    approved_by: str | None
    approved_at: datetime | None
    note: str | None
    counts: dict[DeliveryStatus, int]
    waves: Waves | None = None  # a local-time edition's

    @classmethod
    def of(cls, edition: Edition, live: dict[DeliveryStatus, int], waves: Waves | None = None) -> PastEdition:
        return cls(
            EditionInfo.of(edition),
            edition.started_at,
            edition.finished_at,
            edition.held_by,
            edition.held_at,
            edition.released_at,
            edition.approved_by,
            edition.approved_at,
            edition.note,
            _counts(edition, live),
            waves,
        )


@dataclass(frozen=True)
class PastPage:
    """One page of the past editions, newest first."""

    editions: list[PastEdition]
    page: int  # the page shown: the one asked for, brought within 1..pages
    pages: int
    total: int


@dataclass(frozen=True)
class Suppressed:
    email: str
    reason: SuppressionReason
    detail: str | None
    at: datetime


@dataclass(frozen=True)
class ArticleClicks:
    article_id: int
    title: str
    url: str
    readers: int  # distinct readers who clicked
    clicks: int


@dataclass(frozen=True)
class EditionReport:
    """One past edition in full; `clicks` is None while click tracking is off."""

    edition: PastEdition
    failures: list[DeliveryRow]
    more_failures: int  # failed deliveries beyond those listed
    suppressions: dict[SuppressionReason, int]
    suppressed: list[Suppressed]  # the latest
    clicks: list[ArticleClicks] | None


def past(runtime: Runtime, page: int, per_page: int = 25) -> PastPage:
    """The editions that went out or were missed (drafts are still to come), newest slot first;
    a page past the last is the last."""
    gone = Edition.status != EditionStatus.DRAFT
    with reading(runtime.factory) as session:
        total = session.scalar(select(func.count()).select_from(Edition).where(gone)) or 0
        pages = max(1, -(-total // per_page))
        page = min(max(page, 1), pages)
        rows = session.scalars(
            select(Edition)
            .where(gone)
            .order_by(Edition.window_end.desc(), Edition.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        ).all()
        tallies = ledger.tallies(session, [e.id for e in rows])
        return PastPage([PastEdition.of(e, tallies.get(e.id, {})) for e in rows], page, pages, total)


def report(
    runtime: Runtime, edition_id: int, failures_limit: int = 100, suppressed_limit: int = 50
) -> EditionReport:
    """One edition: its deliveries per status, failures first with the provider's words, the
    suppressions it caused, and clicks per article; EditionError when there is no such edition."""
    with reading(runtime.factory) as session:
        row = session.get(Edition, edition_id)
        if row is None:
            raise EditionError(f"no edition {edition_id}")
        summary = PastEdition.of(
            row, ledger.counts(session, edition_id), store_waves.waves(session, [edition_id]).get(edition_id)
        )
        reasons, suppressed = _suppressions(session, row, suppressed_limit)
        clicks = _clicks(session, edition_id) if runtime.settings.links.track_clicks else None
    failures = deliveries(runtime, edition_id, [DeliveryStatus.FAILED], failures_limit)
    more = max(0, summary.counts.get(DeliveryStatus.FAILED, 0) - len(failures))
    return EditionReport(summary, failures, more, reasons, suppressed, clicks)


def _suppressions(
    session: Session, edition: Edition, limit: int
) -> tuple[dict[SuppressionReason, int], list[Suppressed]]:
    """The suppressions put down to this edition: per reason, and the latest `limit`."""
    if edition.started_at is None:  # it never went: it caused nothing
        return {}, []
    caused = _caused(edition.id, edition.started_at)
    counts = session.execute(
        caused.with_only_columns(Suppression.reason, func.count()).group_by(Suppression.reason)
    ).all()
    latest = session.execute(
        caused.with_only_columns(
            Suppression.email, Suppression.reason, Suppression.detail, Suppression.created_at
        )
        .order_by(Suppression.created_at.desc(), Suppression.id.desc())
        .limit(limit)
    ).all()
    return {reason: n for reason, n in counts}, [Suppressed(*found) for found in latest]


def _caused(edition_id: int, started_at: datetime) -> Select[int]:
    """Suppressions made since the edition started, of readers it mailed, and whom no edition
    started later mailed before the suppression was made."""
    later = aliased(Delivery)
    later_edition = aliased(Edition)
    # Tied to the joined delivery, not to Subscriber: tested after that join, on far fewer rows.
    mailed_since = exists().where(
        later.subscriber_id == Delivery.subscriber_id,
        later.status.in_(MAILED),
        later_edition.id == later.edition_id,
        later_edition.started_at > started_at,
        later_edition.started_at <= Suppression.created_at,
    )
    return (
        select(Suppression.id)
        .join(Subscriber, Subscriber.email == Suppression.email)
        .join(Delivery, and_(Delivery.subscriber_id == Subscriber.id, Delivery.edition_id == edition_id))
        .where(
            Delivery.status.in_(MAILED),
            Suppression.reason.in_(CAUSED),
            Suppression.created_at >= started_at,
            ~mailed_since,
        )
    )


def _clicks(session: Session, edition_id: int) -> list[ArticleClicks]:
    """Clicks per article of the edition, the most read first."""
    tally = (
        select(
            Click.article_id,
            func.count(distinct(Click.subscriber_id)).label("readers"),
            func.count().label("clicks"),
        )
        .where(Click.edition_id == edition_id)
        .group_by(Click.article_id)
        .subquery()
    )
    rows = session.execute(
        select(Article.id, Article.title, Article.url, tally.c.readers, tally.c.clicks)
        .join(tally, tally.c.article_id == Article.id)
        .order_by(tally.c.readers.desc(), tally.c.clicks.desc(), Article.id)
    ).all()
    return [ArticleClicks(*found) for found in rows]
