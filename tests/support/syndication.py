"""Archived editions made up in memory for the syndication tests: hostile, right-to-left and
emoji titles, a long excerpt, editions with and without German or a Health section, and the
settings of a site publishing them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from newsletter.editions.compose import Card
from newsletter.settings import Settings
from newsletter.syndication.content import Digest, Published, Section

PUBLIC = "https://news.example/nl"
HOSTILE_TITLE = "<script>alert(1)</script> ]]> &amp; \x00nul \x1b[2Jescape"
LONG_EXCERPT = "Ä" + "long text, " * 909  # 10,000 characters
RTL_TITLE = "בחירות באירופה — انتخابات في أوروبا"
EMOJI_TITLE = "Vote 🗳️ for the family 👨‍👩‍👧"


def card(slug: str, title: str | None = None, **changes: Any) -> Card:
    values: dict[str, Any] = {
        "url": f"https://www.site.example/{slug}",
        "title": title or f"Story {slug}",
        "author": "Ana Author",
        "published": "20 November 2026",
        "excerpt": f"What happened in {slug}.",
        "image_url": None,
        "category": None,
        "comments": None,
        "note": None,
    }
    return Card(**{**values, **changes})


def digest(day: str, language: str, health: bool = True) -> Digest:
    """One edition's digest: Politics with hostile texts and Health (when `health`)."""
    german = language == "de"
    politics = Section(
        "politics",
        "Politik" if german else "Politics",
        [
            card(f"{day}-politics-1", HOSTILE_TITLE, author="Eve\x07 <b>Bold</b>", excerpt=LONG_EXCERPT),
            card(f"{day}-politics-2", RTL_TITLE, language="he"),
            card(f"{day}-politics-3", "A javascript: link", url="javascript:alert(2)"),
        ],
    )
    sections = [politics]
    if health:
        sections.append(Section("health", "Gesundheit" if german else "Health", [card(f"{day}-health-1")]))
    return Digest(
        "Wochenüberblick" if german else "Weekly digest",
        f"{day} November 2026",
        [card(f"{day}-trending-1", EMOJI_TITLE, note="Machine translation" if german else None)],
        sections,
    )


def edition(day: int, languages: tuple[str, ...] = ("en", "de"), health: bool = True) -> Published:
    return Published(
        edition_id=day,
        newsletter="weekly",
        slot=f"2026-11-{day:02d}T07:00",
        slug=f"2026-11-{day:02d}",
        published_at=datetime(2026, 11, day, 7, 0, tzinfo=UTC),
        digests={language: digest(str(day), language, health) for language in languages},
        withdrawn=False,
    )


# Newest first, as the caller passes them: the 16th has no German, the 9th no Health section.
EDITIONS = [edition(23), edition(16, ("en",)), edition(9, health=False)]


def make_settings(hubs: list[str] | None = None) -> Settings:
    return Settings(public_url=PUBLIC, site={"name": "The Example Times"}, syndication={"hubs": hubs or []})
