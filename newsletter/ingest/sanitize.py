"""Sanitizing feed HTML with nh3 on the way in, so templates may mark it safe.

feedparser's own sanitizer is slower and keeps relative links; nh3 with our own link
resolution is both safer and faster (see the design notes).
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote, urljoin, urlsplit

import nh3

URL_SCHEMES = {"http", "https", "mailto"}
WEB_SCHEMES = {"http", "https"}
# nh3 checks url_schemes on href and src only: cite (blockquote, q, del, ins) is ours to check.
URL_ATTRIBUTES = {"href", "src", "cite", "longdesc"}
_SPACE = re.compile(r"\s+")
# What a browser ignores in a URL: C0 controls and spaces around it, tabs and newlines inside.
_EDGES = "".join(map(chr, range(0x21)))
_INSIDE = re.compile(r"[\t\n\r]")
# RFC 3986's reserved and unreserved characters, and % for what is already encoded.
URL_SAFE = "/:?#[]@!$&'()*+,;=%~-._"


def clean_html(fragment: str, base_url: str) -> str:
    """Allow-list sanitize: no script/style/iframe/object/form, no on* attributes,
    only http(s)/mailto URLs, relative links made absolute against the article's URL."""

    def absolutize(_tag: str, attribute: str, value: str) -> str | None:
        if attribute in URL_ATTRIBUTES:
            return absolute_url(value, base_url, URL_SCHEMES)
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
    return absolute_url(url, base_url, WEB_SCHEMES) if url else None


def absolute_url(url: str, base_url: str, schemes: set[str]) -> str | None:
    """`url` made absolute against `base_url`, or None unless its scheme is one of `schemes`.

    The scheme is read as a browser reads it, after dropping what a browser ignores, so
    "\\x01java\\tscript:" is javascript: here too."""
    cleaned = _INSIDE.sub("", url.strip(_EDGES))
    try:
        joined = urljoin(base_url, cleaned)
        scheme = urlsplit(joined).scheme
    except ValueError:  # a malformed IPv6 host, say
        return None
    # Spaces, quotes, angle brackets and non-ASCII percent-encoded, as a browser would send them:
    # a stored URL is one unbroken token wherever it lands (an attribute, a text part, a header).
    return quote(joined, safe=URL_SAFE) if scheme in schemes else None
