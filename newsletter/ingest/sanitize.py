"""Sanitizing feed HTML with nh3 on the way in, so templates may mark it safe.

feedparser's own sanitizer is slower and keeps relative links; nh3 with our own link
resolution is both safer and faster (see the design notes).
"""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin

import nh3

URL_SCHEMES = {"http", "https", "mailto"}
URL_ATTRIBUTES = {"href", "src", "cite", "longdesc"}
_SPACE = re.compile(r"\s+")


def clean_html(fragment: str, base_url: str) -> str:
    """Allow-list sanitize: no script/style/iframe/object/form, no on* attributes,
    only http(s)/mailto URLs, relative links made absolute against the article's URL."""

    def absolutize(_tag: str, attribute: str, value: str) -> str | None:
        if attribute in URL_ATTRIBUTES:
            return urljoin(base_url, value.strip())
        return value

    return nh3.clean(
        fragment,
        attribute_filter=absolutize,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()


def plain_text(fragment: str) -> str:
    """Text only (titles, authors): tags dropped, entities decoded, whitespace folded."""
    stripped = nh3.clean(fragment, tags=set(), clean_content_tags={"script", "style"})
    return _SPACE.sub(" ", html.unescape(stripped)).strip()


def text_to_html(text: str) -> str:
    """Content typed text/plain is escaped, never parsed as markup."""
    return "".join(f"<p>{html.escape(part)}</p>" for part in text.split("\n\n") if part.strip())


def safe_url(url: str | None, base_url: str) -> str | None:
    """An absolute http(s) URL, or None for anything else (javascript:, data:, garbage)."""
    if not url:
        return None
    absolute = urljoin(base_url, url.strip())
    return absolute if absolute.lower().startswith(("http://", "https://")) else None
