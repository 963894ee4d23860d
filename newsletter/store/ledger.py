"""The delivery ledger: one row per (edition, subscriber), and every change of a row's status.

    (none) -> pending | skipped | suppressed (open_deliveries, reassign: while preparing)
    pending -> sending (claim) -> sent | failed (record) | pending (release, record a retry)
    sending -> pending, not before a time (defer: the mailbox refused for now) | failed (defer,
               once the attempts are spent)
    sending -> pending (recover: the sender died or went silent past its lease; give_back: the
               store failed under it) | uncertain (the same, when it was handed over)
    sending -> suppressed (the reader left after the edition was prepared: hand, the gate
               before each message or request goes, or when its batch is built)
    failed -> pending (retry_failed)
    sending | uncertain | pending once handed -> sent, or failed for a drop (the provider's
               event: services.events at once; settle_told for a word kept but not acted on)

The row is unique per (edition, subscriber), so a delivery can never be made twice. Claims,
releases and recoveries change only rows in the status they expect (a claim's rows are also
locked: SQLite's write lock, PostgreSQL's FOR UPDATE SKIP LOCKED); a provider's answer is
written whatever the row says, since it is the truth about the message, unless the provider's
own event told otherwise first (`Delivery.provider_event`): its word wins over a sender's.
"""

from __future__ import annotations

import functools
import itertools
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Exists,
    Integer,
    MetaData,
    String,
    Subquery,
    Table,
    Text,
    bindparam,
    case,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningUpdate

from newsletter.store.db import among
from newsletter.store.models import (
    DELIVERIES,
    Delivery,
    Edition,
    Subscriber,
    SubscriberNewsletter,
    Suppression,
    VariantArticle,
    utcnow,
)
from newsletter.store.statuses import (
    DELIVERED,
    OPEN,
    DeliveryStatus,
    EditionStatus,
    SubscriberStatus,
    SubscriptionStatus,
)

BATCH = 2000
# KiB of SQLite's page cache while an edition's deliveries are written (see _roomy_cache).
PREPARE_CACHE_KB = 16384


