"""Editions: what is trending, the next issue as a reader gets it, the editors' picks, the list."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from newsletter.editions.compose import Composer
from newsletter.editions.edition import EditionError, EditionInfo, due_slot, open_edition, upcoming_slot
from newsletter.editions.offer import trending_signals
from newsletter.editions.picks import find_article, pick
from newsletter.editions.prepare import prepare
from newsletter.editions.preview import Preview
from newsletter.editions.preview import preview as make_preview
from newsletter.editions.ranking import Score, rank
from newsletter.errors import InputError
from newsletter.store import ledger
from newsletter.store.categories import slugify
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Article, Category, Edition
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import DeliveryStatus, PickAction

log = logging.getLogger("newsletter.editions")
# A category's name and slug hold at most 200 characters in the store.
MAX_CATEGORY = 200


@dataclass(frozen=True)
class Trending:
    article_id: int
    title: str
    sections: list[str]
    score: Score


@dataclass(frozen=True)
class Picked:
    title: str
    action: PickAction
    edition: EditionInfo


@dataclass(frozen=True)
class EditionSummary:
    edition: EditionInfo
    counts: dict[DeliveryStatus, int] = field(default_factory=dict)


def trending(runtime: Runtime, now: datetime, category: str | None = None, days: int = 7) -> list[Trending]:
    """Recent articles in the site's language, highest score first, each with its signals."""
    settings = runtime.settings
    with reading(runtime.factory) as session:
        query = select(Article).where(
            Article.language == settings.site.language,
            Article.published_at >= now - timedelta(days=days),
            Article.published_at <= now,
        )
        if category:
            query = query.where(Article.categories.any(Category.slug == slugify(category)))
        articles = {a.id: a for a in session.scalars(query)}
        signals = trending_signals(session, list(articles.values()))
        return [
            Trending(
                score.article_id,
                articles[score.article_id].title,
                [c.name for c in articles[score.article_id].categories if c.is_section],
                score,
            )
            for score in rank(signals, settings.ranking, now)
        ]


def preview(
    runtime: Runtime,
    newsletter: str,
    now: datetime,
    categories: list[str] | None = None,
    language: str | None = None,
    email: str | None = None,
) -> Preview:
    """Exactly what such a reader (or that subscriber) gets in the upcoming edition; writes nothing."""
    for name in categories or []:
        if not name.strip() or len(name) > MAX_CATEGORY:
            shown = name if len(name) <= MAX_CATEGORY else f"{name[:40]}… ({len(name)} characters)"
            raise InputError("category", f"a category's name or slug, not {shown!r}")
    composer = Composer(runtime.settings.templates_path())
    with reading(runtime.factory) as session:
        return make_preview(session, runtime.settings, composer, newsletter, now, categories, language, email)


def pick_article(
    runtime: Runtime, newsletter: str, reference: str, action: PickAction, now: datetime
) -> Picked:
    """Pin an article to (or exclude it from) the upcoming edition, named by id or URL."""
    with unit_of_work(runtime.factory) as session:
        article = find_article(session, reference)
        edition = open_edition(
            session, runtime.settings, newsletter, upcoming_slot(runtime.settings, newsletter, now)
        )
        pick(session, edition, article, action)
        return Picked(article.title, action, EditionInfo.of(edition))


def prepare_due(runtime: Runtime, newsletter: str, now: datetime) -> tuple[int, list[str]]:
    """Open the edition due at `now` and prepare it (once); its id and any composing warnings."""
    settings = runtime.settings
    settings.signing_key()  # refuse a missing or placeholder key before any work
    if settings.public_url.scheme != "https" and not settings.demo:
        log.warning(
            "public_url %s is not HTTPS: Gmail and Yahoo ignore one-click unsubscribe links that are not",
            settings.public_url,
        )
    with unit_of_work(runtime.factory) as session:
        edition = open_edition(session, settings, newsletter, due_slot(settings, newsletter, now))
        prepared = prepare(session, settings, edition, Composer(settings.templates_path()))
        return edition.id, prepared.warnings


def editions(runtime: Runtime, limit: int = 50) -> list[EditionSummary]:
    """The latest editions, newest first, with their deliveries per status."""
    with reading(runtime.factory) as session:
        rows = session.scalars(select(Edition).order_by(Edition.id.desc()).limit(limit)).all()
        tallies = ledger.tallies(session, [e.id for e in rows])
        return [EditionSummary(EditionInfo.of(e), tallies.get(e.id, {})) for e in rows]


def edition(runtime: Runtime, edition_id: int) -> EditionSummary:
    """One edition with its deliveries per status."""
    with reading(runtime.factory) as session:
        row = session.get(Edition, edition_id)
        if row is None:
            raise EditionError(f"no edition {edition_id}")
        return EditionSummary(EditionInfo.of(row), ledger.counts(session, edition_id))
