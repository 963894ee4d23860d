"""Preparing an edition: its variants composed once each, and a delivery for every reader.

Preparing freezes the recipient list (people who join later wait for the next edition),
composes each distinct digest once, and opens the ledger: who gets which variant, who is
skipped (nothing new) and who is suppressed. It runs in one transaction: all or nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from newsletter.editions.audience import audience
from newsletter.editions.compose import Composed, Composer
from newsletter.editions.edition import EditionError, previous_end
from newsletter.editions.offer import Offer, load_offer
from newsletter.editions.plan import Plan, Rules
from newsletter.editions.slots import slot_time, wall_clock
from newsletter.editions.variants import Built, Variants
from newsletter.editions.waves import moments
from newsletter.settings import Settings
from newsletter.store import ledger, waves
from newsletter.store.ledger import Assignment
from newsletter.store.models import Article, Category, Delivery, Edition, Feed, Variant, VariantArticle
from newsletter.store.statuses import DeliveryStatus, EditionStatus
from newsletter.text import display_url, printable

SUPPRESSED = Assignment(DeliveryStatus.SUPPRESSED, detail="address is on the suppression list")
NOTHING_NEW = Assignment(DeliveryStatus.SKIPPED, detail="nothing new for this reader's categories")


class EmptyEdition(EditionError):
    """No article of the edition's window is in the store: preparing would spend it on nothing."""


class NoNews(EditionError):
    """No feed was read since the edition's window opened: the store may be missing its news."""


def check_news(session: Session, settings: Settings, edition: Edition) -> list[str]:
    """Refuse to prepare from a store no configured feed has filled since the window opened;
    a warning for each feed not read since then (one dead feed among several blocks nothing)."""
    urls = [feed.url for feed in settings.feeds]
    feeds = session.scalars(select(Feed).where(Feed.url.in_(urls))).all() if urls else []
    read = [f for f in feeds if f.last_ok_at is not None]
    if not read:
        raise NoNews("no feed has been read yet: run `newsletter fetch` first (or send with --force)")
    opened = edition.window_start
    fresh = [f for f in read if f.last_ok_at is not None and f.last_ok_at >= opened]
    if not fresh:
        when = wall_clock(opened, settings.zone)
        raise NoNews(
            f"no feed was read since the edition's window opened ({when}): "
            "run `newsletter fetch` (or send with --force)"
        )
    return [
        f"feed {display_url(f.url)} not read since the window opened: {printable(f.last_error or 'no error')}"
        for f in feeds
        if f not in fresh
    ]


def _empty(
    session: Session, edition: Edition, rules: Rules, slot: datetime, rehearsing: datetime | None
) -> str:
    """Why the edition has nothing to hold, and what helps: a fetch when nothing is stored, news
    of its window (or an editor's pin) when what is stored is older. Told to a dry run at
    `rehearsing` as what would happen, with `send --now` among the helps where closing the window
    now would move it back: a newsletter's first edition, its slot ahead, looks back from then."""
    stored, newest = session.execute(select(func.count(), func.max(Article.published_at))).one()
    window = f"{rules.local(rules.window_start)} to {rules.local(rules.window_end)}"
    name = f"the {edition.newsletter} edition of {rules.local(slot)}"
    was = "it was not prepared" if rehearsing is None else "it would not be prepared"
    now = ""
    if (
        rehearsing is not None
        and rehearsing < edition.window_end
        and previous_end(session, edition.newsletter, edition.window_end) is None
    ):
        now = (
            "; `send --now` would close its window now: the newsletter's first edition then covers "
            f"the days before {rules.local(rehearsing)}"
        )
    if not stored:
        return (
            f"nothing was stored yet for {name} (window {window}): {was}, so it can go "
            f"out once there is news; run `newsletter fetch`{now}"
        )
    return (
        f"{stored} article{'' if stored == 1 else 's'} stored, the newest published {rules.local(newest)}, "
        f"none in the window of "
        f"{name} ({window}): {was}, so it can go out once a fetch stores news of its "
        f"window, or an editor pins an article (`newsletter edition pin`){now}"
    )


