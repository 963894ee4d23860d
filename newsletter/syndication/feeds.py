"""A newsletter's feeds in one language, for every section or for one: Atom and RSS 2.0 (made by
feedgen) and JSON Feed 1.1, one entry per archived edition linking to its archive page.

Everything in them comes from the archived editions and the settings, never from the clock: the
same editions give the same bytes, so a re-render keeps the stored documents (and their ETags)
and the export byte-identical.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from feedgen.ext.base import BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from newsletter.editions.compose import Card
from newsletter.i18n import N_, Name, gettext_for, translations
from newsletter.ingest.sanitize import safe_url
from newsletter.published import FEED_KINDS, MEDIA_TYPES, edition_path, feed_path, index_path, url
from newsletter.settings import Settings
from newsletter.syndication.content import Digest, Published
from newsletter.syndication.documents import Rendered

ATOM_NS = "http://www.w3.org/2005/Atom"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
# An empty feed's date: feedgen would stamp the current time, changing the bytes at every render.
EMPTY_FEED_DATE = datetime(1970, 1, 1, tzinfo=UTC)
# Headlines an entry's summary names before "and N more".
SUMMARY_HEADLINES = 5
# What XML 1.0 cannot carry (C0 controls but tab and newlines, lone surrogates, U+FFFE, U+FFFF),
# and DEL and the C1 controls: outside text loses them before it reaches any format.
_UNFIT = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# "<" as JSON's own escape: no tag (a "</script>" in a title) opens where the JSON Feed is pasted.
_JSON_MARKUP = str.maketrans({"<": "\\u003c"})

FEED_TITLE = N_("%(site)s: %(newsletter)s")
SECTION_FEED_TITLE = N_("%(site)s: %(newsletter)s · %(section)s")
# Whatever the title ("The Week in Riverside", "Weekly digest"), it stands alone: no article before it.
FEED_DESCRIPTION = N_("%(title)s: every edition")
SECTION_FEED_DESCRIPTION = N_("%(title)s: %(section)s in every edition")
ENTRY_TITLE = N_("%(newsletter)s, %(date)s")
SECTION_ENTRY_TITLE = N_("%(section)s · %(newsletter)s, %(date)s")
TRENDING = N_("Trending")


@dataclass(frozen=True)
class Entry:
    """One edition as a feed entry, the same words in every format. Its id is its link, the
    edition's archive page (and section): it never changes once the edition is published."""

    link: str
    title: str
    summary: str  # plain text
    content: str  # HTML, every outside value escaped
    published_at: datetime


@dataclass(frozen=True)
class Feed:
    """A feed as all three formats say it, so they never disagree."""

    title: str
    description: str
    language: str
    home: str  # the newsletter's archive index in this language
    locations: dict[str, str]  # each format's own absolute URL, by kind
    hubs: list[str]
    site_name: str
    site_url: str
    entries: list[Entry]

    @property
    def updated(self) -> datetime:
        return self.entries[0].published_at if self.entries else EMPTY_FEED_DATE


def feeds(
    settings: Settings,
    newsletter: str,
    language: str,
    publications: list[Published],
    category: str | None = None,
) -> list[Rendered]:
    """The Atom, RSS and JSON feeds of `newsletter` in `language` (of the section `category`
    only, if given) with an entry for each publication that has that language (and section)."""
    feed = _feed(settings, newsletter, language, publications, category)
    bodies = {"atom": _atom(feed), "rss": _rss(feed), "json": _json(feed)}
    return [
        Rendered(feed_path(newsletter, language, kind, category), MEDIA_TYPES[kind], body)
        for kind, body in bodies.items()
    ]


def _feed(
    settings: Settings, newsletter: str, language: str, publications: list[Published], category: str | None
) -> Feed:
    gettext = gettext_for(language)
    public_url = str(settings.public_url)
    site_url = str(settings.site.url)
    entries: list[Entry] = []
    section_name: str | None = None  # the newest edition's name for it
    newest_first = sorted(publications, key=lambda p: (p.published_at, p.edition_id), reverse=True)
    for publication in newest_first:
        digest = publication.digests.get(language)
        if publication.withdrawn or digest is None:
            continue
        page = url(public_url, edition_path(newsletter, publication.slot, language, settings.site.language))
        note = ""
        if category is None:
            title = gettext(ENTRY_TITLE) % {"newsletter": digest.title, "date": digest.label}
            blocks = _blocks(digest, gettext)
            note = f"{digest.note_html}\n" if digest.note_html else ""  # sanitized, as the page shows it
        else:
            section = digest.section(category)
            if section is None:
                continue
            section_name = section_name or section.name
            page = f"{page}#{section.slug}"
            title = gettext(SECTION_ENTRY_TITLE) % {
                "section": section.name,
                "newsletter": digest.title,
                "date": digest.label,
            }
            blocks = [(None, section.cards)]
        entries.append(
            Entry(
                link=page,
                title=_clean(title),
                summary=_summary([card.title for _heading, cards in blocks for card in cards], language),
                content=note + _content(blocks, site_url),
                published_at=publication.published_at.astimezone(UTC),
            )
        )
    title = gettext(settings.newsletter(newsletter).in_language(language).title)
    names = {
        "site": settings.site.name,
        "newsletter": title,
        "title": title,
        "section": section_name or category,
    }
    return Feed(
        title=_clean(gettext(SECTION_FEED_TITLE if category else FEED_TITLE) % names),
        description=_clean(gettext(SECTION_FEED_DESCRIPTION if category else FEED_DESCRIPTION) % names),
        language=language,
        home=url(public_url, index_path(newsletter, language, settings.site.language)),
        locations={
            kind: url(public_url, feed_path(newsletter, language, kind, category)) for kind in FEED_KINDS
        },
        hubs=[str(hub) for hub in settings.syndication.hubs],
        site_name=_clean(settings.site.name),
        site_url=site_url,
        entries=entries,
    )


