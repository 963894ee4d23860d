"""The delivery ledger: one row per (edition, subscriber), made when an edition is prepared.

Preparing freezes the recipient list (people who join later wait for the next edition),
composes each distinct digest once, and records who gets which variant, who is skipped
(nothing new) and who is suppressed. It runs in one transaction: all or nothing.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from newsletter.compose import Composer
from newsletter.editions import load_offer
from newsletter.models import (
    Category,
    Delivery,
    Edition,
    Subscriber,
    SubscriberNewsletter,
    Suppression,
    Variant,
    VariantArticle,
    subscriber_categories,
    utcnow,
)
from newsletter.settings import Settings
from newsletter.variants import Built, Variants

log = logging.getLogger("newsletter.send")
BATCH = 2000
# A delivery in these states may have reached the reader: its articles count as received.
DELIVERED = ("sent", "sending")


@dataclass
class Prepared:
    recipients: int = 0
    skipped: int = 0
    suppressed: int = 0
    variants: int = 0
    warnings: list[str] | None = None


@dataclass(frozen=True)
class Recipient:
    id: int
    email: str
    language: str
    sections: list[str]
    suppressed: bool


def recipients(session: Session, newsletter: str) -> Iterator[Recipient]:
    """Active subscribers of a newsletter with their sections, streamed in id order."""
    query = (
        select(
            Subscriber.id,
            Subscriber.email,
            Subscriber.language,
            Category.slug,
            Suppression.id.is_not(None),
        )
        .join(SubscriberNewsletter, SubscriberNewsletter.subscriber_id == Subscriber.id)
        .outerjoin(subscriber_categories, subscriber_categories.c.subscriber_id == Subscriber.id)
        .outerjoin(Category, Category.id == subscriber_categories.c.category_id)
        .outerjoin(Suppression, Suppression.email == Subscriber.email)
        .where(Subscriber.status == "active", SubscriberNewsletter.newsletter == newsletter)
        .order_by(Subscriber.id)
        .execution_options(yield_per=BATCH)
    )
    rows = session.execute(query)
    for subscriber_id, group in itertools.groupby(rows, key=lambda row: row[0]):
        first, *rest = list(group)
        yield Recipient(
            id=subscriber_id,
            email=first[1],
            language=first[2],
            sections=[row[3] for row in (first, *rest) if row[3]],
            suppressed=bool(first[4]),
        )


def received(session: Session, article_ids: list[int]) -> Iterator[tuple[int, frozenset[int]]]:
    """(subscriber id, which of these articles they already got), streamed in id order."""
    if not article_ids:
        return
    query = (
        select(Delivery.subscriber_id, VariantArticle.article_id)
        .join(VariantArticle, VariantArticle.variant_id == Delivery.variant_id)
        .where(Delivery.status.in_(DELIVERED), VariantArticle.article_id.in_(article_ids))
        .order_by(Delivery.subscriber_id)
        .execution_options(yield_per=BATCH)
    )
    for subscriber_id, group in itertools.groupby(session.execute(query), key=lambda r: r[0]):
        yield subscriber_id, frozenset(row[1] for row in group)


def prepare(session: Session, settings: Settings, edition: Edition, composer: Composer) -> Prepared:
    """Create the edition's variants and deliveries (once: a prepared edition is left as is)."""
    if edition.status != "draft":
        return Prepared()
    offer = load_offer(session, settings, edition)
    variants = Variants(settings, offer, composer)
    saved: dict[str, int] = {}
    summary = Prepared(warnings=[])
    history = received(session, list(offer.stories))
    pending_history = next(history, None)
    batch: list[dict[str, object]] = []
    for reader in recipients(session, edition.newsletter):
        while pending_history is not None and pending_history[0] < reader.id:
            pending_history = next(history, None)
        got = (
            pending_history[1]
            if pending_history is not None and pending_history[0] == reader.id
            else frozenset()
        )
        row: dict[str, object] = {"edition_id": edition.id, "subscriber_id": reader.id}
        plan = variants.plan(reader.sections, got)
        if reader.suppressed:
            row.update(status="suppressed", detail="address is on the suppression list")
            summary.suppressed += 1
        elif plan.empty:
            row.update(status="skipped", detail="nothing new for this reader's categories")
            summary.skipped += 1
        else:
            built = variants.build(plan, reader.language)
            if built.key not in saved:
                saved[built.key] = _save_variant(session, edition, built)
                summary.warnings.extend(built.composed.warnings)
            row.update(status="pending", variant_id=saved[built.key])
            summary.recipients += 1
        batch.append(row)
        if len(batch) >= BATCH:
            session.execute(insert(Delivery), batch)
            batch.clear()
    if batch:
        session.execute(insert(Delivery), batch)
    edition.status = "ready"
    summary.variants = len(saved)
    log.info(
        "edition %s %s prepared: %d recipients in %d variants, %d skipped, %d suppressed",
        edition.newsletter,
        edition.slot,
        summary.recipients,
        summary.variants,
        summary.skipped,
        summary.suppressed,
    )
    return summary


def _save_variant(session: Session, edition: Edition, built: Built) -> int:
    composed = built.composed
    variant = Variant(
        edition_id=edition.id,
        key=built.key,
        language=built.language,
        categories=",".join(built.plan.chosen),
        subject=composed.subject,
        preheader=composed.preheader,
        html=composed.html,
        text=composed.text,
    )
    session.add(variant)
    session.flush()
    session.execute(
        insert(VariantArticle),
        [
            {"variant_id": variant.id, "article_id": article_id, "position": position}
            for position, article_id in enumerate(built.plan.article_ids)
        ],
    )
    return variant.id


def worker_name() -> str:
    """host:pid:start, so a restarted sender on the same host can tell a dead claim from a live one."""
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}"


def _claim_is_dead(claimed_by: str | None, me: str) -> bool:
    host, _, rest = (claimed_by or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or claimed_by == me:
        return False
    if int(pid) == os.getpid():  # our pid, another start: a previous life of this process id
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def recover(session: Session, edition_id: int, lease: timedelta, me: str) -> int:
    """Put back to pending the batches of senders that died (same host) or went silent
    (any host, past the lease); returns how many deliveries were put back."""
    stale = session.execute(
        select(Delivery.id, Delivery.claimed_by, Delivery.claimed_at).where(
            Delivery.edition_id == edition_id, Delivery.status == "sending"
        )
    ).all()
    cutoff = utcnow() - lease
    ids = [i for i, by, at in stale if _claim_is_dead(by, me) or (at is not None and at < cutoff)]
    for chunk in range(0, len(ids), BATCH):
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids[chunk : chunk + BATCH]), Delivery.status == "sending")
            .values(status="pending", claimed_by=None, claimed_at=None)
        )
    return len(ids)


def claim(
    session: Session,
    edition_id: int,
    worker: str,
    size: int,
    statuses: tuple[str, ...] = ("pending",),
) -> list[int]:
    """Take the next batch for this worker; on PostgreSQL other workers skip the locked rows."""
    query = (
        select(Delivery.id)
        .where(Delivery.edition_id == edition_id, Delivery.status.in_(statuses))
        # one variant at a time: a SendGrid request carries one content for all its readers
        .order_by(Delivery.variant_id, Delivery.id)
        .limit(size)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids))
            .values(
                status="sending",
                claimed_by=worker,
                claimed_at=utcnow(),
                attempts=Delivery.attempts + 1,
            )
        )
    return ids


def counts(session: Session, edition_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.edition_id == edition_id)
        .group_by(Delivery.status)
    ).all()
    return {status: count for status, count in rows}
