"""`newsletter fetch` against feeds served on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from newsletter.ingest.run import fetch_feeds
from newsletter.settings import FeedSettings
from newsletter.store.models import Article, Category, Feed
from tests.conftest import FIXTURES, SAMPLE, SECTIONS
from tests.feedserver import FeedServer, Route

pytestmark = pytest.mark.both_databases


def serve(server: FeedServer, path: str, body: bytes, **route: object) -> str:
    server.routes[path] = Route(body=body, **route)
    return server.url(path)


def site(make_runtime, feeds: list[dict], fetch: dict | None = None, **overrides):
    fetching = {"allow_private": True, **(fetch or {})}  # the test servers are on loopback
    return make_runtime(
        feeds=[FeedSettings(**f) for f in feeds], site={"categories": SECTIONS}, fetch=fetching, **overrides
    )


def snapshot(runtime) -> list[tuple]:
    with runtime.factory() as session:
        return [
            (
                a.key,
                a.language,
                a.url,
                a.title,
                a.summary_html,
                a.content_html,
                a.comment_count,
                tuple(c.slug for c in a.categories),
            )
            for a in session.scalars(select(Article).order_by(Article.key, Article.language))
        ]


def count(runtime, model) -> int:
    with runtime.factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_http_feed_conditional_get_and_idempotence(make_runtime, feed_server) -> None:
    url = serve(
        feed_server,
        "/feed/",
        (SAMPLE / "site.xml").read_bytes(),
        etag='"v1"',
        last_modified="Sun, 22 Nov 2026 08:00:00 GMT",
    )
    runtime = site(make_runtime, [{"url": url}])
    [first] = fetch_feeds(runtime.settings, runtime.factory)
    assert (first.status, first.new) == ("ok", 46)
    before = snapshot(runtime)
    [second] = fetch_feeds(runtime.settings, runtime.factory)
    sent = feed_server.requests_to("/feed/")[-1]
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == "Sun, 22 Nov 2026 08:00:00 GMT"
    assert "newsletter" in sent["user-agent"]
    assert second.status == "not-modified" and second.new == second.updated == 0
    assert snapshot(runtime) == before
    # without validators the server answers 200 again: the same bytes are neither parsed nor stored
    feed_server.routes["/feed/"].etag = None
    [third] = fetch_feeds(runtime.settings, runtime.factory)
    assert (third.status, third.new, third.updated, third.unchanged) == ("not-modified", 0, 0, 0)
    assert snapshot(runtime) == before
    with runtime.factory() as session:
        row = session.scalars(select(Feed)).one()
        assert row.last_http_status == 200 and row.entries_seen == 46 and row.last_error is None
    # other bytes are read in full again
    feed_server.routes["/feed/"].body += b"\n"
    [fourth] = fetch_feeds(runtime.settings, runtime.factory)
    assert (fourth.status, fourth.new, fourth.updated, fourth.unchanged) == ("ok", 0, 0, 46)
    assert snapshot(runtime) == before


def test_site_and_category_feeds_share_articles(make_runtime, feed_server) -> None:
    feeds = [
        {"url": serve(feed_server, "/feed/", (SAMPLE / "site.xml").read_bytes())},
        {
            "url": serve(
                feed_server, "/category/health/feed/", (SAMPLE / "category-health.xml").read_bytes()
            ),
            "category": "health",
            "category_name": "Health",
        },
        {
            "url": serve(feed_server, "/trending/", (SAMPLE / "trending.xml").read_bytes()),
            "trending": True,
        },
        {
            "url": serve(feed_server, "/de/feed/", (SAMPLE / "site-de.xml").read_bytes()),
            "language": "de",
        },
    ]
    runtime = site(make_runtime, feeds)
    reports = fetch_feeds(runtime.settings, runtime.factory)
    assert [r.status for r in reports] == ["ok"] * 4
    assert count(runtime, Article) == 46 + 12
    with runtime.factory() as session:
        health = session.scalars(
            select(Article).where(Article.categories.any(Category.slug == "health"), Article.language == "en")
        ).all()
        assert len(health) == 7
        sections = {c.slug for c in session.scalars(select(Category).where(Category.is_section))}
        assert sections == {
            "politics",
            "health",
            "europe",
            "business",
            "technology",
            "culture",
            "human-rights",
        }
        assert session.scalar(select(Category).where(Category.slug == "europol")).is_section is False
        ranked = session.scalars(
            select(Article).where(Article.trending_rank.is_not(None)).order_by(Article.trending_rank)
        ).all()
        assert len(ranked) == 8 and ranked[0].title.startswith("25 arrested")
        german = session.scalars(select(Article).where(Article.language == "de")).all()
        originals = {a.key for a in session.scalars(select(Article).where(Article.language == "en"))}
        assert all(a.key in originals for a in german)  # a translation shares its original's key


def test_trending_rank_follows_the_latest_list(make_runtime, feed_server) -> None:
    sample = (SAMPLE / "trending.xml").read_text()
    url = serve(feed_server, "/trending/", sample.encode())
    runtime = site(make_runtime, [{"url": url, "trending": True}])
    fetch_feeds(runtime.settings, runtime.factory)
    items = re.findall(r"<item>.*?</item>", sample, re.S)
    head, tail = sample[: sample.index("<item>")], sample[sample.rindex("</item>") + 7 :]
    shorter = head + "".join(items[:3][::-1]) + tail
    feed_server.routes["/trending/"].body = shorter.encode()
    fetch_feeds(runtime.settings, runtime.factory)
    with runtime.factory() as session:
        ranked = session.scalars(
            select(Article).where(Article.trending_rank.is_not(None)).order_by(Article.trending_rank)
        ).all()
    assert len(ranked) == 3 and ranked[-1].title.startswith("25 arrested")


def test_edited_entry_updates_its_article(make_runtime, feed_server) -> None:
    original = (SAMPLE / "category-health.xml").read_text()
    url = serve(feed_server, "/feed/", original.encode())
    runtime = site(make_runtime, [{"url": url, "category": "health"}])
    fetch_feeds(runtime.settings, runtime.factory)
    edited = original.replace(
        "New guidelines cut sugar in school meals",
        "New guidelines cut sugar and salt in school meals",
    ).replace("<slash:comments>8</slash:comments>", "<slash:comments>9</slash:comments>", 1)
    feed_server.routes["/feed/"].body = edited.encode()
    [report] = fetch_feeds(runtime.settings, runtime.factory)
    assert (report.new, report.updated) == (0, 1)
    assert count(runtime, Article) == 7
    with runtime.factory() as session:
        article = session.scalars(select(Article).where(Article.key.endswith("?p=1046"))).one()
    assert article.title == "New guidelines cut sugar and salt in school meals"
    assert article.comment_count == 9


def test_odd_entries_are_reported_and_never_duplicated(make_runtime, feed_server) -> None:
    def feed(items: str) -> bytes:
        return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://o.example/</link>{items}</channel></rss>'.encode()

    url = serve(
        feed_server,
        "/odd/",
        feed(
            "<item><title>No date</title><link>https://o.example/a/</link><guid>https://o.example/?p=1</guid></item>"
            "<item><title>From the future</title><link>https://o.example/b/</link><guid>https://o.example/?p=2</guid>"
            "<pubDate>Fri, 01 Jan 2100 10:00:00 +0000</pubDate></item>"
        ),
    )
    runtime = site(make_runtime, [{"url": url}])
    [report] = fetch_feeds(runtime.settings, runtime.factory)
    assert report.new == 2
    assert any("no date" in w for w in report.warnings)
    assert any("future" in w for w in report.warnings)
    with runtime.factory() as session:
        future = session.scalars(select(Article).where(Article.url == "https://o.example/b/")).one()
        assert future.published_at.year < 2100
    # the guid of a known link changes: the same article, reported, no duplicate
    feed_server.routes["/odd/"].body = feed(
        "<item><title>No date</title><link>https://o.example/a/</link><guid>https://o.example/?p=99</guid></item>"
    )
    [report] = fetch_feeds(runtime.settings, runtime.factory)
    assert any("guid changed" in w for w in report.warnings)
    assert count(runtime, Article) == 2


def test_hostile_feed_is_stored_clean(make_runtime, feed_server) -> None:
    url = serve(feed_server, "/evil/", (FIXTURES / "hostile.xml").read_bytes())
    runtime = site(make_runtime, [{"url": url}])
    [report] = fetch_feeds(runtime.settings, runtime.factory)
    assert report.status == "ok"
    danger = re.compile(r"<script|\bon[a-z]+\s*=|javascript:", re.I)
    for row in snapshot(runtime):
        for value in row[3:6]:
            assert not danger.search(value), value


def test_failing_feeds_are_reported_and_the_others_ingested(make_runtime, feed_server) -> None:
    feed_server.routes["/loop/"] = Route(status=302, location="/loop/")
    feeds = [
        {"url": serve(feed_server, "/broken/", (FIXTURES / "broken.xml").read_bytes())},
        {
            "url": serve(
                feed_server,
                "/html/",
                b"<!DOCTYPE html><html><body>Not a feed</body></html>",
                content_type="text/html; charset=utf-8",
            )
        },
        {"url": serve(feed_server, "/500/", b"oops", status=500)},
        {"url": serve(feed_server, "/slow/", (SAMPLE / "site.xml").read_bytes(), delay=2.0)},
        {"url": feed_server.url("/loop/")},
        {"url": feed_server.url("/missing/")},
        {"url": serve(feed_server, "/good/", (SAMPLE / "category-europe.xml").read_bytes())},
    ]
    runtime = site(make_runtime, feeds, fetch={"timeout_seconds": 0.5})
    reports = {
        r.url.rsplit(":", 1)[-1].split("/", 1)[1]: r for r in fetch_feeds(runtime.settings, runtime.factory)
    }
    assert reports["broken/"].status == "partial" and reports["broken/"].new >= 1
    assert "malformed" in reports["broken/"].problem
    assert reports["html/"].status == "error" and "HTML" in reports["html/"].problem
    assert reports["500/"].status == "error" and "500" in reports["500/"].problem
    assert reports["slow/"].status == "error" and "timed out" in reports["slow/"].problem
    assert reports["loop/"].status == "error" and "redirects" in reports["loop/"].problem
    assert reports["missing/"].status == "error" and "404" in reports["missing/"].problem
    assert reports["good/"].status == "ok" and reports["good/"].new == 7
    with runtime.factory() as session:
        errors = {f.url.rsplit("/", 2)[-2]: f for f in session.scalars(select(Feed))}
        assert errors["500"].last_status == "error" and "500" in errors["500"].last_error
        assert errors["500"].last_http_status == 500
        assert errors["broken"].last_status == "partial"


def test_oversized_body_is_refused(make_runtime, feed_server) -> None:
    url = serve(feed_server, "/big/", (SAMPLE / "site.xml").read_bytes())
    runtime = site(make_runtime, [{"url": url}], fetch={"max_bytes": 10_000})
    [report] = fetch_feeds(runtime.settings, runtime.factory)
    assert report.status == "error" and "limit" in report.problem
    assert count(runtime, Article) == 0
