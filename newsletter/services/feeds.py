"""Feeds: fetching them into the store, and what each last fetch found."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from newsletter.errors import NewsletterError
from newsletter.store.db import reading
from newsletter.store.models import Article, Category, Feed, article_categories
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import FeedStatus
from newsletter.text import display_url

if TYPE_CHECKING:
    from newsletter.ingest.run import FeedReport


@dataclass(frozen=True)
class FeedState:
    """A feed as the store knows it: failures stay visible until a fetch succeeds; `url` is fit
    to show (credentials masked)."""

    url: str
    status: FeedStatus | None  # None: never fetched
    http_status: int | None
    fetched_at: datetime | None
    read_well_at: datetime | None
    entries: int
    error: str | None


@dataclass(frozen=True)
class StoredArticles:
    """Articles per section and language, and per language in all."""

    by_section: list[tuple[str, str, int]]
    by_language: list[tuple[str, int]]


def fetch(
    runtime: Runtime,
    on_report: Callable[[FeedReport], None] = lambda _r: None,
    stop: threading.Event | None = None,
) -> list[FeedReport]:
    """Fetch every configured feed into the store; a report for each, good or bad (until `stop`
    is set: see `fetch_feeds`)."""
    if not runtime.settings.feeds:
        raise NewsletterError("no feeds configured: add [[feeds]] tables to the settings file")
    from newsletter.ingest.run import fetch_feeds  # the HTTP client and parsers: only to fetch

    return fetch_feeds(runtime.settings, runtime.factory, on_report=on_report, stop=stop)


def feed_states(runtime: Runtime) -> list[FeedState]:
    with reading(runtime.factory) as session:
        return [
            FeedState(
                display_url(f.url),
                f.last_status,
                f.last_http_status,
                f.last_fetched_at,
                f.last_ok_at,
                f.entries_seen,
                f.last_error,
            )
            for f in session.scalars(select(Feed).order_by(Feed.id))
        ]


def stored_articles(runtime: Runtime) -> StoredArticles:
    with reading(runtime.factory) as session:
        by_section = session.execute(
            select(Category.name, Article.language, func.count(Article.id))
            .join(article_categories, article_categories.c.category_id == Category.id)
            .join(Article, Article.id == article_categories.c.article_id)
            .where(Category.is_section)
            .group_by(Category.name, Article.language)
            .order_by(Category.name, Article.language)
        ).all()
        by_language = session.execute(
            select(Article.language, func.count()).group_by(Article.language).order_by(Article.language)
        ).all()
    return StoredArticles(
        [(name, language, count) for name, language, count in by_section],
        [(language, count) for language, count in by_language],
    )
