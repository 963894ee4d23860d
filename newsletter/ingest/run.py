"""Pulling every configured feed into the store; one feed's failure never stops the others."""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.errors import FeedError
from newsletter.ingest.articles import Placement, mark_trending, store_entries
from newsletter.ingest.fetch import FetchStopped, fetch, make_client
from newsletter.ingest.parse import parse_feed
from newsletter.settings import FeedSettings, Settings
from newsletter.store.categories import configured_sections, feed_section
from newsletter.store.db import unit_of_work
from newsletter.store.models import Feed, utcnow
from newsletter.store.statuses import READ, FeedStatus
from newsletter.text import display_url

log = logging.getLogger("newsletter.feeds")
# A body this large is collected as soon as it is parsed: feedparser leaves reference cycles (its
# parsers, an exception's frames) holding copies of it, which the collector's own pace frees only
# refreshes later (two 10 MB feeds that fail to parse: the job grew by tens of MB a refresh).
COLLECT_AFTER_BYTES = 1_000_000


@dataclass
class FeedReport:
    """What one feed's fetch did; `url` is fit to show (credentials masked)."""

    url: str
    status: FeedStatus
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    problem: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def read(self) -> bool:
        return self.status in READ


def fetch_feeds(
    settings: Settings,
    factory: sessionmaker[Session],
    on_report: Callable[[FeedReport], None] = lambda _report: None,
    client: httpx.Client | None = None,
    stop: threading.Event | None = None,
) -> list[FeedReport]:
    """Fetch, parse and store every feed in order; a report for each, good or bad. Once `stop`
    is set, the feed being read is cut short and the rest left for the next time (no report)."""
    reports = []
    known = configured_sections(settings) if settings.site.categories else {}  # {}: every term is one
    with client or make_client(settings.fetch) as http:
        for feed in settings.feeds:
            if stop is not None and stop.is_set():
                break
            try:
                report = fetch_feed(settings, factory, http, feed, known, stop)
            except FetchStopped:
                log.info("%s: cut short, the job is stopping", display_url(feed.url))
                break
            _log(report)
            on_report(report)
            reports.append(report)
    return reports


def _log(report: FeedReport) -> None:
    for warning in report.warnings:
        log.warning("%s: %s", report.url, warning)
    if report.problem:
        log.error("%s: %s", report.url, report.problem)
    log.info(
        "%s: %s, %d new, %d updated, %d unchanged",
        report.url,
        report.status,
        report.new,
        report.updated,
        report.unchanged,
    )


def fetch_feed(
    settings: Settings,
    factory: sessionmaker[Session],
    client: httpx.Client,
    config: FeedSettings,
    known_sections: dict[str, str],
    stop: threading.Event | None = None,
) -> FeedReport:
    with unit_of_work(factory) as session:
        row = session.scalars(select(Feed).where(Feed.url == config.url)).one_or_none()
        if row is None:
            row = Feed(url=config.url, entries_seen=0)
            session.add(row)
        validators = (row.etag, row.last_modified)
        # The bytes last read in full: the same bytes again need no parsing and no storing.
        known = row.content_hash if row.last_status in READ else None
    now = utcnow()
    began = time.monotonic()
    shown = display_url(config.url)
    size = 0
    try:
        fetched = fetch(client, config.url, settings.fetch, *validators, stop=stop)
        size = len(fetched.content or b"")
        digest = hashlib.sha256(fetched.content).hexdigest() if fetched.content is not None else None
        unchanged = fetched.content is None or digest == known
        parsed = None if unchanged else parse_feed(fetched.content or b"", fetched.url, fetched.headers)
    except FeedError as exc:
        _record(factory, config.url, now, began, FeedStatus.ERROR, error=exc.problem, http_status=exc.status)
        return FeedReport(shown, FeedStatus.ERROR, problem=exc.problem)
    finally:
        if size > COLLECT_AFTER_BYTES:
            gc.collect()
    if parsed is None:
        _record(factory, config.url, now, began, FeedStatus.NOT_MODIFIED, http_status=fetched.status)
        return FeedReport(shown, FeedStatus.NOT_MODIFIED)
    language = config.language or parsed.language or settings.site.language
    own = feed_section(settings, config) if config.category else None
    placement = Placement(language, own, known_sections)
    status = FeedStatus.PARTIAL if parsed.problem else FeedStatus.OK
    with unit_of_work(factory) as session:
        stored = store_entries(session, parsed.entries, placement, now)
        if config.trending:
            mark_trending(session, stored.article_ids)
        row = session.scalars(select(Feed).where(Feed.url == config.url)).one()
        row.etag, row.last_modified = fetched.etag, fetched.last_modified
        row.content_hash = digest if status == FeedStatus.OK else None  # a partial read is read again
        row.entries_seen = len(parsed.entries)
        _apply(row, now, began, status, fetched.status, parsed.problem)
    return FeedReport(
        shown,
        status,
        new=stored.new,
        updated=stored.updated,
        unchanged=stored.unchanged,
        problem=parsed.problem,
        warnings=parsed.warnings + stored.warnings,
    )


def _apply(
    row: Feed, now: datetime, began: float, status: FeedStatus, http_status: int | None, error: str | None
) -> None:
    """The fetch's outcome on its feed's row; `began` (monotonic) times it."""
    row.last_fetched_at = now
    row.last_fetch_seconds = round(time.monotonic() - began, 3)
    row.last_status = status
    row.last_http_status = http_status
    row.last_error = error
    if status in READ:
        row.last_ok_at = now


def _record(
    factory: sessionmaker[Session],
    url: str,
    now: datetime,
    began: float,
    status: FeedStatus,
    error: str | None = None,
    http_status: int | None = None,
) -> None:
    with unit_of_work(factory) as session:
        row = session.scalars(select(Feed).where(Feed.url == url)).one()
        _apply(row, now, began, status, http_status, error)
