"""The public archive (issue #14), `newsletter serve`'s app in this process (a browser's test over
a loopback socket): a sent edition's pages in each language with canonical, Open Graph, JSON-LD
and feed links; the index, sitemap and robots.txt; an ETag round trip answering 304; a withdrawn
edition answering 410 and gone from the feeds; a German reader's email linking the German page
and feed; and nothing of any reader anywhere in what is served."""

from __future__ import annotations

import email
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import feedparser
import pytest
from sqlalchemy import select

from newsletter.ingest.run import fetch_feeds
from newsletter.services import archive, sending
from newsletter.store.db import unit_of_work
from newsletter.store.models import (
    Article,
    Click,
    Document,
    Edition,
    Publication,
    Subscriber,
    Variant,
    VariantArticle,
)
from newsletter.subscribers.bulk import import_csv
from newsletter.web.archive import FRESH_SECONDS
from tests.conftest import WEEKLY_NOV_23
from tests.support.browser import Browser, in_a_browser
from tests.support.web import Site, serve

# Readers whose every trace is searched for in what the archive serves.
CANARIES = (
    "email,name,language,categories,newsletters,status\n"
    "zqx.canary.one@example.org,Quentin Zyxwvut,en,,weekly,active\n"
    "ypw.canary.two@example.net,Brunhilde Kwaxolotl,de,Politics,weekly,active\n"
)
TRACES = ("zqx.canary", "ypw.canary", "Zyxwvut", "Kwaxolotl", "utm_", "@example.")
# A reader's token in a link (robots.txt names the paths themselves, without one).
TOKEN_LINK = re.compile(r"/(unsubscribe|preferences|confirm|address|c)/[\w.-]{6,}")
EDITION = "/archive/weekly/2026-11-23"


def sent_and_served(newsroom, tmp_path, listening: bool = False) -> Iterator[Site]:
    """The sample's readers and two canaries, the weekly edition of 23 November sent through the
    outbox (and so archived), and the pages (`listening`: over a loopback socket, for a browser)."""
    readers = tmp_path / "canaries.csv"
    readers.write_text(CANARIES, encoding="utf-8")
    with unit_of_work(newsroom.factory) as session:
        assert not import_csv(session, newsroom.settings, readers, confirmed=True).rejected
    report = sending.send(newsroom, "weekly", WEEKLY_NOV_23 + timedelta(minutes=1))
    assert report.status == "complete", report
    yield from serve(newsroom, tmp_path, listening=listening)


@pytest.fixture
def archived(newsroom, tmp_path) -> Iterator[Site]:
    yield from sent_and_served(newsroom, tmp_path)


@pytest.fixture
def archived_on_a_socket(newsroom, tmp_path) -> Iterator[Site]:
    yield from sent_and_served(newsroom, tmp_path, listening=True)


def outbox_to(site: Site, address: str) -> Message:
    folder = Path(site.runtime.settings.outbox_dir)
    found = [p for p in folder.glob("*/*.eml") if address in p.name]
    assert len(found) == 1, found
    return email.message_from_bytes(found[0].read_bytes())


def part(message: Message, kind: str) -> str:
    body = next(p for p in message.walk() if p.get_content_type() == kind)
    payload = body.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(body.get_content_charset() or "utf-8")


