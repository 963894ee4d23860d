"""An alert: one article, sent at once to the readers of an alert newsletter.

It is an edition like a digest's, in the same ledger: one variant per language its readers
read, composed once, and one delivery per reader written by one INSERT ... SELECT. Its slot is
when it was opened plus the article (`alert_slot`); (newsletter, article) is unique in the
store, so an article is alerted once per newsletter whoever asks and however often.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from newsletter import i18n
from newsletter.editions.audience import audience
from newsletter.editions.compose import Card, Composed, Composer, DigestView, Markers
from newsletter.editions.edition import EditionError
from newsletter.editions.prepare import SUPPRESSED, Prepared, save_variant
from newsletter.editions.slots import slot_name, slot_on
from newsletter.editions.variants import click_links, excerpt, tagged, utm
from newsletter.settings import Settings
from newsletter.store import ledger
from newsletter.store.categories import localized
from newsletter.store.ledger import Assignment
from newsletter.store.models import DELIVERIES, Article, Category, Delivery, Edition
from newsletter.store.statuses import DeliveryStatus, EditionStatus

# A reader's deliveries that count against `max_per_day`: gone, going, or maybe gone.
COUNTED = (DeliveryStatus.SENT, DeliveryStatus.SENDING, DeliveryStatus.PENDING, DeliveryStatus.UNCERTAIN)
PREHEADER = 140


def alert_slot(opened: datetime, zone: ZoneInfo, article_id: int) -> str:
    """An alert's slot: the minute it was opened (the site's wall clock, as a digest's slot
    reads), then its article, so two alerts of one minute are two editions."""
    return f"{slot_name(opened.astimezone(zone))}~{article_id}"


def quiet_until(quiet_hours: str | None, zone: ZoneInfo, now: datetime) -> datetime | None:
    """When the quiet hours `now` falls in end ("22:00-07:00" in the site's zone); None outside
    them. They may run past midnight."""
    if not quiet_hours:
        return None
    start, end = (_minutes(part) for part in quiet_hours.split("-"))
    local = now.astimezone(zone)
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start < end else minute >= start or minute < end
    if not inside:
        return None
    day = local.date() + timedelta(days=1 if minute >= end else 0)
    return slot_on(day, quiet_hours.split("-")[1], zone).astimezone(UTC)


def _minutes(at: str) -> int:
    hour, minute = at.split(":")
    return int(hour) * 60 + int(minute)


def day_bounds(zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    """The site's day `now` is in, as instants: what `max_per_day` counts in."""
    day = now.astimezone(zone).date()
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def the_original(session: Session, article: Article) -> Article:
    """The article every translation of it shares an alert with: the first stored of its key."""
    first = session.scalars(select(Article).where(Article.key == article.key).order_by(Article.id).limit(1))
    return first.one()


def editor_subject(edition: Edition) -> str | None:
    """The editor's subject for the alert, the same in every language; None: the headline."""
    found = json.loads(edition.overrides) if edition.overrides else {}
    subject = found.get("*", {}).get("subject") if isinstance(found, dict) else None
    return subject if isinstance(subject, str) and subject.strip() else None


def subject_override(subject: str | None) -> str | None:
    """What `Edition.overrides` keeps of an editor's subject for an alert (plain text)."""
    return json.dumps({"*": {"subject": " ".join(subject.split())}}) if subject and subject.strip() else None


@dataclass(frozen=True)
class Message:
    """An alert composed for readers of one language."""

    key: str
    language: str
    composed: Composed


class AlertMessages:
    """The alert's message per reader's language, each composed once."""

    def __init__(
        self, session: Session, settings: Settings, edition: Edition, composer: Composer, public: bool = False
    ) -> None:
        """`public`: for the archive and the feeds, whose links go straight to the site."""
        if edition.article_id is None:
            raise EditionError(f"edition {edition.id} is not an alert, or its article is gone")
        self.settings = settings
        self.edition = edition
        self.composer = composer
        self.original = session.get_one(Article, edition.article_id)
        self.versions = {
            a.language: a for a in session.scalars(select(Article).where(Article.key == self.original.key))
        }
        self.newsletter = settings.newsletter(edition.newsletter)
        self.subject = editor_subject(edition)
        self.clicks = None if public else click_links(settings)
        self.utm = {} if public else utm(settings, edition.newsletter, edition.slot)
        self._built: dict[str, Message] = {}

    def build(self, language: str) -> Message:
        """The message for readers of `language` (a language the site does not offer reads the site's)."""
        language = self.settings.reader_language(language)
        if language not in self._built:
            markers = Markers.fresh()
            composed = self.composer.compose(self.view(language, markers), markers)
            key = hashlib.sha256(f"alert {language}".encode()).hexdigest()[:32]
            self._built[language] = Message(key, language, composed)
        return self._built[language]

    def view(self, language: str, markers: Markers | None) -> DigestView:
        newsletter = self.newsletter.in_language(language)
        title = i18n.gettext_for(language)(newsletter.title)
        card = self.card(language, markers)
        lead = (
            card.excerpt[:PREHEADER].rsplit(" ", 1)[0] + "…"
            if len(card.excerpt) > PREHEADER
            else card.excerpt
        )
        return DigestView(
            newsletter=newsletter.model_copy(update={"title": title}),
            site=self.settings.site,
            language=language,
            edition_label=i18n.format_date(self.edition.window_end, language, self.settings.zone),
            trending=[],
            sections=[(i18n.Name(card.category or ""), [card])],
            category_names=[],
            subject=self.subject or card.title,
            preheader=lead or title,
            template="alert",
        )

    def sections(self) -> list[Category]:
        """The article's sections (else its tags): the first names it on its card."""
        return [c for c in self.original.categories if c.is_section] or list(self.original.categories)

    def card(self, language: str, markers: Markers | None) -> Card:
        """The article in the reader's language where a translation exists, as a digest shows it."""
        gettext = i18n.gettext_for(language)
        site_language = self.settings.site.language
        story = self.versions.get(site_language, self.original)
        note = None
        if language != site_language and language in self.versions:
            story, note = self.versions[language], gettext("Machine translation")
        if story.language != language and note is None:
            # Translators: a badge on an article shown in its original language, e.g. "In English".
            note = gettext("In %(language)s") % {"language": i18n.language_name(story.language, language)}
        sections = self.sections()
        category = None
        if sections:
            page = i18n.catalog_language(language)
            category = localized(self.settings, {sections[0].slug: sections[0].name}, language, page)[
                sections[0].slug
            ]
        if self.clicks is not None and markers is not None and self.edition.id is not None:
            url = self.clicks.url(self.edition.id, story.id, markers.token("click"))
        else:
            url = tagged(story.url, self.utm) if self.utm else story.url
        return Card(
            url=url,
            title=story.title,
            author=story.author,
            published=i18n.format_date(self.original.published_at, language, self.settings.zone),
            excerpt=excerpt(story.summary_html),
            image_url=self.original.image_url,
            category=category,
            category_language=category.language if category is not None else None,
            comments=None,
            note=note,
            language=story.language if story.language != i18n.catalog_language(language) else None,
        )


def prepare_alert(
    session: Session, settings: Settings, edition: Edition, composer: Composer, now: datetime
) -> Prepared:
    """The alert's variants and deliveries, once (a prepared alert is left as is): every active
    reader of its newsletter gets it, a suppressed one is suppressed, and one who had
    `max_per_day` alerts of it today already is skipped with that reason."""
    summary = Prepared()
    if edition.status != EditionStatus.DRAFT:
        return summary
    if session.get_bind().dialect.name == "postgresql":
        # Alerts of one newsletter are prepared one at a time: each counts the one before it.
        session.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(edition.newsletter.encode())}
        )
    edition.window_end = now  # when it goes: the day `max_per_day` counts it in, the date shown
    messages = AlertMessages(session, settings, edition, composer)
    readers = audience(edition.newsletter, {}, now)
    groups = session.execute(
        select(readers.c.mask, readers.c.language, readers.c.suppressed).group_by(
            readers.c.mask, readers.c.language, readers.c.suppressed
        )
    ).all()
    saved: dict[str, int] = {}
    plan = []
    for mask, language, suppressed in groups:
        if suppressed:
            plan.append((mask, language, suppressed, SUPPRESSED))
            continue
        message = messages.build(language)
        if message.key not in saved:
            saved[message.key] = _save(session, edition, message)
            summary.warnings.extend(message.composed.warnings)
        plan.append((mask, language, suppressed, Assignment(DeliveryStatus.PENDING, saved[message.key])))
    ledger.open_deliveries(session, edition.id, readers, plan)
    limit = settings.newsletter(edition.newsletter).max_per_day
    if limit is not None:
        _over_the_limit(session, settings, edition, limit, now)
    tally = ledger.counts(session, edition.id)
    summary.recipients = tally.get(DeliveryStatus.PENDING, 0)
    summary.skipped = tally.get(DeliveryStatus.SKIPPED, 0)
    summary.suppressed = tally.get(DeliveryStatus.SUPPRESSED, 0)
    summary.variants = len(saved)
    edition.status = EditionStatus.READY
    return summary


