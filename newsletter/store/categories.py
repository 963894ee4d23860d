"""Category slugs: the one key by which feeds, readers, editions and editors name a section."""

from __future__ import annotations

import re
import unicodedata

from newsletter.settings import Settings


def slugify(name: str) -> str:
    """WordPress-like slug: 'Health & Science' -> 'health-science'."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-") or "uncategorized"


def configured_sections(settings: Settings) -> dict[str, str]:
    """The sections the settings name, by slug: `[site] categories`, then each category feed's.

    They are sections before any fetch has stored them, so readers can choose them at once."""
    found = {slugify(name): name for name in settings.site.categories}
    for feed in settings.feeds:
        if feed.category:
            found.setdefault(slugify(feed.category), feed.category_name or feed.category.title())
    return found