@pytest.mark.both_databases
def test_an_edition_page_in_each_language(archived) -> None:
    with archived.client() as client:
        page = client.get(EDITION)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "no-store" not in page.headers.get("cache-control", "")
        assert page.headers["etag"] and page.headers["last-modified"]
        text = page.text
        assert f'<link rel="canonical" href="http://localhost:8000{EDITION}">' in text
        assert '<meta property="og:title"' in text and 'property="og:url"' in text
        assert 'hreflang="de"' in text
        assert 'type="application/atom+xml"' in text and "/feeds/weekly/en.atom" in text
        assert 'type="application/rss+xml"' in text and 'type="application/feed+json"' in text
        ld = re.search(r'<script type="application/ld\+json">(.*?)</script>', text, re.S)
        assert ld is not None
        data = json.loads(ld.group(1))
        assert data["@type"] == "CollectionPage" and data["inLanguage"] == "en"
        assert data["mainEntity"]["itemListElement"]
        assert "noindex" not in text
        # absolute links to the app's pages and stylesheet: an exported copy may be hosted anywhere
        assert (
            'href="http://localhost:8000/site.css"' in text
            and 'href="http://localhost:8000/subscribe?' in text
        )
        german = client.get(EDITION + "/de")
        assert german.status_code == 200 and 'lang="de"' in german.text
        assert "Wochenüberblick" in german.text
        index = client.get("/archive/weekly")
        assert index.status_code == 200 and EDITION in index.text
        assert client.get("/archive/weekly/in/de").status_code == 200
        sitemap = client.get("/sitemap.xml")
        assert sitemap.status_code == 200 and sitemap.headers["content-type"].startswith("application/xml")
        assert f"<loc>http://localhost:8000{EDITION}</loc>" in sitemap.text
        robots = client.get("/robots.txt").text
        for private in ("/unsubscribe/", "/preferences/", "/confirm/", "/c/", "/editor/"):
            assert f"Disallow: {private}" in robots
        assert "Sitemap: http://localhost:8000/sitemap.xml" in robots
        assert client.get("/archive/weekly/1999-01-01").status_code == 404
        for odd in ("/archive/weekly/%00", "/feeds/weekly/en%00.atom"):  # PostgreSQL refuses a NUL
            assert client.get(odd).status_code == 404, odd
        assert client.post(EDITION).status_code in (404, 405)


def test_an_etag_round_trip_answers_304(archived) -> None:
    with archived.client() as client:
        for path in ("/feeds/weekly/en.atom", EDITION, "/sitemap.xml"):
            first = client.get(path)
            assert first.status_code == 200
            tag, modified = first.headers["etag"], first.headers["last-modified"]
            again = client.get(path, headers={"if-none-match": tag})
            assert again.status_code == 304 and again.content == b""
            assert again.headers["etag"] == tag
            assert client.get(path, headers={"if-none-match": '"other"'}).status_code == 200
            assert client.get(path, headers={"if-modified-since": modified}).status_code == 304
            assert client.get(path, headers={"if-modified-since": "garbage"}).status_code == 200
            head = client.head(path)
            assert head.status_code == 200 and head.content == b""


def test_last_modified_is_when_the_bytes_were_written(archived) -> None:
    """The edition was sent for its slot (plus a minute) but its pages were written when its
    last delivery went: a date between the two is before these bytes existed. New bytes written
    for an earlier moment (a withdrawal dated back) still carry a later Last-Modified."""
    with archived.runtime.factory() as session:
        edition_id, finished = session.execute(select(Edition.id, Edition.finished_at)).one()
    assert finished > WEEKLY_NOV_23 + timedelta(minutes=2)
    with archived.client() as client:
        for path in ("/feeds/weekly/en.atom", EDITION):
            first = client.get(path)
            modified = parsedate_to_datetime(first.headers["last-modified"])
            assert modified == finished.replace(microsecond=0), path
            before = format_datetime(finished - timedelta(seconds=1), usegmt=True)
            assert client.get(path, headers={"if-modified-since": before}).status_code == 200, path
    archive.withdraw(archived.runtime, edition_id, WEEKLY_NOV_23 + timedelta(minutes=2))
    archived.clock.advance(seconds=FRESH_SECONDS)
    with archived.client() as client:
        feed = client.get("/feeds/weekly/en.atom")
        assert EDITION not in feed.text
        assert parsedate_to_datetime(feed.headers["last-modified"]) > modified
        since = {"if-modified-since": format_datetime(modified, usegmt=True)}
        assert client.get("/feeds/weekly/en.atom", headers=since).status_code == 200


