"""The suppression list: mailboxes never to be mailed again, and why."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.store.models import Delivery, Subscriber, Suppression, utcnow
from newsletter.store.statuses import SuppressionReason


def suppress_recipients(
    session: Session, refusals: Sequence[tuple[int, str]], reason: SuppressionReason
) -> int:
    """Suppress the mailboxes of these deliveries (delivery id, the words why), once each;
    how many were added."""
    words, now = dict(refusals), utcnow()
    rows = session.execute(
        select(Delivery.id, Subscriber.email)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.in_(list(words)))
    ).all()
    emails = [email for _id, email in rows]
    known = set(session.scalars(select(Suppression.email).where(Suppression.email.in_(emails))))
    added = 0
    for delivery_id, email in rows:
        if email not in known:
            session.add(Suppression(email=email, reason=reason, detail=words[delivery_id], created_at=now))
            known.add(email)
            added += 1
    session.flush()
    return added
