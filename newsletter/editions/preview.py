"""What a reader would get next: the editors' preview, through the very code that sends.

Nothing is written to the store: the upcoming edition is used as it stands (with the editors'
picks) or as it would be created.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.editions.compose import Composed, Composer
from newsletter.editions.edition import EditionError, EditionInfo, draft, upcoming_slot
from newsletter.editions.offer import load_offer
from newsletter.editions.personalize import Personalizable, Reader
from newsletter.editions.plan import Plan
from newsletter.editions.variants import Variants
from newsletter.errors import SettingsError
from newsletter.settings import Settings
from newsletter.store.categories import slugify
from newsletter.store.models import Delivery, Subscriber, VariantArticle
from newsletter.store.statuses import DELIVERED
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


def reader_for(settings: Settings, subscriber: Subscriber | None) -> Reader:
    """Real signed links for a real subscriber when the key is set; obvious dummies otherwise."""
    try:
        key = settings.signing_key() if subscriber is not None else None
    except SettingsError:
        key = None
    links = Links(str(settings.public_url), key)
    if subscriber is None or key is None:
        return Reader(None, links.unsubscribe(0), links.preferences(0))
    return Reader(subscriber.name, links.unsubscribe(subscriber.id), links.preferences(subscriber.id))


def preview(
    session: Session,
    settings: Settings,
    composer: Composer,
    newsletter: str,
    at: datetime,
    categories: list[str] | None = None,
    language: str | None = None,
    email: str | None = None,
) -> Preview:
    edition = draft(session, settings, newsletter, upcoming_slot(settings, newsletter, at))
    subscriber = None
    received: frozenset[int] = frozenset()
    if email:
        subscriber = session.scalars(
            select(Subscriber).where(Subscriber.email == normalize_email(email))
        ).one_or_none()
        if subscriber is None:
            raise EditionError(f"no subscriber {email!r}")
        received = frozenset(
            session.scalars(
                select(VariantArticle.article_id)
                .join(Delivery, Delivery.variant_id == VariantArticle.variant_id)
                .where(Delivery.subscriber_id == subscriber.id, Delivery.status.in_(DELIVERED))
            )
        )
    sections = [slugify(c) for c in categories or []]
    if subscriber is not None and not sections:
        sections = [c.slug for c in subscriber.categories]
    language = language or (subscriber.language if subscriber else settings.site.language)
    offer = load_offer(session, settings, edition)
    typed = dict(zip(sections, categories or [], strict=False))
    unknown = [s for s in sections if s not in offer.names]
    if unknown:
        shown = typed.get(unknown[0], unknown[0])
        raise EditionError(f"unknown category {shown!r} (known: {', '.join(offer.section_order)})")
    variants = Variants(settings, offer, composer)
    plan = variants.plan(sections, received)
    titles = {i: offer.stories[i].title for i in offer.stories}
    if plan.empty:
        return Preview(
            EditionInfo.of(edition), plan, offer.reader_sections(sections), language, titles, None, None, None
        )
    composed = variants.build(plan, language).composed
    values = reader_for(settings, subscriber).values()
    return Preview(
        EditionInfo.of(edition),
        plan,
        offer.reader_sections(sections),
        language,
        titles,
        composed,
        Personalizable(composed.html, True, composed.markers).fill(values),
        Personalizable(composed.text, False, composed.markers).fill(values),
    )
