"""The public archive's and feeds' addresses, in one place: the emails link to them when they
are composed (before the pages exist), the web app serves them, and the export writes them.

    /archive/NEWSLETTER                        the index, in the site's language (newest first)
    /archive/NEWSLETTER/page/N                 its older pages
    /archive/NEWSLETTER/in/LANGUAGE[/page/N]   the index in another language
    /archive/NEWSLETTER/SLUG                   an edition, in the site's language
    /archive/NEWSLETTER/SLUG/LANGUAGE          an edition in another language
    /feeds/NEWSLETTER/LANGUAGE.{atom,rss,json}            every section
    /feeds/NEWSLETTER/LANGUAGE/CATEGORY.{atom,rss,json}   one section
"""

from __future__ import annotations

from urllib.parse import quote

FEED_KINDS = ("atom", "rss", "json")
MEDIA_TYPES = {
    "atom": "application/atom+xml; charset=utf-8",
    "rss": "application/rss+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "xml": "application/xml; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
    "css": "text/css; charset=utf-8",
}


def slug(slot: str) -> str:
    """An edition's slug: its slot's date ("2026-11-23T07:00" -> "2026-11-23"); one slot a day.
    An alert's names its article too ("2026-12-02T10:00~1045" -> "2026-12-02-1045"): several a day."""
    day = slot.split("T", 1)[0]
    return f"{day}-{slot.split('~', 1)[1]}" if "~" in slot else day


def edition_path(newsletter: str, slot: str, language: str, site_language: str) -> str:
    base = f"/archive/{newsletter}/{slug(slot)}"
    return base if language == site_language else f"{base}/{language}"


def index_path(newsletter: str, language: str, site_language: str, page: int = 1) -> str:
    base = f"/archive/{newsletter}" if language == site_language else f"/archive/{newsletter}/in/{language}"
    return base if page == 1 else f"{base}/page/{page}"


def feed_path(newsletter: str, language: str, kind: str, category: str | None = None) -> str:
    return f"/feeds/{newsletter}/{language}{f'/{category}' if category else ''}.{kind}"


def url(public_url: str, path: str) -> str:
    """An absolute address: the public URL's origin (and path prefix, if any) and `path`,
    percent-encoded (a newsletter's name may hold a space or an umlaut)."""
    return public_url.rstrip("/") + quote(path)
