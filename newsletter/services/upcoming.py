"""The editors' view of the next edition: its variants as stored (never recomposed per
request), the articles an editor may pick from, and one variant as a reader gets it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup
from sqlalchemy import ColumnElement, LargeBinary, cast, func, select
from sqlalchemy.orm import Session

from newsletter import notes
from newsletter.editions.audience import audience
from newsletter.editions.compose import CLIP_BYTES, Composed, Markers
from newsletter.editions.edition import EditionError, EditionInfo, draft, next_slot
from newsletter.editions.offer import Offer, edition_notes, load_offer
from newsletter.editions.picks import pin_order
from newsletter.editions.prepare import Prepared, tally
from newsletter.editions.preview import Preview, fill, reader_for
from newsletter.editions.variants import overrides
from newsletter.errors import InputError, NewsletterError
from newsletter.notes import note_for
from newsletter.sending.providers import OutcomeStatus
from newsletter.services import audit
from newsletter.services.editions import grace
from newsletter.services.editors import preview
from newsletter.services.sending import TestSent, test_send
from newsletter.settings import NewsletterSettings, Settings
from newsletter.store import ledger
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Delivery, Edition, EditionPick, Subscriber, Variant, VariantArticle
from newsletter.store.runtime import MAX_ID, Runtime
from newsletter.store.statuses import DeliveryStatus, EditionStatus, PickAction
from newsletter.subscribers.addresses import normalize_email
from newsletter.text import printable

# Articles offered for picking, newest first: a week of a busy site.
MAX_OFFERED = 300


@dataclass(frozen=True)
class VariantRow:
    """One stored digest: who gets it and how close it comes to Gmail's clipping."""

    id: int
    language: str
    categories: list[str]
    subject: str
    preheader: str
    size: int  # bytes of HTML, before each reader's links are filled in
    articles: int
    recipients: int

    @property
    def margin(self) -> int:
        """Bytes left before Gmail clips the message (negative: it is clipped)."""
        return CLIP_BYTES - self.size


@dataclass(frozen=True)
class Offered:
    """An article an editor may pin or exclude, and what they did to it."""

    id: int
    title: str
    url: str
    sections: list[str]
    published_at: datetime
    in_window: bool
    score: float
    action: PickAction | None
    rank: int | None  # its place among the pins, for pinned ones


@dataclass(frozen=True)
class NoteRow:
    """The editor's note for one language's readers: the edition's own (None: none), and what
    they get, rendered (the edition's, else the standing one, else the site language's)."""

    language: str
    own: str | None
    shown: Markup | None
    standing: bool  # what they get is the newsletter's standing note, not the edition's


@dataclass(frozen=True)
class Upcoming:
    edition: EditionInfo
    title: str
    approval: str
    waiting: str | None  # why it may not go now (held, not approved)
    held_by: str | None
    approved_by: str | None
    released: bool
    variants: list[VariantRow]
    counts: dict[DeliveryStatus, int]
    offered: list[Offered]
    overrides: dict[str, dict[str, str]]
    languages: list[str]  # the languages its readers get it in (or the site's, for a draft)
    note: str | None
    notes: list[NoteRow]  # per language the site offers
    # A draft's readers counted as preparing it now would count them (what `send --dry-run`
    # says); None once it is prepared, when the ledger holds them.
    planned: Prepared | None
    # Variants whose HTML shows an image (None for a draft: nothing is composed yet).
    pictured: int | None
    trending_images: bool  # the newsletter's setting: Trending items show their image

    @property
    def recipients(self) -> int:
        if self.planned is not None:
            return self.planned.recipients
        return sum(v.recipients for v in self.variants)


def upcoming(runtime: Runtime, newsletter: str, now: datetime) -> Upcoming:
    """The next edition of `newsletter` as the editors' page shows it."""
    settings = runtime.settings
    config = settings.newsletter(newsletter)
    with reading(runtime.factory) as session:
        edition = draft(
            session, settings, newsletter, next_slot(session, settings, newsletter, now, grace(settings))
        )
        variants = _variants(session, edition.id) if edition.id is not None else []
        languages = sorted({v.language for v in variants}) or sorted(
            {settings.site.language, *config.translations}
        )
        offer = load_offer(session, settings, edition)
        prepared = edition.id is not None and edition.status != EditionStatus.DRAFT
        return Upcoming(
            EditionInfo.of(edition),
            config.title,
            config.approval,
            edition.waiting(config.approval),
            edition.held_by,
            edition.approved_by,
            edition.released_at is not None,
            variants,
            ledger.counts(session, edition.id) if edition.id is not None else {},
            _offered(session, edition, offer),
            overrides(edition),
            languages,
            edition.note,
            _notes(settings, config, edition_notes(session, edition)),
            None if prepared else tally(session, settings, offer),
            _variants_with_images(session, edition.id) if prepared and edition.id is not None else None,
            config.trending_images,
        )


