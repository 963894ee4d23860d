"""Subscribers as the operator handles them: CSV import and export, one reader added, removed,
shown or forgotten, the list, how many stand where, and who waits past their confirmation link."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from newsletter.editions.waves import follow
from newsletter.errors import InputError, NewsletterError
from newsletter.settings import language_code
from newsletter.store.categories import categories_for
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import (
    Bounce,
    Consent,
    Delivery,
    ProviderEvent,
    Subscriber,
    SubscriberNewsletter,
    Suppression,
)
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import (
    ENDED,
    DeliveryStatus,
    SubscriberStatus,
    SubscriptionStatus,
    SuppressionReason,
)
from newsletter.subscribers.addresses import address_hash, normalize_email
from newsletter.subscribers.bulk import ImportReport, default_newsletters, export_csv, import_chunks
from newsletter.subscribers.tokens import LIFETIME_DAYS
from newsletter.subscribers.zones import reader_zone

# What a confirmation link lives (tokens.py): a reader pending longer has no live link.
LINK_LIFETIME = timedelta(days=LIFETIME_DAYS["confirm"] or 0)


def undefined_newsletters(runtime: Runtime) -> dict[str, int]:
    """Active readers per newsletter they take that the settings do not define (a table renamed
    or misspelt): nobody would ever send it to them."""
    with reading(runtime.factory) as session:
        rows = session.execute(
            select(SubscriberNewsletter.newsletter, func.count())
            .join(Subscriber, Subscriber.id == SubscriberNewsletter.subscriber_id)
            .where(
                Subscriber.status == SubscriberStatus.ACTIVE,
                SubscriberNewsletter.status == SubscriptionStatus.ACTIVE,
                SubscriberNewsletter.newsletter.not_in(list(runtime.settings.newsletters)),
            )
            .group_by(SubscriberNewsletter.newsletter)
            .order_by(SubscriberNewsletter.newsletter)
        ).all()
    return {name: count for name, count in rows}


def import_file(
    runtime: Runtime,
    source: Path | BinaryIO,
    *,
    confirmed: bool = False,
    newsletters: list[str] | None = None,
) -> ImportReport:
    """Add or update subscribers from a CSV file or a byte stream (standard input: `-` on the
    command line); bad rows are reported and kept aside, never lost.

    `confirmed`: the readers opted in elsewhere, so rows may make them active. `newsletters`:
    what a new reader whose row names none takes (default: every newsletter the site sends).
    A transaction per chunk of rows: a store failure keeps the chunks before it and raises
    `ImportStopped` (the same file imported again finishes the rest)."""
    name = str(source) if isinstance(source, Path) else "standard input"
    if isinstance(source, Path) and not source.is_file():
        raise NewsletterError(f"no such file: {source}")
    try:
        report = import_chunks(
            lambda: unit_of_work(runtime.factory),
            runtime.settings,
            source,
            confirmed=confirmed,
            newsletters=newsletters,
        )
    except ValueError as exc:
        raise NewsletterError(f"cannot import {name}: {exc}") from None
    if report.moved:  # readers waiting for a local-time wave go at their new hour (an import has
        # no clock of its own: one passed already goes at the next wake, or is missed)
        with unit_of_work(runtime.factory) as session:
            for subscriber_id in report.moved:
                follow(session, runtime.settings, subscriber_id)
    return report


def export_file(runtime: Runtime, path: Path) -> int:
    """Every subscriber to a CSV in the import format; how many."""
    with reading(runtime.factory) as session:
        return export_csv(session, path)


def counts(runtime: Runtime) -> dict[SubscriberStatus, int]:
    """Subscribers per status."""
    with reading(runtime.factory) as session:
        rows = session.execute(
            select(Subscriber.status, func.count()).group_by(Subscriber.status).order_by(Subscriber.status)
        )
        return {status: count for status, count in rows}


# What mails a pending reader a link: a new one once theirs has expired, never two that work.
RESEND = (
    "`newsletter subscribers import FILE --send-confirmation` mails each pending reader in FILE "
    f"a confirmation link, a new one to those whose link is over {LINK_LIFETIME.days} days old"
)


@dataclass(frozen=True)
class Unconfirmed:
    """Readers pending longer than a confirmation link lives: `never_sent` of them were never
    mailed one (an import's readers nobody asked); `oldest` is when the longest-waiting joined."""

    count: int
    never_sent: int
    oldest: datetime | None

    def advice(self) -> str:
        """For `status`: what sends them a link that works."""
        return f"{RESEND}; `--confirmed` makes them active if they opted in elsewhere"

    def problems(self) -> list[str]:
        """For `status --check`: only readers nobody mailed call for the operator (a sign-up
        never confirmed is the double opt-in doing its work)."""
        if not self.never_sent:
            return []
        who = "1 pending reader has" if self.never_sent == 1 else f"{self.never_sent} pending readers have"
        return [
            f"{who} waited over {LINK_LIFETIME.days} days and never been sent a confirmation link: "
            f"they get nothing until they confirm ({self.advice()})"
        ]


def unconfirmed(runtime: Runtime, now: datetime) -> Unconfirmed:
    """Readers still pending with no live confirmation link: theirs expired, or none was sent."""
    since = func.coalesce(Subscriber.confirm_sent_at, Subscriber.created_at)
    query = select(
        func.count(),
        func.count().filter(Subscriber.confirm_sent_at.is_(None)),
        func.min(Subscriber.created_at),
    ).where(Subscriber.status == SubscriberStatus.PENDING, since < now - LINK_LIFETIME)
    with reading(runtime.factory) as session:
        count, never_sent, oldest = session.execute(query).one()
    return Unconfirmed(count or 0, never_sent or 0, oldest)


@dataclass(frozen=True)
class ReaderRow:
    """One reader in a listing."""

    email: str
    name: str | None
    status: SubscriberStatus
    language: str
    timezone: str | None  # None: the site's
    newsletters: list[str]  # active ones
    left: list[str]  # newsletters this reader left
    categories: list[str]
    created_at: datetime


@dataclass(frozen=True)
class ReaderRecord:
    """Everything stored about one reader (`subscribers show`)."""

    row: ReaderRow
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    subscriptions: list[dict[str, object]]
    consents: list[dict[str, object]]
    deliveries: dict[DeliveryStatus, int]
    suppression: str | None


def _row(subscriber: Subscriber) -> ReaderRow:
    active = [n.newsletter for n in subscriber.newsletters if n.status == SubscriptionStatus.ACTIVE]
    left = [n.newsletter for n in subscriber.newsletters if n.status != SubscriptionStatus.ACTIVE]
    return ReaderRow(
        subscriber.email,
        subscriber.name,
        SubscriberStatus(subscriber.status),
        subscriber.language,
        subscriber.timezone,
        sorted(active),
        sorted(left),
        [c.slug for c in subscriber.categories],
        subscriber.created_at,
    )


def _one(session: Session, email: str) -> Subscriber:
    mailbox = normalize_email(email)
    subscriber = session.scalars(select(Subscriber).where(Subscriber.email == mailbox)).one_or_none()
    if subscriber is None:
        raise NewsletterError(f"no subscriber {mailbox}")
    return subscriber


def add(
    runtime: Runtime,
    email: str,
    now: datetime,
    name: str | None = None,
    newsletters: list[str] | None = None,
    categories: list[str] | None = None,
    language: str | None = None,
    timezone: str | None = None,
) -> ReaderRow:
    """Add a reader the operator vouches for (they opted in elsewhere): active at once, the
    consent recorded as given on the command line. A suppressed address is refused. With no
    `newsletters`, a new reader takes the default (`default_newsletters`), a known one keeps theirs;
    with no `timezone` likewise (the site's for a new one; "" sets the site's)."""
    settings = runtime.settings
    mailbox = normalize_email(email)
    unknown = [n for n in newsletters or [] if n not in settings.newsletters]
    if unknown:
        raise InputError(
            "--newsletters",
            f"no newsletter {unknown[0]!r} (configured: {', '.join(sorted(settings.newsletters))})",
        )
    try:
        zone = None if timezone is None else reader_zone(timezone)
    except ValueError as exc:
        raise InputError("--timezone", str(exc)) from None
    with unit_of_work(runtime.factory) as session:
        if session.scalars(
            select(Suppression).where(
                Suppression.email.in_([mailbox, address_hash(mailbox, runtime.settings.signing_key())])
            )
        ).first():
            raise NewsletterError(f"{mailbox} is on the suppression list: it is never mailed again")
        subscriber = session.scalars(select(Subscriber).where(Subscriber.email == mailbox)).one_or_none()
        if subscriber is not None and subscriber.status in ENDED:
            raise NewsletterError(f"{mailbox} left or bounced: only the reader can come back (a sign-up)")
        if subscriber is None:
            subscriber = Subscriber(email=mailbox, created_at=now)
            wanted = newsletters or default_newsletters(settings)
        else:  # none named: a known reader keeps theirs
            taken = [n.newsletter for n in subscriber.newsletters if n.status == SubscriptionStatus.ACTIVE]
            wanted = newsletters or taken
        session.add(subscriber)
        subscriber.name = name or subscriber.name
        subscriber.language = language_code(language or subscriber.language or settings.site.language)
        if timezone is not None and zone != subscriber.timezone:
            subscriber.timezone = zone
            if subscriber.id is not None:
                session.flush()
                follow(session, settings, subscriber.id, now)
        subscriber.status, subscriber.confirmed_at = SubscriberStatus.ACTIVE, subscriber.confirmed_at or now
        subscriber.categories = categories_for(session, settings, categories or [])
        have = {n.newsletter: n for n in subscriber.newsletters}
        for newsletter in wanted:
            if newsletter not in have:
                subscriber.newsletters.append(
                    SubscriberNewsletter(newsletter=newsletter, subscribed_at=now, source="cli")
                )
        session.flush()
        session.add(
            Consent(
                subscriber_id=subscriber.id,
                at=now,
                action="subscribe",
                source="cli",
                detail=json.dumps({"newsletters": wanted}),
            )
        )
        return _row(subscriber)


def remove(runtime: Runtime, email: str, now: datetime, newsletter: str | None = None) -> ReaderRow:
    """Unsubscribe a reader from one newsletter, or from all (then the address is suppressed, so
    no later import brings it back); recorded as done on the command line."""
    with unit_of_work(runtime.factory) as session:
        subscriber = _one(session, email)
        for subscription in subscriber.newsletters:
            if (
                newsletter in (None, subscription.newsletter)
                and subscription.status == SubscriptionStatus.ACTIVE
            ):
                subscription.status = SubscriptionStatus.UNSUBSCRIBED
                subscription.unsubscribed_at, subscription.source = now, "cli"
        if newsletter is None:
            subscriber.status, subscriber.unsubscribed_at = SubscriberStatus.UNSUBSCRIBED, now
            if not session.scalars(select(Suppression).where(Suppression.email == subscriber.email)).first():
                session.add(
                    Suppression(
                        email=subscriber.email,
                        reason=SuppressionReason.UNSUBSCRIBE,
                        detail="cli",
                        created_at=now,
                    )
                )
        session.add(
            Consent(
                subscriber_id=subscriber.id,
                at=now,
                action="unsubscribe",
                source="cli",
                detail=json.dumps({"newsletter": newsletter or "all"}),
            )
        )
        return _row(subscriber)


def readers(
    runtime: Runtime, status: SubscriberStatus | None = None, limit: int | None = None
) -> list[ReaderRow]:
    """Readers by address, of one status or all."""
    query = (
        select(Subscriber)
        .where(~Subscriber.email.startswith("sha256:"))
        .order_by(Subscriber.email)
        .limit(limit)
    )
    if status is not None:
        query = query.where(Subscriber.status == status)
    with reading(runtime.factory) as session:
        return [_row(subscriber) for subscriber in session.scalars(query)]


def show(runtime: Runtime, email: str) -> ReaderRecord:
    """Everything stored about one reader: what a data subject access request asks for."""
    with reading(runtime.factory) as session:
        subscriber = _one(session, email)
        consents = session.scalars(
            select(Consent).where(Consent.subscriber_id == subscriber.id).order_by(Consent.at, Consent.id)
        )
        deliveries = session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.subscriber_id == subscriber.id)
            .group_by(Delivery.status)
        ).all()
        suppression = session.scalars(
            select(Suppression).where(Suppression.email == subscriber.email)
        ).first()
        return ReaderRecord(
            _row(subscriber),
            subscriber.confirmed_at,
            subscriber.unsubscribed_at,
            [
                {
                    "newsletter": n.newsletter,
                    "status": str(n.status),
                    "subscribed_at": n.subscribed_at,
                    "unsubscribed_at": n.unsubscribed_at,
                    "source": n.source,
                    "paused_until": n.paused_until,
                }
                for n in subscriber.newsletters
            ],
            [
                {"at": c.at, "action": c.action, "source": c.source, "wording": c.wording, "detail": c.detail}
                for c in consents
            ],
            {DeliveryStatus(status): n for status, n in deliveries},
            f"{suppression.reason}: {suppression.detail or ''}".strip(": ") if suppression else None,
        )