def test_feeds_carry_the_edition_and_parse(archived) -> None:
    with archived.client() as client:
        for path in ("/feeds/weekly/en.atom", "/feeds/weekly/en.rss", "/feeds/weekly/de/politics.atom"):
            answer = client.get(path)
            assert answer.status_code == 200, path
            parsed = feedparser.parse(answer.content)
            assert parsed.bozo == 0, (path, parsed.bozo_exception)
            assert parsed.entries and EDITION in parsed.entries[0].link
        feed = client.get("/feeds/weekly/en.json").json()
        assert feed["version"] == "https://jsonfeed.org/version/1.1" and feed["items"]


def test_a_withdrawn_edition_answers_410_and_leaves_the_feeds(archived) -> None:
    with archived.client() as client:
        assert EDITION in client.get("/feeds/weekly/en.atom").text
        assert client.get(EDITION).status_code == 200
    with archived.runtime.factory() as session:
        edition_id = session.scalars(select(Publication.edition_id)).one()
    archive.withdraw(archived.runtime, edition_id, WEEKLY_NOV_23 + timedelta(days=1))
    with archived.client() as client:
        assert client.get(EDITION).status_code == 200  # kept in memory a moment
    archived.clock.advance(seconds=FRESH_SECONDS)
    with archived.client() as client:
        assert client.get(EDITION).status_code == 410
        assert client.get(EDITION + "/de").status_code == 410
        assert EDITION not in client.get("/feeds/weekly/en.atom").text
        assert EDITION not in client.get("/sitemap.xml").text
        assert EDITION not in client.get("/archive/weekly").text


def test_a_german_readers_email_links_the_german_page_and_feed(archived) -> None:
    anna = outbox_to(archived, "anna.keller@example.com")  # German, Politics and Europe
    html, text = part(anna, "text/html"), part(anna, "text/plain")
    assert f"http://localhost:8000{EDITION}/de" in html and f"http://localhost:8000{EDITION}/de" in text
    assert "http://localhost:8000/feeds/weekly/de.atom" in html
    assert "http://localhost:8000/feeds/weekly/de.atom" in text
    canary = outbox_to(archived, "ypw.canary.two@example.net")  # German, Politics only
    assert "http://localhost:8000/feeds/weekly/de/politics.atom" in part(canary, "text/html")


def test_nothing_of_any_reader_is_served_or_exported(archived, tmp_path) -> None:
    with archived.runtime.factory() as session:
        stored = {d.path: d.body for d in session.scalars(select(Document))}
        addresses = [s.email for s in session.scalars(select(Subscriber))]
    assert len(stored) > 10 and len(addresses) > 10
    with archived.client() as client:
        for path, body in stored.items():
            served = client.get(path)
            assert served.status_code == 200, path
            assert served.text == body
            for trace in (*TRACES, *addresses):
                assert trace not in body, (path, trace)
            assert not TOKEN_LINK.search(body), (path, TOKEN_LINK.search(body))
    folder = tmp_path / "static"
    archive.export(archived.runtime, folder)
    files = [p for p in folder.rglob("*") if p.is_file() and p.name != ".newsletter-export.json"]
    assert len(files) == len(stored)
    for file in files:
        body = file.read_text(encoding="utf-8")
        for trace in (*TRACES, *addresses):
            assert trace not in body, (file, trace)
        assert not TOKEN_LINK.search(body), file


@in_a_browser
def test_an_archive_page_in_a_browser(archived_on_a_socket, browser: Browser) -> None:
    """End to end: Debian's chromium opens the edition's page: no Content Security Policy
    violation as a browser enforces it (the JSON-LD block is data, never run), and a screenshot
    for a person to look at."""
    from dataclasses import replace

    from pydantic import HttpUrl

    archived = archived_on_a_socket
    # Rendered for the address the browser uses, as a site's pages are for its public URL.
    served = archived.runtime.settings.model_copy(update={"public_url": HttpUrl(archived.url)})
    archive.rebuild(replace(archived.runtime, settings=served), WEEKLY_NOV_23 + timedelta(hours=1))
    chromium = browser
    chromium.open(archived.url + EDITION + "/de")
    assert "Wochenüberblick" in chromium.heading()
    chromium.screenshot("archive-edition-de")
    chromium.open(archived.url + "/archive/weekly")
    chromium.screenshot("archive-index")
    assert chromium.csp_violations() == []