def _notes(settings: Settings, config: NewsletterSettings, own: dict[str, str]) -> list[NoteRow]:
    site, standing = settings.site.language, config.standing_notes(settings.site.language)
    rows = []
    for language in settings.languages():
        found = note_for(language, site, own, standing)
        from_standing = found is not None and found not in (own.get(language), own.get(site))
        rows.append(
            NoteRow(language, own.get(language), notes.to_html(found) if found else None, from_standing)
        )
    return rows


def _variants_with_images(session: Session, edition_id: int) -> int:
    """How many of the edition's variants show an image (the database looks, the HTML stays there)."""
    return (
        session.scalar(
            select(func.count()).where(Variant.edition_id == edition_id, Variant.html.contains("<img"))
        )
        or 0
    )


def _size(session: Session) -> ColumnElement[int]:
    """The byte length of a variant's HTML, counted by the database (the HTML is not loaded)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.octet_length(Variant.html)
    return func.length(cast(Variant.html, LargeBinary))


def _variants(session: Session, edition_id: int, only: int | None = None) -> list[VariantRow]:
    """The edition's stored variants (or the one `only`), most readers first."""
    recipients = select(Delivery.variant_id, func.count()).where(
        Delivery.edition_id == edition_id, Delivery.variant_id.is_not(None)
    )
    articles = (
        select(VariantArticle.variant_id, func.count())
        .join(Variant, Variant.id == VariantArticle.variant_id)
        .where(Variant.edition_id == edition_id)
    )
    rows = select(
        Variant.id, Variant.language, Variant.categories, Variant.subject, Variant.preheader, _size(session)
    ).where(Variant.edition_id == edition_id)
    if only is not None:
        recipients = recipients.where(Delivery.variant_id == only)
        articles = articles.where(VariantArticle.variant_id == only)
        rows = rows.where(Variant.id == only)
    counted = dict(session.execute(recipients.group_by(Delivery.variant_id)).all())
    carried = dict(session.execute(articles.group_by(VariantArticle.variant_id)).all())
    found = [
        VariantRow(
            id,
            language,
            [c for c in categories.split(",") if c],
            subject,
            preheader,
            int(size or 0),
            carried.get(id, 0),
            counted.get(id, 0),
        )
        for id, language, categories, subject, preheader, size in session.execute(rows)
    ]
    return sorted(found, key=lambda v: (-v.recipients, v.id))


def _offered(session: Session, edition: Edition, offer: Offer) -> list[Offered]:
    """The articles of the edition's window (and those picked from before it), newest first."""
    picked: dict[int, PickAction] = {}
    ranks: dict[int, int] = {}
    if edition.id is not None:
        picked = {
            p.article_id: PickAction(p.action)
            for p in session.scalars(select(EditionPick).where(EditionPick.edition_id == edition.id))
        }
        ranks = {pin.article_id: rank for rank, (pin, _article) in enumerate(pin_order(session, edition))}
    rules = offer.rules
    stories = [
        s
        for s in offer.stories.values()
        if rules.window_start <= s.published_at < rules.window_end or s.id in picked
    ]
    # Pins in their order, then exclusions: past the newest MAX_OFFERED, a pick stays in sight.
    stories.sort(
        key=lambda s: (s.id not in ranks, s.id not in picked, ranks.get(s.id, 0), -s.published_at.timestamp())
    )
    return [
        Offered(
            s.id,
            s.title,
            s.url,
            [offer.names.get(slug, slug) for slug in s.sections],
            s.published_at,
            rules.window_start <= s.published_at < rules.window_end,
            offer.scores[s.id].total if s.id in offer.scores else 0.0,
            picked.get(s.id),
            ranks.get(s.id),
        )
        for s in stories[:MAX_OFFERED]
    ]


@dataclass(frozen=True)
class Shown:
    """One variant as a reader of it gets it (links to nobody's account)."""

    variant: VariantRow
    html: str
    text: str