def reopen(session: Session, edition: Edition) -> bool:
    """A prepared edition no sender has begun goes back to a draft, its variants and deliveries
    dropped, so an editor's change can be prepared again; False when it was a draft already.
    The edition's row is locked first, so a sender starting meanwhile waits, then sees it."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        session.refresh(edition, with_for_update=True)
    if edition.status == EditionStatus.DRAFT:
        return False
    if edition.status != EditionStatus.READY:
        raise EditionError(f"edition {edition.newsletter} {edition.slot} is {edition.status}: too late")
    variants = select(Variant.id).where(Variant.edition_id == edition.id).scalar_subquery()
    session.execute(delete(Delivery).where(Delivery.edition_id == edition.id))
    session.execute(delete(VariantArticle).where(VariantArticle.variant_id.in_(variants)))
    session.execute(delete(Variant).where(Variant.edition_id == edition.id))
    edition.status = EditionStatus.DRAFT
    edition.checks = edition.checked_at = None
    session.flush()
    return True


@dataclass
class Prepared:
    recipients: int = 0
    skipped: int = 0
    suppressed: int = 0
    variants: int = 0
    warnings: list[str] = field(default_factory=list)


def decide(
    variants: Variants, sections: list[str], suppressed: bool, got: frozenset[int]
) -> Assignment | Plan:
    """What one kind of reader gets: suppressed, skipped (nothing new), or their digest's plan."""
    if suppressed:
        return SUPPRESSED
    plan = variants.plan(sections, got)
    return NOTHING_NEW if plan.empty else plan


class _Readers:
    """The edition's readers as the database groups them (`audience`), and each group's sections."""

    def __init__(self, session: Session, settings: Settings, offer: Offer) -> None:
        edition = offer.edition
        self.slugs = offer.section_order
        ids = dict(
            session.execute(select(Category.slug, Category.id).where(Category.slug.in_(self.slugs))).all()
        )
        self.bit = {slug: 1 << index for index, slug in enumerate(self.slugs)}
        slot = slot_time(edition.slot, settings.zone)  # a review closes the window before it
        self.query = audience(edition.newsletter, {ids[slug]: self.bit[slug] for slug in self.slugs}, slot)

    def sections(self, mask: int) -> list[str]:
        return [slug for slug in self.slugs if mask & self.bit[slug]]

    def groups(self, session: Session) -> list[tuple[int, str, int, int]]:
        """(mask, language, suppressed, readers) of each group."""
        columns = (self.query.c.mask, self.query.c.language, self.query.c.suppressed)
        found = session.execute(select(*columns, func.count()).group_by(*columns))
        return [(mask, language, suppressed, n) for mask, language, suppressed, n in found]

    def with_history(
        self, session: Session, offer: Offer
    ) -> Iterator[tuple[list[int], dict[int, frozenset[int]]]]:
        """The readers who already got some of the offer's articles, a batch of ids at a time,
        with what each got: they are decided one by one."""
        history = ledger.received(session, list(offer.stories))
        ids = list(history)
        for start in range(0, len(ids), ledger.BATCH):
            yield ids[start : start + ledger.BATCH], history


class _Assigner:
    """Turns a kind of reader into an assignment, saving each variant the first time it is used."""

    def __init__(self, session: Session, edition: Edition, variants: Variants, summary: Prepared) -> None:
        self.session = session
        self.edition = edition
        self.variants = variants
        self.summary = summary
        self.saved: dict[str, int] = {}

    def __call__(
        self, sections: list[str], language: str, suppressed: bool, got: frozenset[int]
    ) -> Assignment:
        decided = decide(self.variants, sections, suppressed, got)
        if isinstance(decided, Assignment):
            return decided
        built = self.variants.build(decided, language)
        if built.key not in self.saved:
            self.saved[built.key] = _save_variant(self.session, self.edition, built)
            self.summary.warnings.extend(built.composed.warnings)
        return Assignment(DeliveryStatus.PENDING, self.saved[built.key])