@dataclass(frozen=True)
class Assignment:
    """What preparation decided for a reader: a variant to send, or why none."""

    status: DeliveryStatus
    variant_id: int | None = None
    detail: str | None = None

    def values(self) -> dict[str, Any]:
        return {"status": self.status, "variant_id": self.variant_id, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Mark:
    """A provider's word on one delivery: sent (with its message id), failed, or to retry."""

    delivery_id: int
    status: DeliveryStatus  # SENT, FAILED, or PENDING for a retry
    message_id: str | None = None
    detail: str | None = None


def open_deliveries(
    session: Session, edition_id: int, readers: Subquery, groups: list[tuple[int, str, int, Assignment]]
) -> None:
    """One delivery per reader in `readers` (columns subscriber_id, mask, language, suppressed),
    as its group's assignment says: one INSERT ... SELECT whatever the number of readers."""
    # Keyed by the group: each reader's row is found by its key (SQLite otherwise indexes all
    # the readers for the 200 groups, and writes the rows out of the readers' order).
    plan_map = Table(
        "prepare_map",
        MetaData(),
        Column("mask", BigInteger, primary_key=True),
        Column("language", String(16), primary_key=True),
        Column("suppressed", Integer, primary_key=True),
        Column("variant_id", Integer),
        Column("status", String(20)),
        Column("detail", Text),
        prefixes=["TEMPORARY"],
    )
    connection = session.connection()
    plan_map.create(connection)
    rows = [
        {"mask": mask, "language": language, "suppressed": suppressed, **assignment.values()}
        for mask, language, suppressed, assignment in groups
    ]
    if rows:
        session.execute(insert(plan_map), rows)
    with _roomy_cache(session):
        _insert_deliveries(session, edition_id, readers, plan_map)
    plan_map.drop(connection)


@contextmanager
def _roomy_cache(session: Session) -> Iterator[None]:
    """SQLite's page cache made room while an edition's rows, their index entries and their
    sort are written, then put back: at its default 2 MB a million readers took about 17 s to
    prepare, at 16 MB 10-12 s, for about 12 MB more at the sender's peak."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        yield
        return
    before = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    connection.exec_driver_sql(f"PRAGMA cache_size = -{PREPARE_CACHE_KB}")
    try:
        yield
    finally:
        connection.exec_driver_sql(f"PRAGMA cache_size = {int(before or -2000)}")


def _insert_deliveries(session: Session, edition_id: int, readers: Subquery, plan_map: Table) -> None:
    session.execute(
        insert(Delivery).from_select(
            ["edition_id", "subscriber_id", "variant_id", "status", "detail", "attempts"],
            select(
                literal(edition_id),
                readers.c.subscriber_id,
                plan_map.c.variant_id,
                plan_map.c.status,
                plan_map.c.detail,
                literal(0),
            )
            .join(
                plan_map,
                (plan_map.c.mask == readers.c.mask)
                & (plan_map.c.language == readers.c.language)
                & (plan_map.c.suppressed == readers.c.suppressed),
            )
            # Each digest's readers in a row: a sender claims them in this order, so a batch's
            # rows share a few pages, not one each (a million readers in 200 digests: a page
            # read and written per reader, for each of claim, hand-over and record).
            .order_by(plan_map.c.variant_id, readers.c.subscriber_id),
        )
    )


# What a send's statements read besides the deliveries: the gate checks each reader in these.
_SEND_READS = ("deliveries", "subscribers", "subscriber_newsletters", "suppressions")


def analyze(session: Session) -> None:
    """Fresh planner statistics (PostgreSQL) for the tables a send reads, once an edition's
    deliveries are added: planned on statistics from when they were small (a list just imported,
    a first edition), the gate scanned every reader for each request of 1,000 (0.5 s among
    50,000, where an index finds them in 20 ms), and each added sender made the send slower.
    Waits at most a few seconds for a vacuum of these tables to let go."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(text("SET LOCAL lock_timeout = '5s'"))
    session.execute(text(f"ANALYZE {', '.join(_SEND_READS)}"))


def reassign(session: Session, changes: Sequence[tuple[int, Assignment]]) -> None:
    """Change the assignment of deliveries just opened, before any sender can see them
    (readers with a history); part of the preparing transaction."""
    if changes:
        session.execute(
            update(DELIVERIES).where(DELIVERIES.c.id == bindparam("row_id")),
            [{"row_id": delivery_id, **assignment.values()} for delivery_id, assignment in changes],
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


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def claim(
    session: Session, edition_id: int, token: str, size: int, due_by: datetime | None = None
) -> list[int]:
    """Take the next batch for this worker; on PostgreSQL other workers skip the locked rows.
    Ordered by variant: a SendGrid request carries one content for all its readers. A
    local-time edition's deliveries whose wave comes after `due_by` (default: now) wait."""
    now = utcnow()
    query = (
        select(Delivery.id)
        .where(
            Delivery.edition_id == edition_id,
            Delivery.status == DeliveryStatus.PENDING,
            (Delivery.retry_at.is_(None)) | (Delivery.retry_at <= now),
            (Delivery.due_at.is_(None)) | (Delivery.due_at <= (due_by or now)),
        )
        .order_by(Delivery.variant_id, Delivery.id)
        .limit(size)
    )
    postgresql = _postgresql(session)
    if postgresql:
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if ids:
        session.execute(
            update(DELIVERIES)
            .where(among(DELIVERIES.c.id, postgresql, ids), DELIVERIES.c.status == DeliveryStatus.PENDING)
            .values(
                status=DeliveryStatus.SENDING,
                claimed_by=token,
                claimed_at=now,
                handed_at=None,
                attempts=DELIVERIES.c.attempts + 1,
            )
        )
    return ids


# Why a claimed delivery was not handed over: its reader left after the edition was prepared.
LEFT_NEWSLETTER = "not sent: the reader left this newsletter during the send"
LEFT_SUPPRESSED = "not sent: the address was suppressed during the send"
LEFT_STATUS = "not sent: the reader unsubscribed, bounced or complained during the send"
LEFT_PAUSED = "not sent: the reader paused this newsletter during the send"
LEFT_IN_FLIGHT = "sent: the reader left during the send, after this message was handed over"


def hand(session: Session, ids: Sequence[int], token: str, newsletter: str) -> tuple[set[int], set[int]]:
    """The gate before the provider: note that these deliveries of this claim are about to go,
    only for readers still subscribed to `newsletter` (active, not suppressed). From then on a
    sender dying leaves them uncertain, not pending. The others' readers left: suppressed with
    why, never handed over. Returns (handed over, suppressed); any other is no longer this
    claim's (taken over).

    One statement checks and marks: on PostgreSQL (READ COMMITTED) it sees every leave
    committed before it began, on SQLite the write lock taken first does the same. Its commit
    waits for the disk: a hand-over must survive a crash of the database too."""
    if not ids:
        return set(), set()
    postgresql = _postgresql(session)
    if postgresql:
        session.execute(text("SET LOCAL synchronous_commit = on"))  # `record` may have set it off
    handing, suppressing = _gate(newsletter, postgresql)
    handed: set[int] = set()
    suppressed: set[int] = set()
    for start in range(0, len(ids), BATCH):
        chunk = list(ids[start : start + BATCH])
        handed.update(session.scalars(handing, {"ids": chunk, "token": token, "now": utcnow()}))
        left = [i for i in chunk if i not in handed]
        if left:  # held by this claim, not handed: the reader left (the words say how)
            suppressed.update(session.scalars(suppressing, {"ids": left, "token": token, "now": utcnow()}))
    return handed, suppressed


@lru_cache(maxsize=64)
def _gate(
    newsletter: str, postgresql: bool
) -> tuple[ReturningUpdate[tuple[int]], ReturningUpdate[tuple[int]]]:
    """The gate's two statements for a newsletter, built once (a sender runs them per message):
    hand over the claimed deliveries whose readers stay; suppress, with why, those who left or
    paused the newsletter since the edition was prepared."""
    active, subscribed, suppressed = _standing(newsletter)
    paused = (
        select(SubscriberNewsletter.subscriber_id)
        .where(
            SubscriberNewsletter.subscriber_id == DELIVERIES.c.subscriber_id,
            SubscriberNewsletter.newsletter == newsletter,
            SubscriberNewsletter.paused_until > bindparam("now"),
        )
        .exists()
    )
    held = (
        among(DELIVERIES.c.id, postgresql),
        DELIVERIES.c.status == DeliveryStatus.SENDING,
        DELIVERIES.c.claimed_by == bindparam("token"),
    )
    why = case(
        (suppressed, LEFT_SUPPRESSED),
        (~active, LEFT_STATUS),
        (~subscribed, LEFT_NEWSLETTER),
        else_=LEFT_PAUSED,
    )
    return (
        update(DELIVERIES)
        .where(*held, active, subscribed, ~suppressed, ~paused)
        .values(handed_at=bindparam("now"))
        .returning(DELIVERIES.c.id),
        update(DELIVERIES)
        .where(*held)
        .values(status=DeliveryStatus.SUPPRESSED, detail=why)
        .returning(DELIVERIES.c.id),
    )


def _standing(newsletter: str) -> tuple[Exists, Exists, Exists]:
    """Whether a delivery's reader is active, subscribed to `newsletter`, suppressed: EXISTS
    clauses correlated with the deliveries row of the statement they are used in."""
    subscriber = DELIVERIES.c.subscriber_id
    active = select(Subscriber.id).where(
        Subscriber.id == subscriber, Subscriber.status == SubscriberStatus.ACTIVE
    )
    subscribed = select(SubscriberNewsletter.subscriber_id).where(
        SubscriberNewsletter.subscriber_id == subscriber,
        SubscriberNewsletter.newsletter == newsletter,
        SubscriberNewsletter.status == SubscriptionStatus.ACTIVE,
    )
    suppressed = (
        select(Suppression.id)
        .join(Subscriber, Subscriber.email == Suppression.email)
        .where(Subscriber.id == subscriber)
    )
    return active.exists(), subscribed.exists(), suppressed.exists()


def note_left(session: Session, ids: Sequence[int], newsletter: str) -> None:
    """Sent deliveries whose reader left after their hand-over (their message was on its way):
    mailed once more than they wished, and the ledger says so."""
    active, subscribed, suppressed = _standing(newsletter)
    postgresql = _postgresql(session)
    for start in range(0, len(ids), BATCH):
        session.execute(
            update(DELIVERIES)
            .where(
                among(DELIVERIES.c.id, postgresql, ids[start : start + BATCH]),
                DELIVERIES.c.status == DeliveryStatus.SENT,
                ~active | ~subscribed | suppressed,
            )
            .values(detail=LEFT_IN_FLIGHT)
        )


def release(session: Session, ids: Iterable[int], token: str) -> None:
    """Give deliveries this claim still holds back to pending: none of them was handed over, so
    the claim does not count as an attempt."""
    _unclaim(session, list(ids), attempted=False, token=token)


def suppress_claimed(session: Session, ids: list[int]) -> int:
    """Claimed deliveries whose reader left (unsubscribed, bounced, suppressed) since preparation;
    how many were still claimed."""
    result = session.execute(
        update(DELIVERIES)
        .where(
            among(DELIVERIES.c.id, _postgresql(session), ids), DELIVERIES.c.status == DeliveryStatus.SENDING
        )
        .values(status=DeliveryStatus.SUPPRESSED, detail="unsubscribed or suppressed during the send")
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def record(session: Session, marks: Sequence[Mark]) -> None:
    """Write a provider's outcomes: sent and failed are final, a retry goes back to pending.
    Marks alike (a SendGrid request's readers share one message id) are one UPDATE; messages
    sent alone (SMTP: a message id each) one statement executed for each."""
    now = utcnow()
    alike: dict[tuple[DeliveryStatus, str | None, str | None], list[int]] = {}
    for mark in marks:
        alike.setdefault((mark.status, mark.message_id, mark.detail), []).append(mark.delivery_id)
    postgresql = _postgresql(session)
    if postgresql:
        # A lost sender loses nothing this way; only a database crash could lose the last few
        # hundred milliseconds of marks, and the cost of one flush per mark is spared.
        session.execute(text("SET LOCAL synchronous_commit = off"))
    one_each: dict[DeliveryStatus, list[dict[str, Any]]] = {}
    for (status, message_id, detail), ids in alike.items():
        if len(ids) == 1:  # SMTP: a message id per reader, written below in one executemany
            one_each.setdefault(status, []).append({"row_id": ids[0], "message": message_id, "words": detail})
            continue
        values = _outcome(status, now, message_id, detail)
        session.execute(
            update(DELIVERIES)
            .where(among(DELIVERIES.c.id, postgresql, ids), _unless_told(status))
            .values(**values)
        )
    # A statement per mark held the write lock 30 ms for 200 SMTP marks (the pages wait for it);
    # one executemany per status takes a few.
    for status, rows in one_each.items():
        values = _outcome(status, now, bindparam("message"), bindparam("words"))
        session.execute(
            update(DELIVERIES)
            .where(DELIVERIES.c.id == bindparam("row_id"), _unless_told(status))
            .values(**values),
            rows,
        )


def _outcome(status: DeliveryStatus, now: datetime, message_id: Any, detail: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"status": status, "detail": detail}
    if status == DeliveryStatus.SENT:
        values.update(sent_at=now, provider_message_id=message_id, retry_at=None)
    elif status == DeliveryStatus.PENDING:  # the provider was busy: not the reader's attempt
        values.update(claimed_by=None, claimed_at=None, attempts=DELIVERIES.c.attempts - 1)
    return values


def _unless_told(status: DeliveryStatus) -> ColumnElement[bool]:
    """Rows a sender's mark may change: the provider's event, when it came first, settled the
    delivery for good (sent, or failed for a drop); a sender's retry or doubt never undoes it."""
    word = DELIVERIES.c.provider_event
    if status == DeliveryStatus.SENT:
        return word.is_(None) | (word != DROPPED)
    return word.is_(None)


def defer(
    session: Session,
    deferrals: Sequence[tuple[int, str]],
    max_attempts: int,
    delay: Callable[[int], timedelta],
) -> int:
    """Deliveries whose mailbox refused for now (delivery id, the server's words): tried again
    no sooner than `delay(attempts)` from now, or failed once `max_attempts` are spent; returns
    how many failed."""
    words = dict(deferrals)
    rows = session.execute(select(Delivery.id, Delivery.attempts).where(Delivery.id.in_(list(words)))).all()
    now, failed = utcnow(), 0
    for delivery_id, attempts in rows:
        if attempts >= max_attempts:
            values: dict[str, Any] = {
                "status": DeliveryStatus.FAILED,
                "detail": f"{words[delivery_id]} (refused {attempts} times)",
                "retry_at": None,
            }
            failed += 1
        else:
            values = {
                "status": DeliveryStatus.PENDING,
                "detail": words[delivery_id],
                "retry_at": now + delay(attempts),
                "claimed_by": None,
                "claimed_at": None,
            }
        session.execute(update(DELIVERIES).where(DELIVERIES.c.id == delivery_id).values(**values))
    return failed


def next_retry(session: Session, edition_id: int) -> datetime | None:
    """When the earliest deferred delivery of the edition may be tried again."""
    return session.scalar(
        select(func.min(Delivery.retry_at)).where(
            Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.PENDING
        )
    )


def renew(session: Session, edition_id: int, worker: str) -> None:
    """A live sender's heartbeat: its claims are fresh again, so no other sender takes them
    for a dead one's however slow the provider or the pace. On PostgreSQL it never waits for a
    row another transaction holds (the sender's own marks, being written): waiting there, in
    another order than theirs, closed a deadlock that cost a beat under load."""
    mine = select(DELIVERIES.c.id).where(
        DELIVERIES.c.edition_id == edition_id,
        DELIVERIES.c.status == DeliveryStatus.SENDING,
        DELIVERIES.c.claimed_by.like(f"{worker}#%"),
    )
    if session.get_bind().dialect.name == "postgresql":
        mine = mine.with_for_update(skip_locked=True)
    session.execute(update(DELIVERIES).where(DELIVERIES.c.id.in_(mine)).values(claimed_at=utcnow()))


def held(session: Session, ids: Sequence[int], token: str) -> set[int]:
    """Which of these deliveries the claim `token` still holds (none was taken over)."""
    return set(
        session.scalars(
            select(Delivery.id).where(
                among(DELIVERIES.c.id, _postgresql(session), ids),
                Delivery.status == DeliveryStatus.SENDING,
                Delivery.claimed_by == token,
            )
        )
    )


def held_by_others(session: Session, edition_id: int, worker: str) -> int:
    """How many of the edition's deliveries other senders hold (claimed, not yet answered)."""
    return (
        session.scalar(
            select(func.count()).where(
                Delivery.edition_id == edition_id,
                Delivery.status == DeliveryStatus.SENDING,
                Delivery.claimed_by.not_like(f"{worker}#%"),
            )
        )
        or 0
    )


def stale_claims(session: Session, before: datetime) -> dict[int, tuple[int, datetime]]:
    """Per edition, the claims not renewed since `before` (their sender died or went silent):
    how many, and the oldest renewal."""
    rows = session.execute(
        select(Delivery.edition_id, func.count(), func.min(Delivery.claimed_at))
        .where(Delivery.status == DeliveryStatus.SENDING, Delivery.claimed_at < before)
        .group_by(Delivery.edition_id)
    )
    return {edition_id: (count, oldest) for edition_id, count, oldest in rows if oldest is not None}


# Numbers the senders of this process: each has a name of its own.
_senders = itertools.count(1)


@functools.cache
def _life() -> int:
    """This process's life: a later process given the same id has another."""
    return int(time.time())


def worker_name() -> str:
    """host:pid:life:n, one per sender: a restarted sender on the same host tells a dead claim from
    a live one, and two senders of one process never take each other's claims for their own."""
    return f"{socket.gethostname()}:{os.getpid()}:{_life()}:{next(_senders)}"


def _claim_is_dead(claimed_by: str | None, me: str) -> bool:
    name = (claimed_by or "").partition("#")[0]
    host, pid, life = [*name.split(":"), "", ""][:3]
    if host != socket.gethostname() or not pid.isdigit() or name == me:
        return False
    if int(pid) == os.getpid():  # a previous life of this process id; a sibling's lease decides
        return life != str(_life())
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# How a delivery put back after being uncertain is marked until its new outcome.
RESENT = "sent again"
# Why a delivery is uncertain after its sender died.
IN_FLIGHT = "uncertain: its request was in flight when the sender stopped; may have been delivered"


# The provider's event that means it will not send the message; any other means it took it.
DROPPED = "dropped"


def settle_told(session: Session, edition_id: int | None) -> None:
    """Deliveries still sending or uncertain that the provider told of (`Delivery.provider_event`)
    are sent, or failed when its word was a drop: never uncertain, never sent again. An event
    settles them as it comes; this catches a word kept but not acted on (the upgrade that began
    keeping them leaves such rows). Only these two statuses: few rows, found by the claim index."""
    word = DELIVERIES.c.provider_event
    told = word.is_not(None) & DELIVERIES.c.status.in_([DeliveryStatus.SENDING, DeliveryStatus.UNCERTAIN])
    if edition_id is not None:
        told = told & (DELIVERIES.c.edition_id == edition_id)
    values: dict[str, Any] = {
        "detail": literal("settled by the provider's ") + word + literal(" event"),
        "claimed_by": None,
        "retry_at": None,
    }
    session.execute(
        update(DELIVERIES).where(told, word == DROPPED).values(status=DeliveryStatus.FAILED, **values)
    )
    session.execute(
        update(DELIVERIES)
        .where(told, word != DROPPED)
        .values(
            status=DeliveryStatus.SENT,
            sent_at=func.coalesce(DELIVERIES.c.provider_event_at, DELIVERIES.c.handed_at, utcnow()),
            **values,
        )
    )


def recover(session: Session, edition_id: int, lease: timedelta, me: str) -> tuple[int, int]:
    """The batches of senders that died (same host) or went silent (any host, past the lease):
    what was never handed to the provider goes back to pending; what was handed, its answer
    lost, becomes uncertain. Returns (put back, uncertain)."""
    settle_told(session, edition_id)  # first: what the provider confirmed is sent, not in doubt
    sending = (Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.SENDING)
    cutoff = utcnow() - lease
    mine = f"{me}#"  # a live sender's own claims are its own to settle, however late its heartbeat
    # The claims first, then only the suspects' rows: a sender waiting for the others' last
    # batches asks twice a second, and read thousands of rows each time to find none dead.
    claims = session.execute(
        select(Delivery.claimed_by, func.min(Delivery.claimed_at))
        .where(*sending)
        .group_by(Delivery.claimed_by)
    ).all()
    suspects = [
        claim
        for claim, oldest in claims
        if not (claim or "").startswith(mine)
        and (_claim_is_dead(claim, me) or (oldest is not None and oldest < cutoff))
    ]
    if not suspects:
        return 0, 0
    named = [claim for claim in suspects if claim is not None]
    whose = (
        Delivery.claimed_by.in_(named) | Delivery.claimed_by.is_(None)
        if None in suspects
        else Delivery.claimed_by.in_(named)
    )
    stale = session.execute(
        select(Delivery.id, Delivery.claimed_by, Delivery.claimed_at, Delivery.handed_at).where(
            *sending, whose
        )
    ).all()
    dead = [
        row
        for row in stale
        if not (row[1] or "").startswith(mine)
        and (_claim_is_dead(row[1], me) or (row[2] is not None and row[2] < cutoff))
    ]
    handed = [row[0] for row in dead if row[3] is not None]
    _unclaim(session, [row[0] for row in dead if row[3] is None], attempted=True, unhanded=True)
    _doubt(session, handed)
    return len(dead) - len(handed), len(handed)


def give_back(session: Session, edition_id: int, worker: str) -> tuple[int, int]:
    """A live sender's own claims after the store failed under it (what it knew is written
    first): what it never handed over goes back to pending, what it handed over without an
    outcome known is uncertain. Returns (put back, uncertain)."""
    rows = session.execute(
        select(Delivery.id, Delivery.handed_at).where(
            Delivery.edition_id == edition_id,
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.claimed_by.like(f"{worker}#%"),
        )
    ).all()
    handed = [row[0] for row in rows if row[1] is not None]
    _unclaim(session, [row[0] for row in rows if row[1] is None], attempted=False, unhanded=True)
    _doubt(session, handed)
    return len(rows) - len(handed), len(handed)


def _doubt(session: Session, handed: list[int]) -> None:
    """Deliveries handed over whose answer nobody recorded: uncertain, never sent again blindly."""
    postgresql = _postgresql(session)
    for start in range(0, len(handed), BATCH):
        session.execute(
            update(DELIVERIES)
            .where(
                among(DELIVERIES.c.id, postgresql, handed[start : start + BATCH]),
                DELIVERIES.c.status == DeliveryStatus.SENDING,
                DELIVERIES.c.handed_at.is_not(None),
            )
            .values(status=DeliveryStatus.UNCERTAIN, claimed_by=None, detail=IN_FLIGHT)
        )


def resend_uncertain(
    session: Session, edition_id: int | None, handed_before: datetime | None
) -> dict[int, int]:
    """Put uncertain deliveries back to pending (of one edition or all; only those handed over
    before `handed_before`, when given): nothing settled them. How many, per edition."""
    settle_told(session, edition_id)  # what the provider confirmed is never sent again
    query = select(Delivery.id, Delivery.edition_id).where(Delivery.status == DeliveryStatus.UNCERTAIN)
    if edition_id is not None:
        query = query.where(Delivery.edition_id == edition_id)
    if handed_before is not None:
        query = query.where(func.coalesce(Delivery.handed_at, Delivery.claimed_at) < handed_before)
    rows = session.execute(query).all()
    found: dict[int, int] = {}
    ids = [delivery_id for delivery_id, _edition in rows]
    for _delivery, edition in rows:
        found[edition] = found.get(edition, 0) + 1
    postgresql = _postgresql(session)
    for start in range(0, len(ids), BATCH):
        session.execute(
            update(DELIVERIES)
            .where(
                among(DELIVERIES.c.id, postgresql, ids[start : start + BATCH]),
                DELIVERIES.c.status == DeliveryStatus.UNCERTAIN,
            )
            .values(
                status=DeliveryStatus.PENDING,
                claimed_by=None,
                claimed_at=None,
                retry_at=None,
                detail=f"{RESENT}: nothing told whether the first attempt was delivered",
            )
        )
    return found


def _unclaim(
    session: Session, ids: list[int], attempted: bool, token: str | None = None, unhanded: bool = False
) -> None:
    """Back to pending. `unhanded`: only rows still not handed over, as they were seen: a sender
    thought dead may have handed some over since (they are its to record, or uncertain)."""
    values: dict[str, Any] = {"status": DeliveryStatus.PENDING, "claimed_by": None, "claimed_at": None}
    if not attempted:
        values["attempts"] = DELIVERIES.c.attempts - 1
    postgresql = _postgresql(session)
    for start in range(0, len(ids), BATCH):
        query = update(DELIVERIES).where(
            among(DELIVERIES.c.id, postgresql, ids[start : start + BATCH]),
            DELIVERIES.c.status == DeliveryStatus.SENDING,
        )
        if token is not None:  # only what this claim still holds, never another sender's
            query = query.where(DELIVERIES.c.claimed_by == token)
        if unhanded:
            query = query.where(DELIVERIES.c.handed_at.is_(None))
        session.execute(query.values(**values))


def retry_failed(session: Session, edition_id: int) -> int:
    """Put an edition's failed deliveries back to pending; how many."""
    result = session.execute(
        update(DELIVERIES)
        .where(DELIVERIES.c.edition_id == edition_id, DELIVERIES.c.status == DeliveryStatus.FAILED)
        # The last words stay until new ones; the provider's word was about the last message.
        .values(status=DeliveryStatus.PENDING, retry_at=None, provider_event=None, provider_event_at=None)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def counts(session: Session, edition_id: int) -> dict[DeliveryStatus, int]:
    """The edition's deliveries per status."""
    return tallies(session, [edition_id]).get(edition_id, {})


def tallies(session: Session, edition_ids: Sequence[int]) -> dict[int, dict[DeliveryStatus, int]]:
    """Deliveries per status for each of these editions, in one query."""
    found: dict[int, dict[DeliveryStatus, int]] = {}
    rows = session.execute(
        select(Delivery.edition_id, Delivery.status, func.count())
        .where(Delivery.edition_id.in_(list(edition_ids)))
        .group_by(Delivery.edition_id, Delivery.status)
    )
    for edition_id, status, count in rows:
        found.setdefault(edition_id, {})[status] = count
    return found


def finish(edition: Edition, tally: dict[DeliveryStatus, int]) -> None:
    """An edition with nothing left to send is complete, or partial while some deliveries are
    failed or uncertain; one with something left stays as it is."""
    if any(tally.get(status, 0) for status in OPEN):
        return
    unsettled = tally.get(DeliveryStatus.FAILED, 0) + tally.get(DeliveryStatus.UNCERTAIN, 0)
    status = EditionStatus.PARTIAL if unsettled else EditionStatus.COMPLETE
    if status != edition.status or edition.finished_at is None:
        edition.status, edition.finished_at = status, utcnow()
