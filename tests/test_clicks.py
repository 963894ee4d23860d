"""Tracked article links, through the pages' app in this process: a click counts once per reader,
edition and article, then redirects to the article; a link the product did not sign is refused
(no open redirect)."""

from __future__ import annotations

import email
import email.policy
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, insert, select

from newsletter.services import sending
from newsletter.store.db import HEAD_REVISION, make_engine, revisions, upgrade
from newsletter.store.models import Click, Subscriber
from newsletter.subscribers.tokens import sign
from tests.support.clock import NOW
from tests.support.editions import ON_TIME, tracked
from tests.support.store import migrate
from tests.support.web import ANNA, MARC, path_of, serve


def article_links(runtime, address: str) -> list[str]:
    [path] = [p for p in runtime.settings.outbox_dir.rglob("*.eml") if address in p.name]
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    links = [link.replace("&amp;", "&") for link in re.findall(r'class="card-title" href="([^"]+)"', html)]
    assert links and all(link in text for link in links)  # the text part carries them too
    return links


@pytest.mark.both_databases
def test_a_click_is_counted_once_and_leads_to_the_article(newsroom, tmp_path) -> None:
    tracked(newsroom)
    report = sending.send(newsroom, "weekly", ON_TIME)
    assert report.status == "complete"
    anna_links, marc_links = article_links(newsroom, ANNA), article_links(newsroom, MARC)
    assert all("/c/" in link for link in anna_links + marc_links)
    for site in serve(newsroom, tmp_path, extra="[links]\ntrack_clicks = true\n"):
        first = path_of(anna_links[0])
        for _ in range(2):  # twice: one click counted
            answer = site.get(first)
            assert answer.status_code == 302, answer.text
            target = answer.headers["location"]
            assert target.startswith("https://www.europeantimes.example/") and "utm_campaign=weekly" in target
            assert answer.headers["referrer-policy"] == "no-referrer"
        with site.client() as probe:  # a link scanner's HEAD is no reader's click: nothing counted
            assert probe.head(path_of(marc_links[0])).status_code == 405
        assert site.get(path_of(marc_links[0])).status_code == 302
        article_part, reader_part = first.split("/")[2:4]
        # Another reader's token on Anna's link counts for that reader; a dummy counts nothing.
        assert site.get(f"/c/{article_part}/preview").status_code == 302
        # A link we did not sign leads nowhere: not another key's, not an altered one.
        key = b"someone-elses-key-0123456789"
        forged = sign(key, "article", 1, scope="1")
        assert site.get(f"/c/{forged}/{reader_part}").status_code == 400
        altered = article_part[:-3] + ("AAA" if not article_part.endswith("AAA") else "BBB")
        assert site.get(f"/c/{altered}/{reader_part}").status_code == 400
        unsubscribe_token = sign(newsroom.settings.signing_key(), "unsubscribe", 1, scope="weekly")
        assert site.get(f"/c/{unsubscribe_token}/{reader_part}").status_code == 400
    with newsroom.factory() as session:
        rows = session.execute(
            select(Subscriber.email, Click.article_id, Click.edition_id).join(
                Subscriber, Subscriber.id == Click.subscriber_id
            )
        ).all()
    assert sorted(email for email, _article, _edition in rows) == [ANNA, MARC]
    assert {edition for _email, _article, edition in rows} == {report.edition_id}


@pytest.mark.both_databases
def test_sixty_clicks_at_once_are_counted_once(newsroom, tmp_path) -> None:
    """A link scanner or a double click sends the same link many times at once: one row per
    reader, edition and article, since the trending score counts rows."""
    tracked(newsroom)
    sending.send(newsroom, "weekly", ON_TIME)
    link = path_of(article_links(newsroom, ANNA)[0])
    for site in serve(newsroom, tmp_path, extra="[links]\ntrack_clicks = true\n"):
        with ThreadPoolExecutor(12) as pool:
            codes = [answer.status_code for answer in pool.map(site.get, [link] * 60)]
        assert set(codes) == {302}
    with newsroom.factory() as session:
        assert session.scalar(select(func.count()).select_from(Click)) == 1


@pytest.mark.both_databases
def test_the_migration_keeps_one_of_each_click_counted_twice(newsroom) -> None:
    """A store from before the constraint holds clicks counted twice: the first of each stays,
    clicks whose reader is gone (no reader) all stay."""
    report = sending.send(newsroom, "weekly", ON_TIME)
    engine = make_engine(newsroom.settings.database_url)
    migrate(engine, "downgrade", "0012")
    with newsroom.factory() as session:
        [reader, other] = session.scalars(select(Subscriber.id).order_by(Subscriber.id).limit(2))
    rows = [(1, reader), (1, reader), (1, reader), (2, reader), (1, other), (1, None), (1, None)]
    with engine.begin() as connection:
        for article, subscriber in rows:
            connection.execute(
                insert(Click.__table__).values(
                    article_id=article, edition_id=report.edition_id, subscriber_id=subscriber, clicked_at=NOW
                )
            )
    upgrade(engine)
    with engine.connect() as connection:
        assert revisions(connection) == [HEAD_REVISION]
        kept = connection.execute(select(Click.article_id, Click.subscriber_id).order_by(Click.id)).all()
    engine.dispose()
    assert [tuple(row) for row in kept] == [(1, reader), (2, reader), (1, other), (1, None), (1, None)]


def test_links_go_straight_to_the_site_when_clicks_are_not_tracked(newsroom) -> None:
    sending.send(newsroom, "weekly", ON_TIME)
    links = article_links(newsroom, ANNA)
    assert all(link.startswith("https://www.europeantimes.example/") for link in links)


def test_sendgrid_fills_each_readers_part_of_a_tracked_link(newsroom, mail_api) -> None:
    from tests.support.sending import prepared, send_with_sendgrid

    tracked(newsroom)
    edition_id = prepared(newsroom)
    report = send_with_sendgrid(newsroom, mail_api, edition_id)
    assert report.status == "complete"
    parts = []
    for payload in mail_api.payloads:  # one per variant
        html = next(part["value"] for part in payload["content"] if part["type"] == "text/html")
        marker = re.search(r"/c/[\w.-]+/(__NL_CLICK_\w+__)", html).group(1)
        parts += [p["substitutions"][marker] for p in payload["personalizations"]]
    assert len(set(parts)) == len(parts) == report.sent  # each reader their own part