def _over_the_limit(
    session: Session, settings: Settings, edition: Edition, limit: int, now: datetime
) -> None:
    """Readers who got `limit` alerts of the newsletter today (the site's day) are skipped."""
    start, end = day_bounds(settings.zone, now)
    today = (
        select(Delivery.subscriber_id)
        .join(Edition, Edition.id == Delivery.edition_id)
        .where(
            Edition.newsletter == edition.newsletter,
            Edition.id != edition.id,
            Edition.article_id.is_not(None),
            Edition.window_end >= start,
            Edition.window_end < end,
            Edition.status != EditionStatus.DRAFT,
            Delivery.status.in_(COUNTED),
        )
        .group_by(Delivery.subscriber_id)
        .having(func.count() >= limit)
    )
    session.execute(
        update(DELIVERIES)
        .where(
            DELIVERIES.c.edition_id == edition.id,
            DELIVERIES.c.status == DeliveryStatus.PENDING,
            DELIVERIES.c.subscriber_id.in_(today.scalar_subquery()),
        )
        .values(
            status=DeliveryStatus.SKIPPED,
            variant_id=None,
            detail=f"max_per_day: {limit} {edition.newsletter} alert{'s' * (limit != 1)} today already",
        )
    )


def _save(session: Session, edition: Edition, message: Message) -> int:
    return save_variant(session, edition, message.key, message.language, "", message.composed).id
