"""Editions end to end on the bundled sample: variants, history, messages, preview. What the
editions' own SQL decides runs on both databases; the commands' output on SQLite."""

from __future__ import annotations

import logging
import re
from collections import Counter
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from newsletter.editions.compose import Card, Composer, DigestView
from newsletter.editions.edition import open_edition
from newsletter.editions.picks import find_article, pick
from newsletter.editions.preview import preview
from newsletter.store.db import unit_of_work
from newsletter.store.models import Delivery, Edition, Subscriber, Variant, VariantArticle
from newsletter.subscribers.tokens import verify
from tests.conftest import WEEKLY_NOV_23, ZONE
from tests.support.cli import newsletter
from tests.support.outbox import messages, placeholders, send

DAILY_NOV_22 = datetime(2026, 11, 22, 6, 30, tzinfo=ZONE)


def received_articles(runtime) -> dict[str, list[int]]:
    with runtime.factory() as session:
        rows = session.execute(
            select(Subscriber.email, VariantArticle.article_id)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .join(VariantArticle, VariantArticle.variant_id == Delivery.variant_id)
            .where(Delivery.status == "sent")
        ).all()
    found: dict[str, list[int]] = {}
    for address, article_id in rows:
        found.setdefault(address, []).append(article_id)
    return found


def article_paths(message) -> list[str]:
    text = message.get_body(("plain",)).get_content()
    return re.findall(r"https://www\.europeantimes\.example(/(?:de/)?\d{4}/\d\d/[^?\s]+)", text)


@pytest.mark.both_databases
def test_consecutive_editions_never_repeat_an_article(newsroom) -> None:
    daily = send(newsroom, "daily", DAILY_NOV_22)
    assert daily.status == "complete" and (daily.sent, daily.counts["skipped"]) == (1, 2)
    # an editor pins, in the next weekly, an article the daily readers already got
    with newsroom.factory() as session:
        daily_article = session.scalars(
            select(VariantArticle.article_id)
            .join(Variant, Variant.id == VariantArticle.variant_id)
            .where(Variant.edition_id == daily.edition_id)
        ).first()
    with unit_of_work(newsroom.factory) as session:
        edition = open_edition(session, newsroom.settings, "weekly", WEEKLY_NOV_23)
        pick(session, edition, find_article(session, str(daily_article)), "pin")
    weekly = send(newsroom, "weekly", WEEKLY_NOV_23)
    assert weekly.status == "complete" and weekly.sent == 9
    # the week after: the window holds nothing new; an old article pinned goes only to who lacks it
    with unit_of_work(newsroom.factory) as session:
        later = open_edition(session, newsroom.settings, "weekly", WEEKLY_NOV_23 + timedelta(days=7))
        pick(session, later, find_article(session, str(daily_article)), "pin")
    again = send(newsroom, "weekly", WEEKLY_NOV_23 + timedelta(days=7))
    assert again.status == "complete"
    for address, ids in received_articles(newsroom).items():
        assert len(ids) == len(set(ids)), f"{address} got an article twice"
    per_reader: dict[str, Counter] = {}
    for edition_id in (daily.edition_id, weekly.edition_id, again.edition_id):
        for message in messages(newsroom, edition_id):
            per_reader.setdefault(message["To"].addresses[0].addr_spec, Counter()).update(
                path.removeprefix("/de") for path in article_paths(message)
            )
    assert per_reader and all(max(c.values()) == 1 for c in per_reader.values())
    with newsroom.factory() as session:
        skipped = session.scalars(
            select(Delivery).where(Delivery.edition_id == again.edition_id, Delivery.status == "skipped")
        ).all()
        assert skipped and all(d.detail == "nothing new for this reader's categories" for d in skipped)
        # a group whose readers all had the pinned article got digests of their own: its first is
        # not kept, nor counted, for nobody
        given = select(Delivery.id).where(Delivery.variant_id == Variant.id).exists()
        for report in (daily, weekly, again):
            unused = session.scalars(
                select(Variant.id).where(Variant.edition_id == report.edition_id, ~given)
            )
            assert unused.all() == []


