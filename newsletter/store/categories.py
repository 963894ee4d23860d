"""Category slugs: the one key by which feeds, readers, editions and editors name a section."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.errors import InputError
from newsletter.i18n import Name, named
from newsletter.settings import FeedSettings, Settings
from newsletter.store.models import Category
from newsletter.text import slugify


def configured_sections(settings: Settings) -> dict[str, str]:
    """The sections the settings name, by slug: `[site] categories`, then each category feed's.

    They are sections before any fetch has stored them, so readers can choose them at once."""
    found = {slugify(name): name for name in settings.site.categories}
    for feed in settings.feeds:
        if feed.category:
            found.setdefault(*feed_section(settings, feed))
    return found


def feed_section(settings: Settings, feed: FeedSettings) -> tuple[str, str]:
    """A category feed's (slug, name): the name is the site's, so a language edition's feed
    (its `category_name` is that language's) names its section from the slug."""
    assert feed.category is not None
    own = feed.language in (None, settings.site.language)
    name = feed.category_name if own and feed.category_name else feed.category.title()
    return slugify(feed.category), name


def section_names(settings: Settings, language: str) -> dict[str, str]:
    """The sections' names in `language`, by slug, where the settings give them:
    `[site.category_names.LANGUAGE]`, else a feed in that language's `category_name`."""
    found = {
        slugify(feed.category): feed.category_name
        for feed in settings.feeds
        if feed.category and feed.category_name and feed.language == language
    }
    found.update((slugify(key), name) for key, name in settings.site.category_names.get(language, {}).items())
    return found


def localized(
    settings: Settings, names: dict[str, str], language: str, page_language: str
) -> dict[str, Name]:
    """The sections `names` (slug -> the site's name) as a reader of `language` reads them in a
    page or email whose lang is `page_language`: the settings' name in that language, else the
    site's name marked as the site's language."""
    own = section_names(settings, language)
    return {
        slug: named(own[slug], language, page_language)
        if slug in own
        else named(name, settings.site.language, page_language)
        for slug, name in names.items()
    }


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
