"""The Atom, RSS and JSON feeds of archived editions: pure, no database, no server."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import feedparser
import jsonschema
import pytest
import time_machine
from lxml import etree

from newsletter.settings import Settings
from newsletter.syndication.content import Published
from newsletter.syndication.feeds import feeds
from tests.conftest import FIXTURES
from tests.support.syndication import (
    EDITIONS,
    EMOJI_TITLE,
    LONG_EXCERPT,
    PUBLIC,
    RTL_TITLE,
    edition,
    make_settings,
)

HUB = "https://hub.example/websub"
ATOM = "{http://www.w3.org/2005/Atom}"
SCHEMA = json.loads((FIXTURES / "jsonfeed-1.1.schema.json").read_text())
CASES = [(language, category) for language in ("en", "de") for category in (None, "politics", "health")]


def render(
    language: str = "en",
    category: str | None = None,
    publications: list[Published] | None = None,
    hubs: list[str] | None = None,
) -> dict[str, str]:
    rendered = feeds(
        make_settings(hubs), "weekly", language, EDITIONS if publications is None else publications, category
    )
    return {document.path.rsplit(".", 1)[1]: document.body for document in rendered}


def parsed(body: str) -> Any:
    result = feedparser.parse(body.encode())
    assert result.bozo == 0, result.get("bozo_exception")
    return result


def test_three_documents_at_their_addresses() -> None:
    everything = feeds(make_settings(), "weekly", "de", EDITIONS)
    section = feeds(make_settings(), "weekly", "en", EDITIONS, "politics")
    assert [(d.path, d.media_type) for d in everything] == [
        ("/feeds/weekly/de.atom", "application/atom+xml; charset=utf-8"),
        ("/feeds/weekly/de.rss", "application/rss+xml; charset=utf-8"),
        ("/feeds/weekly/de.json", "application/feed+json; charset=utf-8"),
    ]
    assert [d.path for d in section] == [
        f"/feeds/weekly/en/politics.{kind}" for kind in ("atom", "rss", "json")
    ]


@pytest.mark.parametrize(("language", "category"), CASES)
def test_atom_parses_and_has_its_required_elements(language: str, category: str | None) -> None:
    body = render(language, category)["atom"]
    result = parsed(body)
    assert result.version == "atom10"
    path = f"/feeds/weekly/{language}{f'/{category}' if category else ''}.atom"
    assert result.feed.id == PUBLIC + path and result.feed.title and result.feed.updated
    assert {"rel": "self", "href": PUBLIC + path, "type": "application/atom+xml"} in result.feed.links
    home = PUBLIC + ("/archive/weekly" if language == "en" else "/archive/weekly/in/de")
    assert any(link.rel == "alternate" and link.href == home for link in result.feed.links)
    assert result.feed.language == language
    assert result.entries
    for entry in result.entries:
        assert entry.id and entry.title and entry.updated and entry.link
    # Each element RFC 4287 requires, read from the raw XML rather than feedparser's forgiving view.
    root = etree.fromstring(body.encode())
    for name in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{name}") is not None, name
    for entry in root.iterfind(f"{ATOM}entry"):
        for name in ("id", "title", "updated", "link", "content", "summary"):
            assert entry.find(f"{ATOM}{name}") is not None, name


@pytest.mark.parametrize(("language", "category"), CASES)
def test_rss_parses_and_has_its_required_elements(language: str, category: str | None) -> None:
    body = render(language, category)["rss"]
    result = parsed(body)
    assert result.version == "rss20"
    path = f"/feeds/weekly/{language}{f'/{category}' if category else ''}.rss"
    assert any(link.get("rel") == "self" and link.href == PUBLIC + path for link in result.feed.links)
    channel = etree.fromstring(body.encode()).find("channel")
    assert channel is not None
    for name in ("title", "link", "description", "language", "lastBuildDate", "pubDate"):
        assert (channel.findtext(name) or "").strip(), name
    items = channel.findall("item")
    assert items and len(items) == len(result.entries)
    for item in items:
        for name in ("title", "link", "guid", "pubDate", "description"):
            assert (item.findtext(name) or "").strip(), name
        assert item.find("guid").get("isPermaLink") == "true"


@pytest.mark.parametrize(("language", "category"), CASES)
def test_json_feed_follows_the_specification(language: str, category: str | None) -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    document = json.loads(render(language, category)["json"])
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    path = f"/feeds/weekly/{language}{f'/{category}' if category else ''}.json"
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert document["feed_url"] == PUBLIC + path and document["language"] == language
    assert document["items"]
    for item in document["items"]:
        assert item["id"] == item["url"] and item["title"] and item["summary"] and item["content_html"]
        assert datetime.fromisoformat(item["date_published"]).utcoffset() is not None


def test_the_schema_refuses_what_the_specification_refuses() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    good = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "t",
        "items": [{"id": "1", "content_text": "x"}],
    }
    assert validator.is_valid(good)
    for bad in (
        {key: value for key, value in good.items() if key != "title"},
        {**good, "items": [{"content_text": "x"}]},  # no id
        {**good, "items": [{"id": "1"}]},  # no content
        {**good, "items": [{"id": "1", "content_text": "x", "date_published": "23 Nov 2026"}]},
        {**good, "hubs": [{"url": HUB}]},  # no type
        {**good, "titel": "typo"},
    ):
        assert not validator.is_valid(bad), bad


@pytest.mark.parametrize("category", [None, "politics"])
def test_hub_links_only_when_a_hub_is_set(category: str | None) -> None:
    with_hub = render(category=category, hubs=[HUB])
    atom = etree.fromstring(with_hub["atom"].encode())
    assert [link.get("href") for link in atom.iterfind(f"{ATOM}link[@rel='hub']")] == [HUB]
    channel = etree.fromstring(with_hub["rss"].encode()).find("channel")
    assert channel is not None
    assert [link.get("href") for link in channel.iterfind(f"{ATOM}link[@rel='hub']")] == [HUB]
    assert json.loads(with_hub["json"])["hubs"] == [{"type": "WebSub", "url": HUB}]
    parsed(with_hub["atom"]), parsed(with_hub["rss"])

    without = render(category=category)
    assert 'rel="hub"' not in without["atom"] and 'rel="hub"' not in without["rss"]
    assert "hubs" not in json.loads(without["json"])


def test_the_same_editions_give_the_same_bytes_at_any_time() -> None:
    # feedgen would stamp "now" on any date left unset: the wall clock reads two different days
    with time_machine.travel(datetime(2026, 12, 1, 9, 0, tzinfo=UTC), tick=False):
        first = {(language, category): render(language, category, hubs=[HUB]) for language, category in CASES}
    with time_machine.travel(datetime(2027, 3, 2, 17, 30, tzinfo=UTC), tick=False):
        later = {(language, category): render(language, category, hubs=[HUB]) for language, category in CASES}
    assert later == first
    assert render(publications=list(reversed(EDITIONS))) == render()


def test_outside_text_arrives_escaped_and_whole() -> None:
    for language, category in CASES:
        for kind, body in render(language, category).items():
            assert "<script" not in body.lower(), (kind, language, category)
            assert "\x00" not in body and "\x1b" not in body and "\x07" not in body
            assert "javascript:alert" not in body  # a card's unsafe link is left out, its title kept
    atom, rss = (parsed(render(category="politics")[kind]) for kind in ("atom", "rss"))
    for result in (atom, rss):
        html = result.entries[0].content[0].value
        assert LONG_EXCERPT in html and RTL_TITLE in html and "A javascript: link" in html
        assert "Eve &lt;b&gt;Bold&lt;/b&gt;" in html  # an author's markup is text
    # RSS descriptions and Atom's html summaries are read as HTML: the headlines' markup is text.
    rss_item = etree.fromstring(render()["rss"].encode()).find("channel/item")
    atom_entry = etree.fromstring(render()["atom"].encode()).find(f"{ATOM}entry")
    assert rss_item is not None and atom_entry is not None
    for summary in (rss_item.findtext("description"), atom_entry.findtext(f"{ATOM}summary")):
        assert summary and "<" not in summary and "&lt;script&gt;alert(1)" in summary
    document = json.loads(render()["json"])
    newest = document["items"][0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; ]]&gt; &amp;amp; nul [2Jescape" in newest["content_html"]
    assert EMOJI_TITLE in newest["content_html"] and EMOJI_TITLE in newest["summary"]
    assert 'href="https://www.site.example/23-politics-1"' in newest["content_html"]
    assert newest["summary"].startswith(f"{EMOJI_TITLE} · <script>alert(1)</script> ]]> &amp; nul [2Jescape")


def test_a_category_feed_holds_only_its_section() -> None:
    for language in ("en", "de"):
        result = parsed(render(language, "health")["atom"])
        section = "Health" if language == "en" else "Gesundheit"
        days = ["23", "16"] if language == "en" else ["23"]  # the 9th has no Health, the 16th no German
        suffix = "" if language == "en" else "/de"
        assert [entry.link for entry in result.entries] == [
            f"{PUBLIC}/archive/weekly/2026-11-{day}{suffix}#health" for day in days
        ]
        for entry, day in zip(result.entries, days, strict=True):
            assert entry.title.startswith(f"{section} · ")
            html = entry.content[0].value
            assert f"{day}-health-1" in html
            assert "politics" not in html and "trending" not in html
        assert (
            result.feed.title
            == f"The Example Times: {'Weekly digest' if language == 'en' else 'Wochenüberblick'} · {section}"
        )


def test_the_whole_feed_holds_every_section_under_its_heading() -> None:
    html = parsed(render("de")["atom"]).entries[0].content[0].value
    assert (
        html.index("<h2>Im Trend</h2>") < html.index("<h2>Politik</h2>") < html.index("<h2>Gesundheit</h2>")
    )
    for slug in ("23-trending-1", "23-politics-1", "23-politics-2", "23-health-1"):
        assert f"https://www.site.example/{slug}" in html
    assert 'lang="he"' in html and "Machine translation" in html


def test_entries_are_newest_first_and_dated_by_their_edition() -> None:
    for publications in (EDITIONS, list(reversed(EDITIONS))):
        bodies = render(publications=publications)
        atom, rss = parsed(bodies["atom"]), parsed(bodies["rss"])
        days = [23, 16, 9]
        expected = [datetime(2026, 11, day, 7, 0, tzinfo=UTC) for day in days]
        assert [datetime.fromisoformat(entry.updated) for entry in atom.entries] == expected
        assert [datetime.fromisoformat(entry.published) for entry in atom.entries] == expected
        assert [parsedate_to_datetime(entry.published) for entry in rss.entries] == expected
        assert [item["date_modified"] for item in json.loads(bodies["json"])["items"]] == [
            moment.isoformat() for moment in expected
        ]
        assert datetime.fromisoformat(atom.feed.updated) == expected[0]
        channel = etree.fromstring(bodies["rss"].encode()).find("channel")
        assert channel is not None
        assert parsedate_to_datetime(channel.findtext("lastBuildDate")) == expected[0]
        assert parsedate_to_datetime(channel.findtext("pubDate")) == expected[0]
        assert [entry.title for entry in atom.entries] == [
            f"Weekly digest, {day} November 2026" for day in days
        ]


def test_entry_links_are_the_edition_pages_in_the_feed_language() -> None:
    english = parsed(render()["atom"]).entries[0]
    german = parsed(render("de")["atom"]).entries[0]
    assert english.link == english.id == f"{PUBLIC}/archive/weekly/2026-11-23"
    assert german.link == german.id == f"{PUBLIC}/archive/weekly/2026-11-23/de"
    assert german.title == "Wochenüberblick, 23 November 2026"
    rss = parsed(render("de", "politics")["rss"]).entries[0]
    assert rss.link == rss.id == f"{PUBLIC}/archive/weekly/2026-11-23/de#politics"


def test_ids_hold_when_a_new_edition_is_published() -> None:
    before = render(publications=EDITIONS[1:])
    after = render(publications=EDITIONS)

    def ids(bodies: dict[str, str]) -> list[list[str]]:
        return [
            [entry.id for entry in parsed(bodies["atom"]).entries],
            [entry.id for entry in parsed(bodies["rss"]).entries],
            [item["id"] for item in json.loads(bodies["json"])["items"]],
        ]

    for old, new in zip(ids(before), ids(after), strict=True):
        assert new[1:] == old and new[0] not in old
    old_entries = etree.fromstring(before["atom"].encode()).findall(f"{ATOM}entry")
    new_entries = etree.fromstring(after["atom"].encode()).findall(f"{ATOM}entry")[1:]
    assert [etree.tostring(e) for e in new_entries] == [etree.tostring(e) for e in old_entries]


def test_an_empty_feed_is_valid_and_dated_by_no_clock() -> None:
    bodies = render(category="culture")
    atom, rss = parsed(bodies["atom"]), parsed(bodies["rss"])
    assert atom.entries == [] and rss.entries == []
    assert datetime.fromisoformat(atom.feed.updated) == datetime(1970, 1, 1, tzinfo=UTC)
    assert atom.feed.title == "The Example Times: Weekly digest · culture"
    document = json.loads(bodies["json"])
    jsonschema.Draft202012Validator(SCHEMA).validate(document)
    assert document["items"] == []
    assert render(publications=[]) == render(publications=[])


def test_withdrawn_editions_stay_out() -> None:
    withdrawn = Published(**{**edition(30).__dict__, "withdrawn": True})
    assert render(publications=[withdrawn, *EDITIONS]) == render()


def test_a_newsletters_name_is_percent_encoded_in_every_address() -> None:
    """A name with a space or an umlaut: every link is a valid URL (an email's text part would
    otherwise cut it at the space), while the document keeps its path as the server sees it."""
    name = "Wöchentlich Neu"
    settings = Settings(public_url=PUBLIC, newsletters={name: {}})
    rendered = feeds(settings, name, "en", [replace(p, newsletter=name) for p in EDITIONS])
    assert rendered[0].path == f"/feeds/{name}/en.atom"
    bodies = {document.path.rsplit(".", 1)[1]: document.body for document in rendered}
    page = f"{PUBLIC}/archive/W%C3%B6chentlich%20Neu/2026-11-23"
    assert parsed(bodies["atom"]).entries[0].link == page
    assert json.loads(bodies["json"])["feed_url"] == f"{PUBLIC}/feeds/W%C3%B6chentlich%20Neu/en.json"
    for body in bodies.values():
        assert name not in body


@pytest.mark.parametrize("title", ["The Week in Riverside", "Weekly digest"])
def test_a_feeds_description_reads_right_whatever_the_title(title) -> None:
    settings = make_settings().model_copy(
        update={
            "newsletters": {
                "weekly": make_settings().newsletter("weekly").model_copy(update={"title": title})
            }
        }
    )
    whole = {d.path.rsplit(".", 1)[1]: d.body for d in feeds(settings, "weekly", "en", EDITIONS)}
    section = {
        d.path.rsplit(".", 1)[1]: d.body for d in feeds(settings, "weekly", "en", EDITIONS, "politics")
    }
    assert json.loads(whole["json"])["description"] == f"{title}: every edition"
    assert json.loads(section["json"])["description"] == f"{title}: Politics in every edition"
    assert parsed(whole["rss"]).feed.subtitle == f"{title}: every edition"


def test_a_section_named_in_the_sites_language_says_so_in_a_german_feed() -> None:
    german = edition(23, ("de",))
    digest = german.digests["de"]
    marked = replace(digest, sections=[replace(digest.sections[0], name="Politics", language="en")])
    body = render("de", publications=[replace(german, digests={"de": marked})])["json"]
    content = json.loads(body)["items"][0]["content_html"]
    assert '<h2 lang="en">Politics</h2>' in content and "<h2>Im Trend</h2>" in content