def test_hostile_articles_stay_text_in_the_pages() -> None:
    """Titles and excerpts from outside feeds are escaped, the JSON-LD block cannot be closed
    early, and a link that is not http(s) is dropped."""
    from newsletter.syndication.pages import Renderer, edition_pages
    from tests.support.syndication import EDITIONS, HOSTILE_TITLE, make_settings

    for page in edition_pages(Renderer(make_settings()), EDITIONS[0]):
        assert "<script>alert" not in page.body and "javascript:alert" not in page.body
        ld = re.search(r'<script type="application/ld\+json">(.*?)</script>', page.body, re.S)
        assert ld is not None
        names = [item["name"] for item in json.loads(ld.group(1))["mainEntity"]["itemListElement"]]
        assert HOSTILE_TITLE in names  # whole, as data


def linked(runtime, address: str) -> list[str]:
    """The archive's and feeds' paths the email to `address` links, in both of its parts."""
    folder = Path(runtime.settings.outbox_dir)
    found = [p for p in folder.glob("*/*.eml") if address in p.name]
    assert len(found) == 1, found
    message = email.message_from_bytes(found[0].read_bytes())
    base = re.escape(str(runtime.settings.public_url).rstrip("/"))
    text = part(message, "text/html") + part(message, "text/plain")
    return re.findall(rf"{base}(/(?:archive|feeds)/[^\s\"<>]+)", text)


def shared_sections_feed(folder: Path) -> Path:
    """Four Politics stories that are Europe stories too, and one on Health."""
    items = [(f"Story {n}", ("Politics", "Europe")) for n in range(4)] + [("Clinics", ("Health",))]
    feed = folder / "shared.xml"
    feed.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>T</title>'
        "<link>https://www.europeantimes.example</link><description>d</description>"
        + "".join(
            f"<item><title>{title}</title><link>https://www.europeantimes.example/{n}</link>"
            f"<guid>s{n}</guid><pubDate>Sat, 21 Nov 2026 0{n}:00:00 +0000</pubDate>"
            + "".join(f"<category>{c}</category>" for c in categories)
            + "<description>What happened.</description></item>"
            for n, (title, categories) in enumerate(items)
        )
        + "</channel></rss>",
        encoding="utf-8",
    )
    return feed


def test_every_email_links_a_page_and_feed_that_exist(make_runtime, tmp_path) -> None:
    """A reader of Europe alone, whose every story the generic digest shows under Trending or
    Politics (so it has no Europe section, and no Europe feed is made), and one of Health, whose
    only story is trending: their footers link the whole feed, never a 404."""
    runtime = make_runtime(
        feeds=[{"url": str(shared_sections_feed(tmp_path))}],
        site={
            "categories": ["Politics", "Europe", "Health"],
            "url": "https://www.europeantimes.example",
            "languages": ["de"],  # no German feed: German words around English articles
        },
        timezone="Europe/Brussels",
    )
    fetch_feeds(runtime.settings, runtime.factory)
    readers = tmp_path / "readers.csv"
    readers.write_text(
        "email,name,language,categories,newsletters,status\n"
        "europe@example.org,,en,Europe,weekly,active\n"
        "health@example.org,,en,Health,weekly,active\n"
        "politics@example.org,,de,Politics,weekly,active\n",
        encoding="utf-8",
    )
    with unit_of_work(runtime.factory) as session:
        assert not import_csv(session, runtime.settings, readers, confirmed=True).rejected
    assert sending.send(runtime, "weekly", WEEKLY_NOV_23 + timedelta(minutes=1)).status == "complete"
    for address in ("europe@example.org", "health@example.org"):
        assert "/feeds/weekly/en.atom" in linked(runtime, address)
    assert "/feeds/weekly/de/politics.atom" in linked(runtime, "politics@example.org")
    for address in ("europe@example.org", "health@example.org", "politics@example.org"):
        for path in linked(runtime, address):
            found = archive.document(runtime, path)
            assert found is not None and not found.gone, (address, path)


