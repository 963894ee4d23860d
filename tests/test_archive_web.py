"""The public archive over real HTTP to `newsletter serve` (issue #14): a sent edition's pages
in each language with canonical, Open Graph, JSON-LD and feed links; the index, sitemap and
robots.txt; an ETag round trip answering 304; a withdrawn edition answering 410 and gone from
the feeds; a German reader's email linking the German page and feed; and nothing of any reader
anywhere in what is served."""

from __future__ import annotations

import email
import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from pathlib import Path

import feedparser
import pytest
from sqlalchemy import select

from newsletter.services import archive, sending
from newsletter.store.db import unit_of_work
from newsletter.store.models import Document, Publication, Subscriber
from newsletter.subscribers.bulk import import_csv
from newsletter.web.archive import FRESH_SECONDS
from tests.conftest import WEEKLY_NOV_23
from tests.test_web import Site, serve
from tests.test_web_browser import browser  # noqa: F401 (the fixture)

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


@pytest.fixture
def archived(newsroom, tmp_path) -> Iterator[Site]:
    """The sample's readers and two canaries, the weekly edition of 23 November sent through the
    outbox (and so archived), and the server."""
    readers = tmp_path / "canaries.csv"
    readers.write_text(CANARIES, encoding="utf-8")
    with unit_of_work(newsroom.factory) as session:
        assert not import_csv(session, newsroom.settings, readers, confirmed=True).rejected
    report = sending.send(newsroom, "weekly", WEEKLY_NOV_23 + timedelta(minutes=1))
    assert report.status == "complete", report
    yield from serve(newsroom, tmp_path)


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
    with archived.runtime.factory() as session:
        edition_id = session.scalars(select(Publication.edition_id)).one()
    archive.withdraw(archived.runtime, edition_id, WEEKLY_NOV_23 + timedelta(days=1))
    time.sleep(FRESH_SECONDS + 0.1)  # what the server keeps in memory
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


def test_an_archive_page_in_a_browser(archived, request) -> None:
    """Debian's chromium opens the edition's page: no Content Security Policy violation (the
    JSON-LD block is data, never run), and a screenshot for a person to look at."""
    from tests.test_web_browser import CHROMEDRIVER, CHROMIUM

    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("Debian's chromium and chromedriver are not installed (.ci/run installs them)")
    chromium = request.getfixturevalue("browser")
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
    from tests.test_syndication_feeds import EDITIONS, HOSTILE_TITLE, make_settings

    for page in edition_pages(Renderer(make_settings()), EDITIONS[0]):
        assert "<script>alert" not in page.body and "javascript:alert" not in page.body
        ld = re.search(r'<script type="application/ld\+json">(.*?)</script>', page.body, re.S)
        assert ld is not None
        names = [item["name"] for item in json.loads(ld.group(1))["mainEntity"]["itemListElement"]]
        assert HOSTILE_TITLE in names  # whole, as data
