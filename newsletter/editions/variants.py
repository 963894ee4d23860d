"""Digest variants: readers with the same plan and language share one composed digest.

Plans are cached per (sections, what the reader already got) and compositions per
(plan, language), so an edition composes each distinct digest exactly once. A variant's words
around the articles (its title, dates, notes) are in its language's catalog (newsletter/i18n.py).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from newsletter import i18n, published
from newsletter.editions.compose import Card, Composed, Composer, DigestView, Markers
from newsletter.editions.offer import Offer, Story
from newsletter.editions.plan import Plan, plan_digest
from newsletter.editions.slots import slot_time
from newsletter.errors import SettingsError
from newsletter.ingest.sanitize import plain_text
from newsletter.notes import note_for
from newsletter.settings import Settings
from newsletter.store.categories import localized
from newsletter.store.models import Edition
from newsletter.subscribers.links import ClickLinks

EXCERPT = 280
_ELLIPSIS = re.compile(r"\s*\[(…|\.\.\.|&#8230;)\]\s*$")


@dataclass(frozen=True)
class Built:
    key: str
    plan: Plan
    language: str
    composed: Composed


def tagged(url: str, params: dict[str, str]) -> str:
    """The URL with UTM parameters added (existing query kept, existing utm_* replaced)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query += [(k, v) for k, v in params.items() if v]
    return urlunsplit(parts._replace(query=urlencode(query)))


def excerpt(summary_html: str) -> str:
    text = _ELLIPSIS.sub("", plain_text(summary_html))
    if len(text) <= EXCERPT:
        return text
    return text[:EXCERPT].rsplit(" ", 1)[0].rstrip(",.;:") + "…"


def click_links(settings: Settings) -> ClickLinks | None:
    """Tracked links when clicks are tracked and links can be signed (not in a preview made
    before the secret key is set: its links go straight to the site)."""
    if not settings.links.track_clicks:
        return None
    try:
        return ClickLinks(str(settings.public_url), settings.signing_key())
    except SettingsError:
        return None


def utm(settings: Settings, newsletter: str, slot: str) -> dict[str, str]:
    links = settings.links
    return {
        "utm_source": links.utm_source,
        "utm_medium": links.utm_medium,
        "utm_campaign": links.utm_campaign.format(newsletter=newsletter, slot=slot),
    }


def overrides(edition: Edition) -> dict[str, dict[str, str]]:
    """An editor's subject and preheader for the edition, per language ({} when none)."""
    found = json.loads(edition.overrides) if edition.overrides else {}
    return found if isinstance(found, dict) else {}


