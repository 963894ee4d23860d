"""An edition's generic digest per language, as the archive and the feeds show it: every
section, and nothing of any reader (no greeting, no token, no tracked or tagged link).

It is computed once, when the edition is archived, and kept as JSON on its publication, so
every later rendering of its pages and feed entries gives the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from newsletter import notes
from newsletter.editions.compose import Card, Composer
from newsletter.editions.offer import load_offer
from newsletter.editions.variants import Variants
from newsletter.settings import Settings
from newsletter.store.models import Edition, Publication


@dataclass(frozen=True)
class Section:
    slug: str
    name: str
    cards: list[Card]
    # The name's language where it is not the page's (the site's name in another language's
    # page, where the settings give none in that language); None in publications made before.
    language: str | None = None


@dataclass(frozen=True)
class Digest:
    """The edition in one language: its newsletter's title, its date as a reader of that
    language reads it, the Trending block and each section."""

    title: str
    label: str
    trending: list[Card]
    sections: list[Section]
    # The editor's note its readers got (Markdown source); None in publications made before.
    note: str | None = None

    @property
    def note_html(self) -> Markup | None:
        """The note as the email showed it: sanitized, so the page may show it as HTML."""
        return notes.to_html(self.note) if self.note else None

    @property
    def cards(self) -> list[Card]:
        return self.trending + [card for section in self.sections for card in section.cards]

    def section(self, slug: str) -> Section | None:
        return next((s for s in self.sections if s.slug == slug), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Digest:
        return cls(
            data["title"],
            data["label"],
            [Card(**card) for card in data["trending"]],
            [
                Section(s["slug"], s["name"], [Card(**card) for card in s["cards"]], s.get("language"))
                for s in data["sections"]
            ],
            data.get("note"),
        )


@dataclass(frozen=True)
class Published:
    """A publication as pages and feeds use it: plain data, in every language it has."""

    edition_id: int
    newsletter: str
    slot: str
    slug: str
    published_at: datetime
    digests: dict[str, Digest]  # by language, the site's first
    withdrawn: bool

    @classmethod
    def of(cls, row: Publication, slot: str, languages: list[str]) -> Published:
        """The publication in those of its languages that are among `languages`."""
        kept = json.loads(row.content)
        return cls(
            row.edition_id,
            row.newsletter,
            slot,
            row.slug,
            row.published_at,
            {language: Digest.from_json(data) for language, data in kept.items() if language in languages},
            row.withdrawn_at is not None,
        )


def digests(session: Session, settings: Settings, edition: Edition) -> dict[str, Digest]:
    """The edition's generic digest (a reader of every section who got nothing before) in each
    language the archive publishes it in; empty when it holds no article. An alert's is its
    one article, as its message shows it."""
    if edition.article_id is not None:
        return _alert(session, settings, edition)
    offer = load_offer(session, settings, edition)
    variants = Variants(settings, offer, Composer(settings.templates_path()), public=True)
    plan = variants.plan(list(offer.section_order), frozenset())
    if plan.empty:
        return {}
    found = {}
    for language in variants.public_languages:
        view = variants.view(plan, language)
        found[language] = Digest(
            view.newsletter.title,
            view.edition_label,
            view.trending,
            [
                Section(slug, name, cards, name.language)
                for (slug, _ids), (name, cards) in zip(plan.sections, view.sections, strict=True)
            ],
            view.note,
        )
    return found


def _alert(session: Session, settings: Settings, edition: Edition) -> dict[str, Digest]:
    """An alert's one article in each language the archive publishes, in its first section."""
    from newsletter.editions.alert import AlertMessages

    messages = AlertMessages(session, settings, edition, Composer(settings.templates_path()), public=True)
    sections = messages.sections()
    found = {}
    for language in settings.languages():
        view = messages.view(language, None)
        [card] = view.cards
        name = card.category or view.newsletter.title
        slug = sections[0].slug if sections else "alert"
        found[language] = Digest(
            view.newsletter.title,
            view.edition_label,
            [],
            [Section(slug, name, [card], card.category_language)],
        )
    return found
