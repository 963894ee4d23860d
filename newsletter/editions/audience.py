"""Who an edition goes to: the newsletter's active readers, grouped as the database can group them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Subquery, case, cast, func, select

from newsletter.store.models import Subscriber, SubscriberNewsletter, Suppression, subscriber_categories
from newsletter.store.statuses import SubscriberStatus, SubscriptionStatus


def audience(newsletter: str, section_bits: dict[int, int], slot: datetime) -> Subquery:
    """Per active subscriber of the newsletter (their subscription to it active, not paused at
    `slot`): language, chosen sections as a bit mask (`section_bits`: category id -> bit), and
    whether the address is suppressed. The database does this grouping, in one pass."""
    bits = case(section_bits, value=subscriber_categories.c.category_id, else_=0) if section_bits else 0
    return (
        select(
            Subscriber.id.label("subscriber_id"),
            Subscriber.language.label("language"),
            cast(func.coalesce(func.sum(bits), 0), BigInteger).label("mask"),
            case((func.count(Suppression.id) > 0, 1), else_=0).label("suppressed"),
        )
        .join(SubscriberNewsletter, SubscriberNewsletter.subscriber_id == Subscriber.id)
        .outerjoin(subscriber_categories, subscriber_categories.c.subscriber_id == Subscriber.id)
        .outerjoin(Suppression, Suppression.email == Subscriber.email)
        .where(
            Subscriber.status == SubscriberStatus.ACTIVE,
            SubscriberNewsletter.newsletter == newsletter,
            SubscriberNewsletter.status == SubscriptionStatus.ACTIVE,
            SubscriberNewsletter.paused_until.is_(None) | (SubscriberNewsletter.paused_until <= slot),
        )
        .group_by(Subscriber.id, Subscriber.language)
        .subquery("audience")
    )