def test_a_readers_language_makes_no_page(newsroom, tmp_path) -> None:
    """A lone reader of Portuguese (no catalog, no feed, no words of the newsletter's own): no
    page, feed or sitemap entry tells the world one exists; their email links the English page."""
    readers = tmp_path / "readers.csv"
    readers.write_text(
        "email,name,language,categories,newsletters,status\nlone.reader@example.org,,pt,,weekly,active\n",
        encoding="utf-8",
    )
    with unit_of_work(newsroom.factory) as session:
        assert not import_csv(session, newsroom.settings, readers, confirmed=True).rejected
    assert sending.send(newsroom, "weekly", WEEKLY_NOV_23 + timedelta(minutes=1)).status == "complete"
    with newsroom.factory() as session:
        stored = {d.path: d.body for d in session.scalars(select(Document))}
    assert not [path for path in stored if "/pt" in path]
    assert not [path for path, body in stored.items() if "/pt" in body or 'hreflang="pt"' in body]
    assert linked(newsroom, "lone.reader@example.org") == [EDITION, "/feeds/weekly/en.atom"] * 2
    assert f"{EDITION}/de" in stored  # German has a catalog: its page stays


def test_readers_clicks_never_reshape_the_edition_they_clicked_in(newsroom) -> None:
    """Readers clicking a story of the edition while it is still being sent: its archive page
    shows the digest as it was composed, not one ranked by what its readers clicked."""
    now = WEEKLY_NOV_23 + timedelta(minutes=1)
    edition_id, _warnings = sending.prepare_next(newsroom, "weekly", now)
    with newsroom.factory() as session:
        everything = session.scalars(
            select(Variant).where(Variant.edition_id == edition_id, Variant.language == "en")
        ).all()
        whole = max(everything, key=lambda v: len(v.categories.split(",")))  # every section, nothing before
        ids = session.scalars(
            select(VariantArticle.article_id)
            .where(VariantArticle.variant_id == whole.id)
            .order_by(VariantArticle.position)
        ).all()
        titles = dict(session.execute(select(Article.id, Article.title).where(Article.id.in_(ids))).all())
    with unit_of_work(newsroom.factory) as session:
        session.add_all(Click(article_id=ids[-1], edition_id=edition_id) for _ in range(50))
    assert sending.send(newsroom, "weekly", now).status == "complete"
    with newsroom.factory() as session:
        content = json.loads(session.get_one(Publication, edition_id).content)["en"]
    shown = [card["title"] for card in content["trending"]]
    shown += [card["title"] for section in content["sections"] for card in section["cards"]]
    assert shown == [titles[i] for i in ids]


def test_an_index_in_a_language_without_a_catalog_has_the_newsletters_own_title() -> None:
    from newsletter.settings import Settings
    from newsletter.syndication.pages import Renderer, index_pages
    from tests.support.syndication import edition

    settings = Settings(newsletters={"weekly": {"translations": {"pt": {"title": "Resumo semanal"}}}})
    pages = index_pages(Renderer(settings), "weekly", [edition(23, ("en", "pt"))], ["en", "pt"])
    portuguese = next(page for page in pages if page.path == "/archive/weekly/in/pt")
    assert "<h1>Resumo semanal: every edition</h1>" in portuguese.body


