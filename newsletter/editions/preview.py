"""What a reader would get next: the editors' preview, through the very code that sends.

Nothing is written to the store. A draft edition is planned and composed as preparing it would;
once the edition is prepared, a subscriber's preview is the variant the ledger holds for them,
so what `preview --email R` shows is exactly what R is sent, but for the links to R's account
(placeholders: a preview opens nobody's settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.editions.compose import Composed, Composer, Markers
from newsletter.editions.edition import EditionError, EditionInfo, draft
from newsletter.editions.offer import load_offer
from newsletter.editions.personalize import Personalizable, Reader
from newsletter.editions.plan import Plan
from newsletter.editions.slots import slot_time
from newsletter.editions.variants import Variants
from newsletter.settings import Settings
from newsletter.store.categories import slugify
from newsletter.store.models import Delivery, Edition, Subscriber, Suppression, Variant, VariantArticle
from newsletter.store.statuses import DELIVERED, EditionStatus, SubscriberStatus, SubscriptionStatus
from newsletter.subscribers.addresses import normalize_email
from newsletter.subscribers.links import Links


@dataclass
class Preview:
    edition: EditionInfo
    plan: Plan
    sections: list[str]
    language: str
    titles: dict[int, str]
    composed: Composed | None
    html: str | None
    text: str | None
    # Why this reader gets nothing from the edition, when they don't.
    reason: str | None = None


def reader_for(settings: Settings, subscriber: Subscriber | None, newsletter: str, language: str) -> Reader:
    """The reader's greeting with placeholder links, as a test send has: a preview (an editor's
    view of a reader, `preview --email`) never carries a link that opens or changes an account."""
    links = Links(str(settings.public_url), None)
    name = subscriber.name if subscriber is not None else None
    return Reader(name, links.unsubscribe(0, newsletter), links.preferences(0), language)


def preview(
    session: Session,
    settings: Settings,
    composer: Composer,
    newsletter: str,
    slot: datetime,
    categories: list[str] | None = None,
    language: str | None = None,
    email: str | None = None,
) -> Preview:
    """The edition of `slot` as a reader of these categories and language, or as the subscriber
    with this address, gets it."""
    edition = draft(session, settings, newsletter, slot)
    subscriber = _subscriber(session, email) if email else None
    sections = [slugify(c) for c in categories or []]
    if subscriber is not None and not sections:
        sections = [c.slug for c in subscriber.categories]
    language = settings.reader_language(language or (subscriber.language if subscriber else None))
    offer = load_offer(session, settings, edition)
    typed = dict(zip(sections, categories or [], strict=False))
    unknown = [s for s in sections if s not in offer.names]
    if unknown:
        shown = typed.get(unknown[0], unknown[0])
        raise EditionError(f"unknown category {shown!r} (known: {', '.join(offer.section_order)})")
    variants = Variants(settings, offer, composer)
    received = _received(session, subscriber.id) if subscriber is not None else frozenset()
    plan = variants.plan(sections, received)
    result = Preview(
        EditionInfo.of(edition),
        plan,
        offer.reader_sections(sections),
        language,
        {i: s.title for i, s in offer.stories.items()},
        None,
        None,
        None,
    )
    if subscriber is not None:
        result.reason = _not_sent(session, settings, edition, subscriber)
        if result.reason is None and edition.status != EditionStatus.DRAFT:
            return _from_ledger(session, settings, result, edition, subscriber)
    if result.reason is not None:
        return result
    if plan.empty:
        result.reason = "nothing new for this reader: the edition would skip them"
        return result
    composed = variants.build(plan, language).composed
    return _filled(result, composed, reader_for(settings, subscriber, edition.newsletter, language))


def _subscriber(session: Session, email: str) -> Subscriber:
    subscriber = session.scalars(
        select(Subscriber).where(Subscriber.email == normalize_email(email))
    ).one_or_none()
    if subscriber is None:
        raise EditionError(f"no subscriber {email!r}")
    return subscriber


def _received(session: Session, subscriber_id: int) -> frozenset[int]:
    return frozenset(
        session.scalars(
            select(VariantArticle.article_id)
            .join(Delivery, Delivery.variant_id == VariantArticle.variant_id)
            .where(Delivery.subscriber_id == subscriber_id, Delivery.status.in_(DELIVERED))
        )
    )


def _not_sent(session: Session, settings: Settings, edition: Edition, subscriber: Subscriber) -> str | None:
    """Why this subscriber gets nothing from the edition, if so."""
    subscription = next((n for n in subscriber.newsletters if n.newsletter == edition.newsletter), None)
    if subscription is None:
        return f"this reader does not take the {edition.newsletter} newsletter"
    if subscription.status != SubscriptionStatus.ACTIVE:
        return f"this reader left the {edition.newsletter} newsletter"
    paused = subscription.paused_until
    if paused is not None and paused > slot_time(edition.slot, settings.zone):
        return f"this reader paused the {edition.newsletter} newsletter"
    if subscriber.status != SubscriberStatus.ACTIVE:
        return f"this reader is {subscriber.status}"
    if session.scalar(select(Suppression.reason).where(Suppression.email == subscriber.email)):
        return "this reader's address is on the suppression list"
    return None


def _from_ledger(
    session: Session, settings: Settings, result: Preview, edition: Edition, subscriber: Subscriber
) -> Preview:
    """A prepared edition: the variant the ledger holds for the subscriber, as it will go."""
    delivery = session.scalars(
        select(Delivery).where(Delivery.edition_id == edition.id, Delivery.subscriber_id == subscriber.id)
    ).one_or_none()
    if delivery is None:
        result.reason = "this reader joined after the edition was prepared: the next one is theirs"
        return result
    variant = session.get(Variant, delivery.variant_id) if delivery.variant_id is not None else None
    if variant is None:
        result.reason = f"{delivery.status}: {delivery.detail or 'no digest for this reader'}"
        return result
    composed = Composed(
        variant.subject, variant.preheader, variant.html, variant.text, Markers(variant.marker)
    )
    return _filled(result, composed, reader_for(settings, subscriber, edition.newsletter, variant.language))


def _filled(result: Preview, composed: Composed, reader: Reader) -> Preview:
    result.composed = composed
    result.html, result.text = fill(composed, reader)
    return result


def fill(composed: Composed, reader: Reader) -> tuple[str, str]:
    """A composed digest's HTML and text as this reader gets them."""
    values = reader.values()
    return (
        Personalizable(composed.html, True, composed.markers).fill(values),
        Personalizable(composed.text, False, composed.markers).fill(values),
    )
