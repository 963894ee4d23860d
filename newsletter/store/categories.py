"""Category slugs: the one key by which feeds, readers, editions and editors name a section."""

from __future__ import annotations

import re
import unicodedata

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.errors import InputError
from newsletter.settings import Settings
from newsletter.store.models import Category


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


def categories_for(session: Session, settings: Settings, names: list[str]) -> list[Category]:
    """The sections a reader chose, created when the settings name one no fetch stored yet."""
    known = configured_sections(settings)
    stored = {c.slug: c for c in session.scalars(select(Category).where(Category.is_section))}
    chosen: list[Category] = []
    for name in names:
        slug = slugify(name)
        if slug in stored:
            chosen.append(stored[slug])
        elif slug in known:
            category = session.scalars(select(Category).where(Category.slug == slug)).one_or_none()
            category = category or Category(slug=slug, name=known[slug], is_section=True)
            category.is_section = True
            session.add(category)
            stored[slug] = category
            chosen.append(category)
        else:
            raise InputError("categories", f"unknown category {name!r}")
    return list(dict.fromkeys(chosen))
