"""The delivery ledger: one row per (edition, subscriber), made when an edition is prepared.

Preparing freezes the recipient list (people who join later wait for the next edition),
composes each distinct digest once, and records who gets which variant, who is skipped
(nothing new) and who is suppressed. It runs in one transaction: all or nothing.
Sending claims batches of rows, marks them `sending`, then `sent` or `failed`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Subquery,
    Table,
    Text,
    bindparam,
    case,
    cast,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Session

from newsletter.editions.compose import Composer
from newsletter.editions.editions import load_offer
from newsletter.editions.variants import Built, Variants
from newsletter.settings import Settings
from newsletter.store.models import (
    DELIVERIES,
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
    warnings: list[str] = field(default_factory=list)


def audience(newsletter: str, section_bits: dict[int, int]) -> Subquery:
    """Per active subscriber of the newsletter: language, chosen sections as a bit mask, and
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
        .where(Subscriber.status == "active", SubscriberNewsletter.newsletter == newsletter)
        .group_by(Subscriber.id, Subscriber.language)
        .subquery("audience")
    )


def received(session: Session, article_ids: list[int]) -> dict[int, frozenset[int]]:
    """Which of these articles each subscriber already got (only those who got any)."""
    found: dict[int, set[int]] = {}
    for start in range(0, len(article_ids), BATCH):
        rows = session.execute(
            select(Delivery.subscriber_id, VariantArticle.article_id)
            .join(VariantArticle, VariantArticle.variant_id == Delivery.variant_id)
            .where(
                Delivery.status.in_(DELIVERED),
                VariantArticle.article_id.in_(article_ids[start : start + BATCH]),
            )
        )
        for subscriber_id, article_id in rows:
            found.setdefault(subscriber_id, set()).add(article_id)
    return {subscriber_id: frozenset(ids) for subscriber_id, ids in found.items()}


class _Assigner:
    """Turns a kind of reader into a delivery row's variant, status and detail."""

    def __init__(self, session: Session, edition: Edition, variants: Variants, summary: Prepared) -> None:
        self.session = session
        self.edition = edition
        self.variants = variants
        self.summary = summary
        self.saved: dict[str, int] = {}

    def __call__(self, sections: list[str], language: str, suppressed: bool, got: frozenset[int]) -> dict:
        if suppressed:
            return {
                "variant_id": None,
                "status": "suppressed",
                "detail": "address is on the suppression list",
            }
        plan = self.variants.plan(sections, got)
        if plan.empty:
            return {
                "variant_id": None,
                "status": "skipped",
                "detail": "nothing new for this reader's categories",
            }
        built = self.variants.build(plan, language)
        if built.key not in self.saved:
            self.saved[built.key] = _save_variant(self.session, self.edition, built)
            self.summary.warnings.extend(built.composed.warnings)
        return {"variant_id": self.saved[built.key], "status": "pending", "detail": None}


def prepare(session: Session, settings: Settings, edition: Edition, composer: Composer) -> Prepared:
    """Create the edition's variants and deliveries, once: a prepared edition is left as is.

    The database groups the readers by (sections, language, suppressed); each group's digest is
    planned and composed once, and its deliveries are written by one INSERT ... SELECT. Only
    readers who already got some of this edition's candidates are handled one by one.
    """
    summary = Prepared()
    if edition.status != "draft":
        return summary
    offer = load_offer(session, settings, edition)
    assign = _Assigner(session, edition, Variants(settings, offer, composer), summary)
    slugs = offer.section_order
    ids = dict(session.execute(select(Category.slug, Category.id).where(Category.slug.in_(slugs))).all())
    bit = {slug: 1 << index for index, slug in enumerate(slugs)}
    readers = audience(edition.newsletter, {ids[slug]: bit[slug] for slug in slugs})

    def sections(mask: int) -> list[str]:
        return [slug for slug in slugs if mask & bit[slug]]

    plan_map = Table(
        "prepare_map",
        MetaData(),
        Column("mask", BigInteger),
        Column("language", String(16)),
        Column("suppressed", Integer),
        Column("variant_id", Integer),
        Column("status", String(20)),
        Column("detail", Text),
        prefixes=["TEMPORARY"],
    )
    connection = session.connection()
    plan_map.create(connection)
    groups = session.execute(
        select(readers.c.mask, readers.c.language, readers.c.suppressed).group_by(
            readers.c.mask, readers.c.language, readers.c.suppressed
        )
    ).all()
    rows = [
        {
            "mask": mask,
            "language": language,
            "suppressed": suppressed,
            **assign(sections(mask), language, bool(suppressed), frozenset()),
        }
        for mask, language, suppressed in groups
    ]
    if rows:
        session.execute(insert(plan_map), rows)
    session.execute(
        insert(Delivery).from_select(
            ["edition_id", "subscriber_id", "variant_id", "status", "detail", "attempts"],
            select(
                literal(edition.id),
                readers.c.subscriber_id,
                plan_map.c.variant_id,
                plan_map.c.status,
                plan_map.c.detail,
                literal(0),
            ).join(
                plan_map,
                (plan_map.c.mask == readers.c.mask)
                & (plan_map.c.language == readers.c.language)
                & (plan_map.c.suppressed == readers.c.suppressed),
            ),
        )
    )
    plan_map.drop(connection)
    history = received(session, list(offer.stories))
    readers_with_history = list(history)
    for start in range(0, len(readers_with_history), BATCH):
        chunk = readers_with_history[start : start + BATCH]
        changes = [
            {
                "row_id": delivery_id,
                **assign(sections(mask), language, bool(suppressed), history[subscriber_id]),
            }
            for delivery_id, subscriber_id, mask, language, suppressed in session.execute(
                select(
                    Delivery.id,
                    readers.c.subscriber_id,
                    readers.c.mask,
                    readers.c.language,
                    readers.c.suppressed,
                )
                .join(
                    Delivery,
                    (Delivery.subscriber_id == readers.c.subscriber_id) & (Delivery.edition_id == edition.id),
                )
                .where(readers.c.subscriber_id.in_(chunk))
            )
        ]
        if changes:
            session.execute(update(DELIVERIES).where(DELIVERIES.c.id == bindparam("row_id")), changes)
    tally = counts(session, edition.id)
    summary.recipients = tally.get("pending", 0)
    summary.skipped = tally.get("skipped", 0)
    summary.suppressed = tally.get("suppressed", 0)
    summary.variants = len(assign.saved)
    edition.status = "ready"
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
    claimed_by = (claimed_by or "").partition("#")[0]
    host, _, rest = claimed_by.partition(":")
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


def claim(session: Session, edition_id: int, token: str, size: int) -> list[int]:
    """Take the next batch for this worker; on PostgreSQL other workers skip the locked rows.
    Ordered by variant: a SendGrid request carries one content for all its readers."""
    query = (
        select(Delivery.id)
        .where(Delivery.edition_id == edition_id, Delivery.status == "pending")
        .order_by(Delivery.variant_id, Delivery.id)
        .limit(size)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if ids:
        table = DELIVERIES
        session.execute(
            update(table)
            .where(table.c.id.in_(ids))
            .values(status="sending", claimed_by=token, claimed_at=utcnow(), attempts=table.c.attempts + 1)
        )
    return ids


def counts(session: Session, edition_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.edition_id == edition_id)
        .group_by(Delivery.status)
    ).all()
    return {status: count for status, count in rows}