def variant(runtime: Runtime, newsletter: str, variant_id: int) -> Shown:
    """A stored variant of one of the newsletter's editions, filled in for a reader with dummy
    links (a click on them unsubscribes nobody)."""
    settings = runtime.settings
    with reading(runtime.factory) as session:
        row = session.get(Variant, variant_id)
        edition = session.get(Edition, row.edition_id) if row is not None else None
        if row is None or edition is None or edition.newsletter != newsletter:
            raise EditionError(f"no variant {variant_id} of the {newsletter} newsletter")
        listed = _variants(session, edition.id, variant_id)[0]
        composed = Composed(row.subject, row.preheader, row.html, row.text, Markers(row.marker))
        html, text = fill(composed, reader_for(settings, None, newsletter, row.language))
    return Shown(listed, html, text)


def _mails(session: Session, settings: Settings, newsletter: str, subscriber: int, now: datetime) -> bool:
    """Whether the next edition would mail this subscriber (active, taking it and not paused at
    its slot, not suppressed): the only readers an editor may look at as the edition sees them."""
    readers = audience(newsletter, {}, next_slot(session, settings, newsletter, now, grace(settings)))
    found = select(readers.c.subscriber_id).where(
        readers.c.subscriber_id == subscriber, readers.c.suppressed == 0
    )
    return session.scalar(found) is not None


def subscriber_id(runtime: Runtime, newsletter: str, email: str, now: datetime) -> int:
    """The reader with this address, however it is spelt, if the next edition would mail them
    (an unknown address and one it would not mail are refused alike)."""
    try:
        mailbox = normalize_email(email)
    except ValueError as exc:
        raise InputError("email", str(exc)) from None
    with reading(runtime.factory) as session:
        found = session.scalar(select(Subscriber.id).where(Subscriber.email == mailbox))
        if found is not None and not _mails(session, runtime.settings, newsletter, found, now):
            found = None
    if found is None:
        raise EditionError(f"no subscriber {mailbox!r} among the readers of this {newsletter} edition")
    return found


@dataclass(frozen=True)
class ReaderView:
    subscriber_id: int
    email: str
    preview: Preview

    @property
    def size(self) -> int:
        return len(self.preview.html.encode()) if self.preview.html else 0


def reader_view(runtime: Runtime, newsletter: str, subscriber: int, now: datetime) -> ReaderView:
    """Exactly what this subscriber gets from the next edition, with the reason each article
    was kept or dropped (the ledger's variant once the edition is prepared), its links to their
    account placeholders; only for a reader the edition would mail."""
    with reading(runtime.factory) as session:
        email = session.scalar(select(Subscriber.email).where(Subscriber.id == subscriber))
        if email is not None and not _mails(session, runtime.settings, newsletter, subscriber, now):
            email = None
    if email is None or "@" not in email:  # a forgotten reader keeps only a hash
        raise EditionError(f"no subscriber {subscriber} among the readers of this {newsletter} edition")
    return ReaderView(subscriber, email, preview(runtime, newsletter, now, email=email))


def test_to_editor(
    runtime: Runtime, newsletter: str, editor: str, variant_id: str, reader: str, now: datetime
) -> TestSent:
    """A test of the next edition to the editor's own address: as this subscriber gets it, or
    as the readers of this variant do (else as a reader of every section in the site's
    language); recorded in the audit log with the provider's verdict, refused when it did not go."""
    as_reader = None
    categories: list[str] | None = None
    language: str | None = None
    if reader.isascii() and reader.isdigit() and int(reader) <= MAX_ID:
        as_reader = reader_view(runtime, newsletter, int(reader), now).email
    elif variant_id.isascii() and variant_id.isdigit() and int(variant_id) <= MAX_ID:
        with reading(runtime.factory) as session:
            row = session.get(Variant, int(variant_id))
            if row is not None:
                categories = [c for c in row.categories.split(",") if c] or None
                language = row.language
    sent = test_send(runtime, newsletter, now, editor, as_reader, categories, language)
    with unit_of_work(runtime.factory) as session:
        audit.record(
            session,
            "test send",
            now,
            editor,
            f"{newsletter} {sent.edition.slot}",
            {
                "to": sent.to,
                "as": "a subscriber" if as_reader else language or "every section",
                "outcome": sent.outcome.status,
            },
        )
    if sent.outcome.status != OutcomeStatus.SENT:
        detail = printable(sent.outcome.detail or "no reason given")
        raise NewsletterError(f"the test to {sent.to} was not sent: {detail}")
    return sent
