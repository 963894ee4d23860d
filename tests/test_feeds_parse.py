"""Parsing and sanitizing feed bytes: pure, no database."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.errors import FeedError
from newsletter.ingest.parse import parse_feed
from newsletter.ingest.sanitize import clean_html
from tests.conftest import FIXTURES, SAMPLE

RSS = {"content-type": "application/rss+xml; charset=utf-8"}
DANGER = re.compile(r"<script|<style|<iframe|<object|<embed|<form|\bon[a-z]+\s*=|javascript:|data:", re.I)


def parse(name: str, headers: dict[str, str] = RSS):
    return parse_feed((FIXTURES / name).read_bytes(), f"https://feeds.example/{name}", headers)


def test_wordpress_fields_are_read() -> None:
    feed = parse_feed((SAMPLE / "site.xml").read_bytes(), "https://x.example/feed/", RSS)
    assert feed.problem is None and feed.language == "en"
    assert len(feed.entries) == 46
    by_key = {e.key: e for e in feed.entries}
    first = by_key["https://www.europeantimes.example/?p=1001"]
    assert first.title.startswith("25 arrested")
    assert first.author and first.terms[0] == "Politics" and "Europol" in first.terms
    assert first.comment_count is not None and first.published_at is not None
    assert first.content_html.startswith("<p>") and "full story" in first.content_html
    # relative links in content:encoded are made absolute against the article
    assert 'href="https://www.europeantimes.example/2026/11/' in first.content_html
    images = [e.image_url for e in feed.entries]
    assert sum(1 for i in images if i) >= 30  # enclosure, media:content and inline <img>
    assert any(e.comment_count is None for e in feed.entries)  # comments closed: no slash:comments


def test_hostile_feed_leaves_nothing_dangerous() -> None:
    feed = parse("hostile.xml")
    assert len(feed.entries) == 2
    for entry in feed.entries:
        for value in (entry.title, entry.author or "", entry.summary_html, entry.content_html):
            assert not DANGER.search(value), value
        assert entry.image_url is None or entry.image_url.startswith("https://")
    hostile = feed.entries[0]
    assert "<script" not in hostile.title and "Breaking:" in hostile.title
    assert hostile.author == "Mallory"
    assert 'href="https://evil.example/2026/11/other/"' in hostile.content_html
    assert 'src="https://evil.example/relative/pic.jpg"' in hostile.content_html
    plain = feed.entries[1]
    assert "&lt;script&gt;" in plain.summary_html  # text/plain is escaped, shown as text


def test_broken_xml_keeps_what_it_could_read() -> None:
    feed = parse("broken.xml")
    assert feed.problem and feed.problem.startswith("malformed feed")
    assert [e.title for e in feed.entries][:1] == ["First readable entry"]


@pytest.mark.parametrize("name", ["latin1.xml", "wrong-encoding.xml"])
def test_encodings(name: str) -> None:
    feed = parse(name, {"content-type": "application/rss+xml"})
    assert len(feed.entries) == 1
    assert "München" in feed.entries[0].title or "M" in feed.entries[0].title
    if name == "latin1.xml":
        assert feed.entries[0].title == "München und Zürich: café crème"


def test_html_page_is_not_a_feed() -> None:
    with pytest.raises(FeedError, match="HTML page"):
        parse_feed(
            b"<!DOCTYPE html><html><body>Hi</body></html>",
            "https://x/",
            {"content-type": "text/html"},
        )


def test_huge_fields_are_capped() -> None:
    title = "A" * 100_000
    body = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><item>'
        f"<title>{title}</title><link>https://h.example/a/</link><description>{'x' * 2_000_000}</description>"
        "</item></channel></rss>"
    ).encode()
    feed = parse_feed(body, "https://h.example/feed", RSS)
    entry = feed.entries[0]
    assert len(entry.title) <= 500 and len(entry.summary_html) <= 510_000
    assert any("title cut" in w for w in feed.warnings)


def test_entries_without_link_or_date() -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>no link</title></item>"
        b"<item><title>no date</title><link>https://d.example/a/</link></item>"
        b"</channel></rss>"
    )
    feed = parse_feed(body, "https://d.example/feed", RSS)
    assert [e.title for e in feed.entries] == ["no date"]
    assert feed.entries[0].published_at is None and feed.entries[0].key == "https://d.example/a/"
    assert any("no usable link" in w for w in feed.warnings)


def test_a_malformed_link_skips_its_entry_only() -> None:
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>bad host</title><link>http://[::1/a/</link></item>"
        b"<item><title>fine</title><link>https://d.example/b/</link></item>"
        b"</channel></rss>"
    )
    feed = parse_feed(body, "https://d.example/feed", RSS)
    assert [e.title for e in feed.entries] == ["fine"]
    assert any("no usable link" in w for w in feed.warnings)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                *"<>\"'=/ :;&#x()",
                "<script>",
                "javascript:",
                " onload=",
                "<a href=",
                "<img src=",
                "<blockquote cite=",
                "<q cite=",
                "data:",
                "vbscript:",
                "JaVaScRiPt:",
                "&#106;",
                "<svg",
                "<style>",
                "java\tscript:",
                "</",
                "img",
                "a",
            ]
        ),
        max_size=60,
    ).map("".join)
)
def test_sanitizer_never_lets_script_through(fragment: str) -> None:
    cleaned = clean_html(fragment, "https://base.example/a/")
    assert "<script" not in cleaned.lower()
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", cleaned, re.I)
    for value in re.findall(r"\b(?:href|src|cite|longdesc)=\"([^\"]*)\"", cleaned, re.I):
        assert value.startswith(("https://", "http://", "mailto:")), value


# Every attribute nh3 allows by default that holds a URL, and one it drops (longdesc).
URL_ATTRIBUTES = [
    ("a", "href"),
    ("img", "src"),
    ("img", "longdesc"),
    ("blockquote", "cite"),
    ("q", "cite"),
    ("del", "cite"),
    ("ins", "cite"),
]
HOSTILE_URLS = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "&#106;avascript:alert(1)",
    "&#x6A;&#x61;vascript:alert(1)",
    "javascript&colon;alert(1)",
    "java&#x09;script:alert(1)",
    "java&#10;script:alert(1)",
    "  javascript:alert(1)",
    "&#x20;&#x0C;javascript:alert(1)",
    "&#1;javascript:alert(1)",
    "\x01\x1fjavascript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "DATA:image/svg+xml,<svg onload=alert(1)>",
    "vbscript:msgbox(1)",
    "VbScRiPt:msgbox(1)",
    "&#118;bscript:msgbox(1)",
    "livescript:alert(1)",
    "file:///etc/passwd",
]


@pytest.mark.parametrize(("tag", "attribute"), URL_ATTRIBUTES)
@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_url_attributes_keep_only_http_and_mailto(tag: str, attribute: str, url: str) -> None:
    cleaned = clean_html(f'<{tag} {attribute}="{url}">quoted</{tag}>', "https://base.example/a/")
    assert f"{attribute}=" not in cleaned, cleaned
    assert "quoted" in cleaned


@pytest.mark.parametrize(("tag", "attribute"), [a for a in URL_ATTRIBUTES if a[1] != "longdesc"])
def test_url_attributes_keep_safe_urls_made_absolute(tag: str, attribute: str) -> None:
    for given_url, kept in [
        ("https://ok.example/x", "https://ok.example/x"),
        (" HTTP://ok.example/y ", "HTTP://ok.example/y"),
        ("\thttps://ok.example/\nz", "https://ok.example/z"),
        ("/rel/z", "https://base.example/rel/z"),
        ("../up", "https://base.example/up"),
        ("//cdn.example/p.jpg", "https://cdn.example/p.jpg"),
        ("mailto:desk@news.example", "mailto:desk@news.example"),
    ]:
        cleaned = clean_html(f'<{tag} {attribute}="{given_url}">quoted</{tag}>', "https://base.example/a/")
        assert f'{attribute}="{kept}"' in cleaned, (given_url, cleaned)