class Variants:
    """Plans and composes the edition's digests, each once."""

    def __init__(self, settings: Settings, offer: Offer, composer: Composer, public: bool = False) -> None:
        """`public`: for the archive and the feeds, whose links go straight to the site."""
        self.settings = settings
        self.offer = offer
        self.composer = composer
        self.newsletter = settings.newsletter(offer.edition.newsletter)
        self.public = public
        self.utm = {} if public else utm(settings, offer.edition.newsletter, offer.edition.slot)
        self.clicks = None if public else click_links(settings)
        self.overrides = overrides(offer.edition)
        self.standing_notes = self.newsletter.standing_notes(settings.site.language)
        # The site's languages (`Settings.languages`), never one learnt from a reader: no page
        # tells the world that a reader of a rare language is on the list.
        self.public_languages = settings.languages()
        self._plans: dict[tuple[tuple[str, ...], frozenset[int]], Plan] = {}
        self._built: dict[tuple[object, str], Built] = {}
        self._names: dict[str, dict[str, i18n.Name]] = {}
        # A card's excerpt and date, the same in every digest showing it: worked out once.
        self._excerpts: dict[str, str] = {}
        self._dates: dict[tuple[datetime, str], str] = {}

    def plan(self, sections: list[str], received: frozenset[int]) -> Plan:
        chosen = tuple(self.offer.reader_sections(sections))
        relevant = received & self.offer.stories.keys()
        cache_key = (chosen, frozenset(relevant))
        if cache_key not in self._plans:
            self._plans[cache_key] = plan_digest(
                self.offer.candidates,
                self.offer.scores,
                chosen,
                frozenset(relevant),
                self.offer.rules,
                self.offer.names,
            )
        return self._plans[cache_key]

    def build(self, plan: Plan, language: str) -> Built:
        """The composed digest for a plan in a language (composed on first use only); a
        language the site does not offer reads the site's."""
        language = self.settings.reader_language(language)
        cache_key = (plan.key(), language)
        if cache_key not in self._built:
            digest = hashlib.sha256(repr(cache_key).encode()).hexdigest()[:32]
            markers = Markers.fresh()
            composed = self.composer.compose(self.view(plan, language, markers), markers)
            self._built[cache_key] = Built(digest, plan, language, composed)
        return self._built[cache_key]

    @property
    def composed_count(self) -> int:
        return len(self._built)

    def goes(self) -> datetime:
        """The day readers see: the slot, or when it went if sent early (--now closed its window
        then); a window closed for the editors' review (`review_minutes`) still goes at its slot."""
        edition = self.offer.edition
        slot = slot_time(edition.slot, self.settings.zone)
        review = timedelta(minutes=self.settings.newsletter(edition.newsletter).review_minutes)
        return slot if edition.window_end >= slot - review else edition.window_end

    def view(self, plan: Plan, language: str, markers: Markers | None = None) -> DigestView:
        newsletter = self.newsletter.in_language(language)
        # The shipped default titles are in the catalogs; an editor's own title stays as written.
        title = i18n.gettext_for(language)(newsletter.title)
        names = self.section_names(language)
        every = len(plan.chosen) == len(self.offer.section_order)
        return DigestView(
            newsletter=newsletter.model_copy(update={"title": title}),
            site=self.settings.site,
            language=language,
            edition_label=i18n.format_date(self.goes(), language, self.settings.zone),
            trending=[self.card(i, language, list(plan.chosen), markers) for i in plan.trending],
            sections=[
                (names[slug], [self.card(i, language, [slug], markers) for i in ids])
                for slug, ids in plan.sections
            ],
            # A reader of every section (who chose none) is not read the whole list.
            category_names=[] if every else [names[s] for s in plan.chosen],
            subject=self.overrides.get(language, {}).get("subject"),
            preheader=self.overrides.get(language, {}).get("preheader"),
            note=self.note(language),
            **self.public_links(plan, language),
        )

    def note(self, language: str) -> str | None:
        """The editor's note readers of `language` get (Markdown source), if any."""
        return note_for(language, self.settings.site.language, self.offer.notes, self.standing_notes)

    def section_names(self, language: str) -> dict[str, i18n.Name]:
        """The sections' names for readers of `language`, in an email whose lang is its catalog's."""
        if language not in self._names:
            page = i18n.catalog_language(language)
            self._names[language] = localized(self.settings, self.offer.names, language, page)
        return self._names[language]

    def public_links(self, plan: Plan, language: str) -> dict[str, str | None]:
        """Where the edition will be public once sent, and the feed matching the reader's
        sections (one section: its feed, if the archive's digest has that section; else every
        section's), in their language where the archive has it, else in their words' language."""
        if self.public or not self.newsletter.archive:
            return {"archive_url": None, "feed_url": None}
        edition, base = self.offer.edition, str(self.settings.public_url)
        site_language = self.settings.site.language
        if language not in self.public_languages:
            language = i18n.catalog_language(language)
        shown = {slug for slug, _ids in self.plan(list(self.offer.section_order), frozenset()).sections}
        only = None
        if len(plan.chosen) == 1 and len(self.offer.section_order) > 1 and plan.chosen[0] in shown:
            only = plan.chosen[0]
        return {
            "archive_url": published.url(
                base, published.edition_path(edition.newsletter, edition.slot, language, site_language)
            ),
            "feed_url": published.url(base, published.feed_path(edition.newsletter, language, "atom", only)),
        }

    def link(self, story: Story, markers: Markers | None) -> str:
        """The article's link: through the click counter when clicks are tracked (the edition's
        and article's part signed here, the reader's filled in per reader), else straight."""
        if self.clicks is None or markers is None:
            return tagged(story.url, self.utm) if self.utm else story.url
        return self.clicks.url(self.offer.edition.id, story.id, markers.token("click"))

    def card(self, article_id: int, language: str, prefer: list[str], markers: Markers | None = None) -> Card:
        original = self.offer.stories[article_id]
        site_language = self.settings.site.language
        gettext = i18n.gettext_for(language)
        story: Story = original
        note = None
        if language != site_language:
            translation = self.offer.translations.get((original.key, language))
            if translation is not None:
                story, note = translation, gettext("Machine translation")
            else:
                # Translators: a badge on an article shown in its original language, e.g. "In English".
                note = gettext("In %(language)s") % {"language": i18n.language_name(site_language, language)}
        section = next((s for s in original.sections if s in prefer), original.sections[0])
        category = self.section_names(language).get(section)
        return Card(
            url=self.link(story, markers),
            title=story.title,
            author=story.author,
            published=self._date(original.published_at, language),
            excerpt=self._excerpt(story.summary_html),
            image_url=original.image_url,
            category=category,
            category_language=category.language if category is not None else None,
            comments=original.comment_count,
            note=note,
            language=story.language if story.language != i18n.catalog_language(language) else None,
        )

    def _excerpt(self, summary_html: str) -> str:
        if summary_html not in self._excerpts:
            self._excerpts[summary_html] = excerpt(summary_html)
        return self._excerpts[summary_html]

    def _date(self, moment: datetime, language: str) -> str:
        if (moment, language) not in self._dates:
            self._dates[moment, language] = i18n.format_date(moment, language, self.settings.zone)
        return self._dates[moment, language]