def prepare(
    session: Session,
    settings: Settings,
    edition: Edition,
    composer: Composer,
    rehearsing: datetime | None = None,
) -> Prepared:
    """Create the edition's variants and deliveries, once: a prepared edition is left as is;
    `rehearsing`: the moment a dry run (rolled back) prepares it at, for what a refusal says.

    The database groups the readers by (sections, language, suppressed); each group's digest is
    planned and composed once, and its deliveries are written by one INSERT ... SELECT. Only
    readers who already got some of this edition's candidates are handled one by one.
    """
    summary = Prepared()
    if edition.status != EditionStatus.DRAFT:
        return summary
    offer = load_offer(session, settings, edition)
    rules = offer.rules
    slot = slot_time(edition.slot, settings.zone)
    if not rules.pinned and not any(
        rules.window_start <= c.published_at < rules.window_end for c in offer.candidates
    ):
        raise EmptyEdition(_empty(session, edition, rules, slot, rehearsing))
    assign = _Assigner(session, edition, Variants(settings, offer, composer), summary)
    readers = _Readers(session, settings, offer)
    ledger.open_deliveries(
        session,
        edition.id,
        readers.query,
        [
            (
                mask,
                language,
                suppressed,
                assign(readers.sections(mask), language, bool(suppressed), frozenset()),
            )
            for mask, language, suppressed, _n in readers.groups(session)
        ],
    )
    query = readers.query
    for chunk, history in readers.with_history(session, offer):
        rows = session.execute(
            select(Delivery.id, query.c.subscriber_id, query.c.mask, query.c.language, query.c.suppressed)
            .join(
                Delivery,
                (Delivery.subscriber_id == query.c.subscriber_id) & (Delivery.edition_id == edition.id),
            )
            .where(query.c.subscriber_id.in_(chunk))
        )
        ledger.reassign(
            session,
            [
                (
                    delivery_id,
                    assign(readers.sections(mask), language, bool(suppressed), history[subscriber_id]),
                )
                for delivery_id, subscriber_id, mask, language, suppressed in rows
            ],
        )
    # A group whose readers all had some of it already leaves its first digest to nobody: dropped,
    # so the count, the checks and the editors' page see only digests somebody gets.
    # One pass over the deliveries, not one per digest (no index leads with the variant).
    given = session.scalars(
        select(Delivery.variant_id)
        .where(Delivery.edition_id == edition.id, Delivery.variant_id.is_not(None))
        .distinct()
    )
    unused = set(session.scalars(select(Variant.id).where(Variant.edition_id == edition.id))) - set(given)
    if unused:
        session.execute(delete(VariantArticle).where(VariantArticle.variant_id.in_(unused)))
        session.execute(delete(Variant).where(Variant.id.in_(unused)))
    tally = ledger.counts(session, edition.id)
    summary.recipients = tally.get(DeliveryStatus.PENDING, 0)
    summary.skipped = tally.get(DeliveryStatus.SKIPPED, 0)
    summary.suppressed = tally.get(DeliveryStatus.SUPPRESSED, 0)
    summary.variants = session.scalar(select(func.count()).where(Variant.edition_id == edition.id)) or 0
    config = settings.newsletter(edition.newsletter)
    if config.local_time:  # each reader's wave, from their zone as it stands now
        zones = waves.edition_zones(session, edition.id)
        waves.time_deliveries(session, edition.id, moments(edition.slot, config.at, zones, settings.zone))
    edition.status = EditionStatus.READY
    return summary


def tally(session: Session, settings: Settings, offer: Offer) -> Prepared:
    """What preparing the offer's edition now would count (recipients, skipped, suppressed, and
    the digests readers would get), each reader decided as `prepare` decides, with nothing
    composed or written: what a draft's page shows, and what `send --dry-run` then finds."""
    variants = Variants(settings, offer, Composer(settings.templates_path()))
    readers = _Readers(session, settings, offer)
    counts: Counter[str] = Counter()
    digests: set[tuple[object, str]] = set()

    def count(mask: int, language: str, suppressed: int, got: frozenset[int], n: int) -> None:
        decided = decide(variants, readers.sections(mask), bool(suppressed), got)
        if isinstance(decided, Assignment):
            counts[decided.status] += n
        else:
            counts[DeliveryStatus.PENDING] += n
            digests.add((decided.key(), settings.reader_language(language)))  # as `build` will

    left = {(mask, language, suppressed): n for mask, language, suppressed, n in readers.groups(session)}
    query = readers.query
    for chunk, history in readers.with_history(session, offer):
        rows = session.execute(
            select(query.c.subscriber_id, query.c.mask, query.c.language, query.c.suppressed).where(
                query.c.subscriber_id.in_(chunk)
            )
        )
        for subscriber_id, mask, language, suppressed in rows:
            left[(mask, language, suppressed)] -= 1
            count(mask, language, suppressed, history[subscriber_id], 1)
    for (mask, language, suppressed), n in left.items():
        if n:
            count(mask, language, suppressed, frozenset(), n)
    return Prepared(
        counts[DeliveryStatus.PENDING],
        counts[DeliveryStatus.SKIPPED],
        counts[DeliveryStatus.SUPPRESSED],
        len(digests),
    )


def save_variant(
    session: Session, edition: Edition, key: str, language: str, categories: str, composed: Composed
) -> Variant:
    """A composed variant stored for the edition (flushed: its id is known); a digest's and an
    alert's alike."""
    variant = Variant(
        edition_id=edition.id,
        key=key,
        language=language,
        categories=categories,
        subject=composed.subject,
        preheader=composed.preheader,
        html=composed.html,
        text=composed.text,
        marker=composed.markers.nonce,
    )
    session.add(variant)
    session.flush()
    return variant


def _save_variant(session: Session, edition: Edition, built: Built) -> int:
    categories = ",".join(built.plan.chosen)
    variant = save_variant(session, edition, built.key, built.language, categories, built.composed)
    session.execute(
        insert(VariantArticle),
        [
            {"variant_id": variant.id, "article_id": article_id, "position": position}
            for position, article_id in enumerate(built.plan.article_ids)
        ],
    )
    return variant.id