@pytest.mark.both_databases
def test_messages_are_complete_personal_and_sectioned(newsroom) -> None:
    report = send(newsroom, "weekly", WEEKLY_NOV_23)
    sent = messages(newsroom, report.edition_id)
    assert len(sent) == 9
    key = newsroom.settings.signing_key()
    with newsroom.factory() as session:
        ids = dict(session.execute(select(Subscriber.email, Subscriber.id)).all())
        categories = {s.email: {c.name for c in s.categories} for s in session.scalars(select(Subscriber))}
        variants = session.scalars(select(Variant).where(Variant.edition_id == report.edition_id)).all()
    assert 1 < len(variants) <= 9
    for message in sent:
        address = message["To"].addresses[0].addr_spec
        raw = message.as_bytes()
        assert b"__NL_" not in raw
        parts = list(message.iter_parts())
        assert message.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        text, html = (p.get_content() for p in parts)
        assert "__NL_" not in text and "__NL_" not in html
        # inlined CSS: the elements carry style attributes, not only a <style> block
        assert re.search(r'<td class="card" style="[^"]*padding', html)
        assert re.search(r'<a class="card-title" href="[^"]+"[^>]* style="', html)
        assert "@media (prefers-color-scheme: dark)" in html
        # the signed unsubscribe link is this reader's own, in the header and in both parts
        link = re.search(r"<(http[^>]+/unsubscribe/([^>]+))>", message["List-Unsubscribe"])
        assert link and verify(key, "unsubscribe", link.group(2)) == ids[address]
        assert link.group(1) in text and link.group(1) in html
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # every article's title and link is in the text part
        headings = set(re.findall(r'<h2 class="section-title"[^>]*>([^<]+)</h2>', html)) - {
            "Trending",
            "Im Trend",
        }
        if categories[address]:
            assert headings <= categories[address], (address, headings)
        titles = re.findall(r'class="(?:card-title|trending-title)" href="([^"]+)"[^>]*>([^<]+)</a>', html)
        assert titles
        for url, title in titles:
            assert url.replace("&amp;", "&") in text
            assert title.replace("&amp;", "&").replace("&#39;", "'") in text


@pytest.mark.both_databases
def test_a_german_reader_gets_translations_where_they_exist(newsroom) -> None:
    report = send(newsroom, "weekly", WEEKLY_NOV_23)
    anna = next(
        m for m in messages(newsroom, report.edition_id) if m["To"].addresses[0].addr_spec.startswith("anna")
    )
    text = anna.get_body(("plain",)).get_content()
    assert "Hoher Vertreter besucht Kyjiw mit neuem Hilfspaket [Maschinell übersetzt]" in text
    assert "[Auf Englisch]" in text
    assert "/de/2026/11/" in text


def test_a_variant_near_gmail_clipping_warns(caplog) -> None:
    from newsletter.settings import Settings

    settings = Settings()
    card = Card(
        "https://x.example/a",
        "A long title " * 8,
        "Author",
        "23 November 2026",
        "An excerpt " * 25,
        "https://x.example/i.jpg",
        "Politics",
        3,
        None,
    )
    view = DigestView(
        settings.newsletter("weekly"),
        settings.site,
        "en",
        "23 November 2026",
        [],
        [("Politics", [card] * 80)],
        ["Politics"],
    )
    with caplog.at_level(logging.WARNING, logger="newsletter.compose"):
        composed = Composer(settings.templates_path()).compose(view)
    assert len(composed.html.encode()) > 100_000
    assert composed.warnings and "Gmail clips" in composed.warnings[0]
    assert any("Gmail clips" in r.message for r in caplog.records)
    small = DigestView(
        settings.newsletter("weekly"),
        settings.site,
        "en",
        "23 November 2026",
        [],
        [("Politics", [card] * 3)],
        ["Politics"],
    )
    assert Composer(settings.templates_path()).compose(small).warnings == []


@pytest.mark.both_databases
def test_preview_matches_what_is_sent(newsroom) -> None:
    composer = Composer(newsroom.settings.templates_path())
    with newsroom.factory() as session:
        result = preview(
            session,
            newsroom.settings,
            composer,
            "weekly",
            WEEKLY_NOV_23,  # the slot previewed
            email="tom.obrien@example.ie",
        )
    report = send(newsroom, "weekly", WEEKLY_NOV_23)
    tom = next(m for m in messages(newsroom, report.edition_id) if "tom" in m["To"])
    assert tom["Subject"] == result.composed.subject
    sent_text = tom.get_body(("plain",)).get_content()
    # All but the links to Tom's account, placeholders in a preview.
    assert placeholders(sent_text.replace("\r\n", "\n")).strip() == result.text.strip()


