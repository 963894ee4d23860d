"""Alerts a feed sends (issue #24, point 2): an article a fetch stores in a trigger category is
alerted by the scheduled job's refresh that fetched it, once, unless it is older than
`trigger_max_age_minutes`; an editor's alert of it, or a second scheduler, makes no second."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from newsletter.sending.providers.outbox import OutboxProvider
from newsletter.services import breaking
from newsletter.store.models import Article, AuditEntry, Edition
from tests.conftest import NEWSROOM, SECTIONS
from tests.feedserver import Route
from tests.support.alerts import newsletters, opt_in
from tests.support.clock import NOW
from tests.support.outbox import messages
from tests.support.schedule import runner

NUTRITION = "https://www.europeantimes.example/?p=1046"  # tagged Nutrition in the sample


def item(number: int, title: str, category: str, minutes_ago: int) -> str:
    published = (NOW - timedelta(minutes=minutes_ago)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return (
        f"<item><title>{title}</title><link>https://o.example/{number}/</link>"
        f"<guid>https://o.example/?p={number}</guid><pubDate>{published}</pubDate>"
        f"<category>{category}</category><description>About {title}.</description></item>"
    )


def rss(*items: str) -> bytes:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"<link>https://o.example/</link>{''.join(items)}</channel></rss>"
    ).encode()


def alerts(runtime) -> list[tuple[int, str]]:
    with runtime.factory() as session:
        rows = session.execute(
            select(Edition.id, Article.title)
            .join(Article, Article.id == Edition.article_id)
            .order_by(Edition.id)
        )
        return [(edition_id, title) for edition_id, title in rows]


def test_a_fetch_storing_a_fresh_article_in_a_trigger_category_alerts_it_once(
    make_runtime, feed_server
) -> None:
    feed_server.routes["/feed/"] = Route(
        body=rss(
            item(1, "Old news", "Breaking News", minutes_ago=180),
            item(2, "Election called", "Politics", minutes_ago=5),
        )
    )
    site = make_runtime(
        feeds=[{"url": feed_server.url("/feed/")}],
        site={"categories": SECTIONS},
        timezone="Europe/Brussels",
        newsletters=newsletters(trigger_categories=["breaking-news"], trigger_max_age_minutes=60),
    )
    readers = opt_in(site, 3)
    runner(site, NOW).refresh()
    assert alerts(site) == []  # too old, or not in a trigger category
    feed_server.routes["/feed/"].body = rss(
        item(1, "Old news", "Breaking News", minutes_ago=180),
        item(2, "Election called", "Politics", minutes_ago=5),
        item(3, "Parliament dissolved", "Breaking News", minutes_ago=2),
    )
    runner(site, NOW + timedelta(minutes=1)).refresh()  # the refresh that stored it sends it
    [(edition_id, title)] = alerts(site)
    assert title == "Parliament dissolved"
    assert sorted(m["To"] for m in messages(site, edition_id)) == sorted(readers)
    runner(site, NOW + timedelta(minutes=2)).refresh()  # the next fetch sees it again: nothing more
    assert len(alerts(site)) == 1 and len(messages(site, edition_id)) == 3
    with site.factory() as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "alert")).one()
    assert entry.client == "feed trigger" and '"trigger": "breaking-news"' in (entry.detail or "")


@pytest.fixture
def nutrition(newsroom, make_runtime):
    """The sample newsroom with alerts triggered by its Nutrition tag, and the moment a fetch
    stores the tagged article five minutes after it was published."""
    site = make_runtime(**NEWSROOM, newsletters=newsletters(trigger_categories=["Nutrition"]))
    with site.factory() as session:
        published = session.scalars(
            select(Article.published_at).where(Article.key == NUTRITION, Article.language == "en")
        ).one()
    return site, published + timedelta(minutes=5)


@pytest.mark.both_databases
def test_a_trigger_after_an_editors_alert_of_the_same_article_sends_nothing_more(nutrition) -> None:
    site, now = nutrition
    readers = opt_in(site, 4)
    opened = breaking.open_by_editor(site, "breaking", NUTRITION, now - timedelta(minutes=3))
    breaking.send_alert(site, opened.edition.id, now, OutboxProvider(site.settings.outbox_dir))
    assert breaking.trigger(site, now) == []
    assert breaking.send_due(site, now) == []
    assert sorted(m["To"] for m in messages(site, opened.edition.id)) == sorted(readers)
    with site.factory() as session:
        assert session.scalar(select(func.count()).where(Edition.article_id.is_not(None))) == 1


@pytest.mark.both_databases
def test_two_schedulers_triggering_at_once_open_one_alert(nutrition) -> None:
    site, now = nutrition
    opt_in(site, 2)
    start = threading.Barrier(2)
    opened: list[list[int]] = []

    def one() -> None:
        start.wait()
        opened.append(breaking.trigger(site, now))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(ids) for ids in opened) == [0, 1]
    assert breaking.trigger(site, now + timedelta(hours=2)) == []  # too old by then, and alerted
