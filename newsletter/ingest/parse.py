"""Reading a feed's bytes into clean entries: pure, no I/O.

feedparser is given the bytes and the response headers (Content-Type included, or a valid
feed comes back bozo), with its own sanitizer off: `newsletter.ingest.sanitize` does that job.
"""

from __future__ import annotations

import calendar
import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import feedparser

from newsletter.errors import FeedError
from newsletter.ingest.sanitize import clean_html, plain_text, safe_url, text_to_html

MAX_TITLE = 500
MAX_AUTHOR = 300
MAX_HTML = 500_000
MAX_URL = 2000
MAX_KEY = 1000
# bozo causes that do not lose anything: the feed was read in full.
HARMLESS_BOZO = ("CharacterEncodingOverride",)
_FIRST_IMG = re.compile(r"<img\b[^>]*\bsrc=\"([^\"]+)\"", re.I)


@dataclass(frozen=True)
class ParsedEntry:
    key: str
    url: str
    title: str
    author: str | None
    published_at: datetime | None
    updated_at: datetime | None
    summary_html: str
    content_html: str
    image_url: str | None
    comment_count: int | None
    terms: tuple[str, ...]


@dataclass
class ParsedFeed:
    title: str
    language: str | None
    entries: list[ParsedEntry]
    # Why the feed was only partly readable (malformed XML, ...); None when read in full.
    problem: str | None = None
    warnings: list[str] = field(default_factory=list)


def parse_feed(data: bytes, url: str, headers: Mapping[str, str]) -> ParsedFeed:
    """Parse and clean; raises FeedError when the bytes are not a feed at all."""
    parsed = feedparser.parse(
        data,
        response_headers=dict(headers),
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    problem = None
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        if type(exc).__name__ not in HARMLESS_BOZO:
            problem = f"malformed feed: {_describe(exc)}"
    if not parsed.get("version") and not parsed.entries:
        content_type = headers.get("content-type", "")
        if "html" in content_type.lower() or data.lstrip()[:15].lower().startswith(
            (b"<!doctype html", b"<html")
        ):
            raise FeedError(url, f"answered an HTML page, not a feed ({content_type or 'no type'})")
        raise FeedError(url, problem or "not an RSS or Atom feed")
    meta = parsed.get("feed", {})
    base = meta.get("link") or url
    feed = ParsedFeed(
        title=plain_text(meta.get("title", "")) or url,
        language=_language(meta.get("language")),
        entries=[],
        problem=problem,
    )
    seen: set[str] = set()
    for index, raw in enumerate(parsed.entries, start=1):
        entry = _entry(raw, base, feed.warnings, index)
        if entry is None:
            continue
        if entry.key in seen:
            feed.warnings.append(f"entry {index}: duplicate guid {entry.key!r} in the feed, kept once")
            continue
        seen.add(entry.key)
        feed.entries.append(entry)
    return feed


def _describe(exc: Any) -> str:
    text = str(exc) if exc else "unknown problem"
    return f"{type(exc).__name__}: {text}"[:500]


def _language(code: str | None) -> str | None:
    if not code:
        return None
    code = code.strip().lower().replace("_", "-")
    if not re.fullmatch(r"[a-z]{2,3}(-[a-z0-9]+)*", code):
        return None
    return code.split("-")[0]


def _when(raw: dict[str, Any], name: str) -> datetime | None:
    # dict.get: feedparser's own lookup maps a missing updated_parsed to published, noisily.
    value = dict.get(raw, f"{name}_parsed")
    if not isinstance(value, time.struct_time):
        return None
    return datetime.fromtimestamp(calendar.timegm(value), UTC)


def _html(detail: Mapping[str, Any] | None, value: str | None, base: str) -> str:
    if not value:
        return ""
    value = value[:MAX_HTML]
    kind = (detail or {}).get("type", "text/html")
    if kind == "text/plain":
        return text_to_html(value)
    return clean_html(value, base)


def _entry(raw: dict[str, Any], base: str, warnings: list[str], index: int) -> ParsedEntry | None:
    link = safe_url(raw.get("link"), base)
    guid = (raw.get("id") or "").strip()
    if not link:
        warnings.append(f"entry {index}: no usable link, skipped")
        return None
    if len(link) > MAX_URL:
        warnings.append(f"entry {index}: link longer than {MAX_URL} characters, skipped")
        return None
    key = guid or link
    if len(key) > MAX_KEY:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    title = plain_text(raw.get("title", ""))
    if len(title) > MAX_TITLE:
        warnings.append(f"entry {index}: title cut to {MAX_TITLE} characters")
        title = title[: MAX_TITLE - 1] + "…"
    if not title:
        warnings.append(f"entry {index}: no title")
        title = "(untitled)"
    contents = raw.get("content") or []
    html_parts = [c for c in contents if c.get("type") != "text/plain"] or contents
    content = _html(html_parts[0], html_parts[0].get("value"), link) if html_parts else ""
    summary = _html(raw.get("summary_detail"), raw.get("summary"), link)
    author = plain_text(raw.get("author", ""))[:MAX_AUTHOR] or None
    return ParsedEntry(
        key=key,
        url=link,
        title=title,
        author=author,
        published_at=_when(raw, "published") or _when(raw, "updated"),
        updated_at=_when(raw, "updated"),
        summary_html=summary,
        content_html=content,
        image_url=_image(raw, link, content),
        comment_count=_comments(raw.get("slash_comments")),
        terms=tuple(
            dict.fromkeys(
                term for tag in raw.get("tags") or [] if (term := plain_text(tag.get("term") or "")[:200])
            )
        ),
    )


def _comments(value: Any) -> int | None:
    try:
        count = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return count if count >= 0 else None


def _image(raw: Mapping[str, Any], base: str, content: str) -> str | None:
    candidates: list[str | None] = []
    for enclosure in raw.get("enclosures") or []:
        if str(enclosure.get("type", "")).startswith("image/"):
            candidates.append(enclosure.get("href"))
    for media in raw.get("media_content") or []:
        if media.get("medium") == "image" or str(media.get("type", "")).startswith("image/"):
            candidates.append(media.get("url"))
    candidates.extend(thumb.get("url") for thumb in raw.get("media_thumbnail") or [])
    if match := _FIRST_IMG.search(content):
        candidates.append(match.group(1))
    for candidate in candidates:
        url = safe_url(candidate, base)
        if url and len(url) <= MAX_URL:
            return url
    return None