def forget(runtime: Runtime, email: str, now: datetime) -> None:
    """Erase a reader's personal data (the right to be forgotten): name, address, choices and
    consent records go; the ledger keeps its rows (an edition's counts stay true) against an
    anonymous reader; the suppression list keeps only a hash of the address, so it is never
    mailed or imported again."""
    with unit_of_work(runtime.factory) as session:
        subscriber = _one(session, email)
        mailbox = subscriber.email
        hashed = address_hash(subscriber.email, runtime.settings.signing_key())
        session.execute(delete(Suppression).where(Suppression.email == subscriber.email))
        if not session.scalars(select(Suppression).where(Suppression.email == hashed)).first():
            session.add(Suppression(email=hashed, reason=SuppressionReason.FORGOTTEN, created_at=now))
        session.execute(delete(Consent).where(Consent.subscriber_id == subscriber.id))
        _scrub_deliveries(session, subscriber)
        subscriber.email = f"{hashed}:{subscriber.id}"  # unique, and unreadable
        subscriber.name = None
        subscriber.status, subscriber.unsubscribed_at = SubscriberStatus.UNSUBSCRIBED, now
        subscriber.categories = []
        subscriber.newsletters = []
    _erase_outbox(runtime.settings.outbox_dir, mailbox)


def _erase_outbox(folder: Path, mailbox: str) -> None:
    """The outbox's copies of the reader's messages (their names and contents hold the address)."""
    if not folder.is_dir():
        return
    for path in folder.rglob("*.eml"):
        if mailbox in path.name.lower():
            path.unlink(missing_ok=True)


def _scrub_deliveries(session: Session, subscriber: Subscriber) -> None:
    """A provider's words about a delivery may quote the address or the name (`550 5.1.1
    <x@y>: no such user`): those are replaced, the rest of the words kept for the record."""
    needles = [re.escape(text) for text in (subscriber.email, subscriber.name) if text]
    pattern = re.compile("|".join(needles), re.IGNORECASE)
    worded = select(Delivery).where(Delivery.subscriber_id == subscriber.id, Delivery.detail.is_not(None))
    for delivery in session.scalars(worded):
        delivery.detail = pattern.sub("[forgotten]", delivery.detail or "")
    for event in session.scalars(select(ProviderEvent).where(ProviderEvent.subscriber_id == subscriber.id)):
        event.detail = pattern.sub("[forgotten]", event.detail or "")
    for bounce in session.scalars(select(Bounce).where(Bounce.subscriber_id == subscriber.id)):
        bounce.detail = pattern.sub("[forgotten]", bounce.detail or "")  # a DSN's words quote it too