def _blocks(digest: Digest, gettext: Callable[[str], str]) -> list[tuple[str | None, list[Card]]]:
    """An edition's cards under their headings, as its archive page shows them."""
    trending = [(gettext(TRENDING), digest.trending)] if digest.trending else []
    return [
        *trending,
        *((Name(section.name, section.language), section.cards) for section in digest.sections),
    ]


def _summary(headlines: list[str], language: str) -> str:
    shown = list(dict.fromkeys(_clean(headline) for headline in headlines))
    summary = " · ".join(shown[:SUMMARY_HEADLINES])
    more = len(shown) - SUMMARY_HEADLINES
    if more > 0:
        summary += " " + translations(language).ngettext("and %(num)d more", "and %(num)d more", more) % {
            "num": more
        }
    return summary


def _content(blocks: list[tuple[str | None, list[Card]]], site_url: str) -> str:
    parts = []
    for heading, cards in blocks:
        if heading is not None:
            # A section's name in the site's language in a feed of another says so, as the pages do.
            lang = (
                f' lang="{_escaped(heading.language)}"'
                if isinstance(heading, Name) and heading.language
                else ""
            )
            parts.append(f"<h2{lang}>{_escaped(heading)}</h2>")
        parts.extend(_card(card, site_url) for card in cards)
    return "\n".join(parts)


def _card(card: Card, site_url: str) -> str:
    """An article: its headline linking to it (only to an http(s) address), its author, date
    and note, its excerpt."""
    link = safe_url(_clean(card.url), site_url)
    headline = f'<a href="{_escaped(link)}">{_escaped(card.title)}</a>' if link else _escaped(card.title)
    byline = " · ".join(_escaped(part) for part in (card.author, card.published, card.note) if part)
    lang = f' lang="{_escaped(card.language)}"' if card.language else ""
    return "".join(
        [
            f'<div dir="auto"{lang}><h3>{headline}</h3>',
            f"<p>{byline}</p>" if byline else "",
            f"<p>{_escaped(card.excerpt)}</p>" if card.excerpt else "",
            "</div>",
        ]
    )


def _clean(text: str) -> str:
    return _UNFIT.sub("", text)


def _escaped(text: str) -> str:
    return html.escape(_clean(text))


class _HubLinks(BaseExtension):
    """feedgen writes a feed's rel="hub" links into Atom only: this adds them to RSS's channel."""

    def __init__(self, hubs: list[str]) -> None:
        self.hubs = hubs

    def extend_rss(self, feed: Any) -> Any:
        channel = feed.find("channel")
        for hub in self.hubs:
            etree.SubElement(channel, f"{{{ATOM_NS}}}link", href=hub, rel="hub")
        return feed


def _generator(feed: Feed, kind: str) -> Any:
    generator = FeedGenerator()
    generator.register_extension("hub_links", partial(_HubLinks, feed.hubs), atom=False, rss=True)
    generator.id(feed.locations["atom"])
    generator.title(feed.title)
    generator.description(feed.description)
    generator.language(feed.language)
    generator.author(name=feed.site_name, uri=feed.site_url)
    # Its own version would change the bytes of every feed at a feedgen upgrade.
    generator.generator("newsletter")
    generator.updated(feed.updated)  # Atom's updated and RSS's lastBuildDate
    generator.pubDate(feed.updated)
    generator.link(href=feed.locations[kind], rel="self", type=_media_type(kind))
    for hub in feed.hubs:
        generator.link(href=hub, rel="hub")
    # Last: RSS's channel link is the last link given.
    generator.link(href=feed.home, rel="alternate", type="text/html", hreflang=feed.language)
    for entry in feed.entries:
        item = generator.add_entry(order="append")
        item.guid(entry.link, permalink=True)
        item.title(entry.title)
        item.link(href=entry.link, rel="alternate", type="text/html")
        item.updated(entry.published_at)
        item.published(entry.published_at)
        item.content(entry.content, type="html")
        # As HTML: RSS's description is read as HTML, so plain text must arrive escaped.
        item.summary(html.escape(entry.summary), type="html")
    return generator


def _media_type(kind: str) -> str:
    return MEDIA_TYPES[kind].split(";", 1)[0]


def _atom(feed: Feed) -> str:
    body: bytes = _generator(feed, "atom").atom_str(pretty=True)
    return body.decode()


def _rss(feed: Feed) -> str:
    body: bytes = _generator(feed, "rss").rss_str(pretty=True)
    return body.decode()


def _json(feed: Feed) -> str:
    document: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": feed.title,
        "description": feed.description,
        "home_page_url": feed.home,
        "feed_url": feed.locations["json"],
        "language": feed.language,
        "authors": [{"name": feed.site_name, "url": feed.site_url}],
        "items": [
            {
                "id": entry.link,
                "url": entry.link,
                "title": entry.title,
                "summary": entry.summary,
                "content_html": entry.content,
                "date_published": entry.published_at.isoformat(),
                "date_modified": entry.published_at.isoformat(),
            }
            for entry in feed.entries
        ],
    }
    if feed.hubs:
        document["hubs"] = [{"type": "WebSub", "url": hub} for hub in feed.hubs]
    text = json.dumps(document, ensure_ascii=False, indent=2, sort_keys=True)
    return text.translate(_JSON_MARKUP) + "\n"