def test_an_english_only_site_publishes_english_only(newsroom, make_runtime) -> None:
    """The newsroom sent with its German edition's feed, then the site made English-only (its
    German feed dropped): a rebuild takes the German pages and feeds out of the archive, the
    sitemap and every hreflang. (Its German readers' emails: tests/test_i18n.py.)"""
    assert sending.send(newsroom, "weekly", WEEKLY_NOV_23 + timedelta(minutes=1)).status == "complete"
    with newsroom.factory() as session:
        assert f"{EDITION}/de" in {d.path for d in session.scalars(select(Document))}
    english = make_runtime(
        database_url=newsroom.settings.database_url,
        outbox_dir=newsroom.settings.outbox_dir,
        feeds=[feed.model_dump() for feed in newsroom.settings.feeds if not feed.language],
        site=newsroom.settings.site.model_dump(mode="json"),
        timezone=newsroom.settings.timezone,
    )
    assert english.settings.languages() == ["en"]
    archive.rebuild(english, WEEKLY_NOV_23 + timedelta(hours=1))
    with english.factory() as session:
        stored = {d.path: d.body for d in session.scalars(select(Document))}
    assert EDITION in stored and "/archive/weekly" in stored and "/feeds/weekly/en.atom" in stored
    assert not [path for path in stored if path.endswith("/de") or "/de/" in path or "/de." in path]
    assert not [path for path, body in stored.items() if 'hreflang="de"' in body or "/in/de" in body]
    assert f"{EDITION}/de" not in stored["/sitemap.xml"]


def test_the_archive_names_each_language_in_its_own_words(archived) -> None:
    with archived.client() as client:
        for path in (EDITION, EDITION + "/de", "/archive/weekly", "/archive/weekly/in/de"):
            page = client.get(path).text
            links = re.findall(
                r'<li><a href="[^"]+" hreflang="(\w+)" lang="(\w+)"[^>]*>([^<]+)</a></li>', page
            )
            assert sorted(links) == [("de", "de", "Deutsch"), ("en", "en", "English")], path
        # the German page names its sections by their English names (no German one is set), marked
        german = client.get(EDITION + "/de").text
        assert '<h2 id="section-politics"><span lang="en">Politics</span></h2>' in german
        assert '<span lang="en">Politics</span> im Feedreader folgen' in german
        assert '<h2 id="section-politics">Politics</h2>' in client.get(EDITION).text


@pytest.mark.parametrize("title", ["The Week in Riverside", "Weekly digest"])
def test_the_archive_heading_reads_right_whatever_the_title(title) -> None:
    from newsletter.settings import Settings
    from newsletter.syndication.pages import Renderer, edition_pages, index_pages
    from tests.support.syndication import edition

    settings = Settings(newsletters={"weekly": {"title": title}}, site={"languages": ["de"]})
    published = edition(23, ("en",))
    english = published.digests["en"]
    published.digests["en"] = type(english)(title, english.label, english.trending, english.sections)
    [index, _german] = index_pages(Renderer(settings), "weekly", [published], ["en", "de"])
    assert f"<h1>{title}: every edition</h1>" in index.body
    assert "of the" not in index.body and "the The" not in index.body
    [page] = edition_pages(Renderer(settings), published)
    assert f"{title}: every edition</a>" in page.body


def test_an_edition_sent_early_is_dated_the_day_it_went(newsroom, tmp_path) -> None:
    """Sent with --now on Sunday 22 November, the edition of the 23rd keeps its slot's address,
    but its emails, its page and its feed entry read the 22nd, the day it went."""
    went = WEEKLY_NOV_23 - timedelta(hours=19)  # Sunday 12:00
    report = sending.send(newsroom, "weekly", went, ahead_ok=True)
    assert report.status == "complete", report
    folder = Path(newsroom.settings.outbox_dir)
    messages = [email.message_from_bytes(p.read_bytes()) for p in folder.glob("*/*.eml")]
    assert messages
    for message in messages:
        text, html = part(message, "text/plain"), part(message, "text/html")
        assert re.search(r"22\.? November 2026$", text.splitlines()[0]), text.splitlines()[0]  # en, de
        assert not re.search(r"23\.? November", text + html)
    site = next(serve(newsroom, tmp_path))
    with site.client() as client:
        page = client.get(EDITION)  # the slot's address
        assert page.status_code == 200, page.text
        title = re.search(r"<title>(.*?)</title>", page.text, re.S)
        assert title is not None and "22 November 2026" in title.group(1), title
        assert "23 November 2026" not in page.text
        feed = feedparser.parse(client.get("/feeds/weekly/en.atom").content)
        assert [entry.title for entry in feed.entries] == ["Weekly digest, 22 November 2026"]
