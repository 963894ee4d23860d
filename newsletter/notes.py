"""An editor's note: a few lines of Markdown (paragraphs, emphasis, links) at the top of a
digest, after the greeting. Pure: source in, checked source, sanitized HTML or text out.

markdown-it-py parses only that subset (no raw HTML, no images, no headings); its HTML is then
cleaned by nh3 as feed text is, so nothing but paragraphs, emphasis and http(s) links can reach
a reader, whatever the source. A note is data: never a template, never a personalization marker
(those carry a nonce made per variant).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

from newsletter.text import control_character

# A note is a few lines above the articles, not an article: and every variant carries it.
MAX_NOTE = 2000
# The text part's lines, as the digest's excerpts wrap.
WIDTH = 74
# Deeper nesting is no emphasis a reader sees, and past ~255 elements libxml2 (under premailer)
# drops the rest of the digest: articles, footer and unsubscribe link with it.
MAX_DEPTH = 8
# Bidi embeddings, overrides and isolates, zero-width space, byte-order mark: they reorder or hide
# what a reader sees (`gnp.exe`). Joiners and the RTL/LTR marks stay: scripts and emoji need them.
_SPOOF = re.compile("[\u200b\u202a-\u202e\u2066-\u2069\ufeff]")
RULES = ["emphasis", "link", "newline", "escape"]
TAGS = {"p", "em", "strong", "a", "br"}
SCHEMES = {"http", "https"}


class NoteProblem(ValueError):
    """A note that cannot be used as given; `str()` says why in one line."""


def _web_link(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme.lower() in SCHEMES and bool(parts.netloc)


class _Parser(MarkdownIt):
    """The subset's parser. `strict`: a link that is not an absolute http(s) URL stays text;
    else every link is one, so that `cleaned` sees (and refuses) a javascript: link too."""

    def __init__(self, strict: bool) -> None:
        super().__init__("zero", {"html": False, "linkify": False, "typographer": False})
        self.enable(RULES)
        self.strict = strict

    def validateLink(self, url: str) -> bool:
        return _web_link(url) if self.strict else True


@lru_cache(maxsize=2)
def _parser(strict: bool) -> MarkdownIt:
    return _Parser(strict)


def cleaned(source: str) -> str | None:
    """The note as it is stored: line ends made \\n, the ends trimmed; None when blank. A note
    too long, holding a control character or linking anywhere but an http(s) address is refused."""
    text = source.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        return None
    if len(text) > MAX_NOTE:
        raise NoteProblem(f"a note holds at most {MAX_NOTE} characters, not {len(text)}")
    if (found := control_character(text)) is not None:
        raise NoteProblem(f"a note cannot hold the control character {found}")
    if (mark := _SPOOF.search(text)) is not None:
        raise NoteProblem(f"a note cannot hold the invisible character U+{ord(mark[0]):04X}")
    parsed = _parser(strict=False).parse(text)
    if (depth := _depth(parsed)) > MAX_DEPTH:
        raise NoteProblem(f"a note nests emphasis and links at most {MAX_DEPTH} deep, not {depth}")
    for token in _links(parsed):
        href = str(token.attrs.get("href", ""))
        if not _web_link(href):
            shown = href if len(href) <= 80 else f"{href[:80]}…"
            raise NoteProblem(f"a note's links go to http or https addresses only, not {shown!r}")
    return text


def _depth(tokens: list[Token]) -> int:
    """How deep the note's inline markup nests (emphasis within emphasis, links)."""
    deepest = 0
    for token in tokens:
        level = 0
        for child in token.children or []:
            level += child.nesting
            deepest = max(deepest, level)
    return deepest


def _links(tokens: list[Token]) -> list[Token]:
    return [c for t in tokens for c in t.children or [] if c.type == "link_open"]


@lru_cache(maxsize=32)  # an edition composes many variants per language, each with its note
def to_html(source: str) -> Markup:
    """The note as the digest's HTML shows it: its paragraphs, emphasis and http(s) links, and
    nothing else (sanitized again by nh3, so a note from anywhere is safe to mark so)."""
    rendered = _parser(strict=True).render(source)
    return Markup(
        nh3.clean(
            rendered,
            tags=TAGS,
            attributes={"a": {"href"}},
            url_schemes=SCHEMES,
            link_rel="noopener noreferrer",
            strip_comments=True,
        ).strip()
    )


@lru_cache(maxsize=32)
def to_text(source: str) -> str:
    """The note as the text part shows it: paragraphs wrapped, emphasis as written, each link's
    address in brackets after its words."""
    paragraphs: list[str] = []
    for token in _parser(strict=True).parse(source):
        if token.type == "inline":
            lines = _inline_text(token.children or []).split("\n")
            paragraphs.append(
                "\n".join(
                    textwrap.fill(line, WIDTH, break_long_words=False, break_on_hyphens=False)
                    for line in lines
                )
            )
    return "\n\n".join(p for p in paragraphs if p.strip())


def _inline_text(children: list[Token]) -> str:
    out: list[str] = []
    href: str | None = None
    start = 0
    for child in children:
        if child.type == "text":
            out.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append("\n")
        elif child.type in ("em_open", "em_close", "strong_open", "strong_close"):
            out.append(child.markup)
        elif child.type == "link_open":
            href, start = str(child.attrs.get("href", "")), len(out)
        elif child.type == "link_close" and href is not None:
            if "".join(out[start:]).strip() != href:
                out.append(f" ({href})")
            href = None
    return "".join(out)


def links(source: str) -> list[str]:
    """The addresses the note links to, in order, each once."""
    return list(dict.fromkeys(str(t.attrs["href"]) for t in _links(_parser(strict=True).parse(source))))


def note_for(
    language: str, site_language: str, edition: Mapping[str, str], standing: Mapping[str, str]
) -> str | None:
    """The note readers of `language` get: the edition's in their language, else the
    newsletter's standing one in it; a language with neither gets the site language's (the
    edition's, else the standing one), or none."""
    for code in dict.fromkeys((language, site_language)):
        found = edition.get(code) or standing.get(code)
        if found:
            return found
    return None