def test_preview_explain_names_every_reason(newsroom, tmp_path) -> None:
    send(newsroom, "daily", DAILY_NOV_22)
    with unit_of_work(newsroom.factory) as session:
        edition = open_edition(session, newsroom.settings, "weekly", WEEKLY_NOV_23)
        excluded = find_article(
            session,
            "https://www.europeantimes.example/2026/11/night-trains-return-between-brussels-and-prague/",
        )
        pick(session, edition, excluded, "exclude")
    config = tmp_path / "n.toml"
    config.write_text(
        f'database_url = "{newsroom.settings.database_url}"\ntimezone = "Europe/Brussels"\n'
        '[site]\nurl = "https://www.europeantimes.example"\n'
        "[newsletters.weekly]\nper_category = 1\ntrending = 0\n[newsletters.daily]\n"
    )
    result = newsletter(
        "preview",
        "--newsletter",
        "weekly",
        "--email",
        "maria.garcia@example.es",
        "--explain",
        "--text",
        "--at",
        "2026-11-23T06:00",
        env={"NEWSLETTER_CONFIG": str(config), "COLUMNS": "250"},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    explained = " ".join(result.stderr.split())
    assert "already sent in an earlier edition" in explained
    assert "outside the window" in explained
    assert "in Politics" in explained
    assert "Subject:" in explained and "POLITICS" in result.stdout
    others = newsletter(
        "preview",
        "--category",
        "europe",
        "--category",
        "Health",
        "--explain",
        "--at",
        "2026-11-23T06:00",
        env={"NEWSLETTER_CONFIG": str(config), "COLUMNS": "250"},
        cwd=tmp_path,
    )
    explained = " ".join(others.stderr.split())
    assert "excluded by an editor" in explained
    assert "over the cap of 1 in Health" in explained
    assert others.stdout.startswith("<!DOCTYPE html>")


def test_pin_and_exclude_from_the_command_line(newsroom, tmp_path) -> None:
    config = tmp_path / "n.toml"
    config.write_text(f'database_url = "{newsroom.settings.database_url}"\ntimezone = "Europe/Brussels"\n')
    env = {"NEWSLETTER_CONFIG": str(config)}
    pinned = newsletter("edition", "pin", "1", "--at", "2026-11-22T12:00", env=env, cwd=tmp_path)
    assert pinned.returncode == 0 and "pinned to the weekly edition of 2026-11-23 07:00 CET" in " ".join(
        pinned.stdout.split()
    )
    missing = newsletter("edition", "exclude", "99999", env=env, cwd=tmp_path)
    assert missing.returncode == 1 and "no article '99999'" in missing.stderr
    with newsroom.factory() as session:
        edition = session.scalars(select(Edition)).one()
        assert (edition.newsletter, edition.slot, edition.status) == ("weekly", "2026-11-23T07:00", "draft")


def test_trending_command_explains_each_score(newsroom, tmp_path) -> None:
    config = tmp_path / "n.toml"
    config.write_text(f'database_url = "{newsroom.settings.database_url}"\ntimezone = "Europe/Brussels"\n')
    env = {"NEWSLETTER_CONFIG": str(config), "COLUMNS": "250"}
    result = newsletter("trending", "--at", "2026-11-23T07:00", "--days", "30", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "│" in line]
    first = [cell.strip() for cell in lines[0].split("│")]
    shares = [int(cell.rstrip("%")) for cell in first[3:7]]
    assert first[1] == "1" and 98 <= sum(shares) <= 102  # each signal's share of the score
    assert shares[0] > 0  # the top article is on the site's Trending list
    scores = [float(line.split("│")[2]) for line in lines]
    assert scores == sorted(scores, reverse=True)
    health = newsletter("trending", "--category", "Health", "--at", "2026-11-23T07:00", env=env, cwd=tmp_path)
    assert "Health" in health.stdout and "Politics" not in health.stdout.replace("Politics,", "")
