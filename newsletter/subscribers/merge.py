"""Checked import rows merged into the store a chunk at a time: each chunk's known readers read
in three queries, what every row does decided in Python, and the writes made as a few
multi-row statements; a chunk the database refuses is written again row by row, each in its
own savepoint, so the row it refuses is rejected alone.

Someone who unsubscribed, bounced, complained or is suppressed is never reactivated by an import,
and nobody becomes active unless the import says the readers confirmed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    String,
    Table,
    bindparam,
    delete,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from newsletter.store.db import among
from newsletter.store.models import (
    Category,
    Subscriber,
    SubscriberNewsletter,
    Suppression,
    subscriber_categories,
)
from newsletter.store.statuses import ENDED, SubscriberStatus, SubscriptionStatus, SuppressionReason
from newsletter.subscribers.addresses import address_hash

NOT_CONFIRMED = (
    "status active for a reader who has not confirmed: import with --confirmed only if these "
    "readers opted in elsewhere, or leave the status empty (pending)"
)
# Values in one INSERT statement at most (SQLite before 3.32 took 999 and no more).
_PARAMETERS = 999
# Statuses read as text and looked up: the enum's own call took a third of a re-import's lookups.
_READER = {status.value: status for status in SubscriberStatus}
_SUBSCRIPTION = {status.value: status for status in SubscriptionStatus}
# What an import writes of a reader's own row (`Reader.columns`).
_COLUMNS = ("name", "language", "status", "confirmed_at", "unsubscribed_at", "timezone")
_CATEGORIES = subscriber_categories
_SUBSCRIBERS = Subscriber.metadata.tables[Subscriber.__tablename__]
_SUBSCRIPTIONS = SubscriberNewsletter.metadata.tables[SubscriberNewsletter.__tablename__]


class Outcome(StrEnum):
    """What one row did to the store."""

    ADDED = "added"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    KEPT = "kept"


@dataclass(frozen=True)
class Row:
    """What a checked CSV row asks of the store, its cells normalized."""

    email: str
    name: str | None
    language: str
    categories: tuple[str, ...]
    newsletters: tuple[str, ...]  # none named: a known reader's stay, a new one takes the default
    status: SubscriberStatus | None  # None: unchanged, or the import's default for a new reader
    timezone: str | None = None  # None: a known reader keeps theirs, a new one has the site's


@dataclass
class Reader:
    """A reader as an import sees and writes them; `id` 0 until a new one is inserted."""

    id: int
    email: str
    name: str | None
    language: str
    status: SubscriberStatus
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    timezone: str | None = None
    categories: frozenset[int] = frozenset()
    newsletters: dict[str, SubscriptionStatus] = field(default_factory=dict)

    def values(self) -> tuple[object, ...]:
        """What a row can change, compared before and after so a re-import reports no updates."""
        return (
            self.name,
            self.language,
            self.status,
            self.timezone,
            self.categories,
            frozenset(self.newsletters.items()),
        )

    def columns(self) -> tuple[object, ...]:
        """The values of `_COLUMNS`: what an import writes of the reader's own row."""
        return (
            self.name,
            self.language,
            self.status,
            self.confirmed_at,
            self.unsubscribed_at,
            self.timezone,
        )


@dataclass(frozen=True)
class Change:
    """One row's decision: the reader before (None: new) and after."""

    before: Reader | None
    after: Reader

    @property
    def outcome(self) -> Outcome:
        if self.before is None:
            return Outcome.ADDED
        return Outcome.UNCHANGED if self.before.values() == self.after.values() else Outcome.UPDATED


@dataclass(frozen=True)
class Known:
    """What the store holds about a chunk's addresses."""

    readers: dict[str, Reader]
    suppressed: set[str]


def any_forgotten(session: Session) -> bool:
    """Whether some reader was forgotten: only then are addresses hashed to be looked up."""
    query = select(Suppression.id).where(Suppression.reason == SuppressionReason.FORGOTTEN).limit(1)
    return session.scalars(query).first() is not None


def category_ids(session: Session, chosen: Iterable[str], configured: dict[str, str]) -> dict[str, int]:
    """The ids of the sections rows choose, stored before the rows: a configured one may not be
    in the store yet (no fetch so far), or only as a tag."""
    slugs = list(dict.fromkeys(chosen))
    stored = {
        slug: (id_, is_section)
        for slug, id_, is_section in session.execute(
            select(Category.slug, Category.id, Category.is_section).where(Category.slug.in_(slugs))
        )
    }
    ids = {}
    for slug in slugs:
        if slug not in stored:
            category = Category(slug=slug, name=configured[slug], is_section=True)
            session.add(category)
            session.flush()
            ids[slug] = category.id
            continue
        ids[slug], is_section = stored[slug]
        if not is_section:
            session.execute(update(Category).where(Category.id == ids[slug]).values(is_section=True))
    return ids


def known(session: Session, emails: list[str], key: bytes | None) -> Known:
    """The chunk's readers already stored, with their choices, and which addresses are suppressed."""
    readers = {
        row.email: Reader(
            row.id,
            row.email,
            row.name,
            row.language,
            _READER[row.status],
            row.confirmed_at,
            row.unsubscribed_at,
            row.timezone,
        )
        for row in session.execute(
            select(
                Subscriber.id,
                Subscriber.email,
                Subscriber.name,
                Subscriber.language,
                type_coerce(Subscriber.status, String).label("status"),
                Subscriber.confirmed_at,
                Subscriber.unsubscribed_at,
                Subscriber.timezone,
            ).where(among(Subscriber.email, _postgresql(session), emails))
        )
    }
    by_id = {reader.id: reader for reader in readers.values()}
    if by_id:
        chosen: dict[int, set[int]] = {}
        for subscriber_id, category_id in session.execute(
            select(_CATEGORIES.c.subscriber_id, _CATEGORIES.c.category_id).where(
                among(_CATEGORIES.c.subscriber_id, _postgresql(session), list(by_id))
            )
        ):
            chosen.setdefault(subscriber_id, set()).add(category_id)
        for subscriber_id, categories in chosen.items():
            by_id[subscriber_id].categories = frozenset(categories)
        for subscriber_id, newsletter, status in session.execute(
            select(
                SubscriberNewsletter.subscriber_id,
                SubscriberNewsletter.newsletter,
                type_coerce(SubscriberNewsletter.status, String),
            ).where(among(SubscriberNewsletter.subscriber_id, _postgresql(session), list(by_id)))
        ):
            by_id[subscriber_id].newsletters[newsletter] = _SUBSCRIPTION[status]
    # A forgotten reader is suppressed by the hash of the address, never the address itself.
    hashes = {address_hash(email, key): email for email in emails} if key else {}
    listed = session.scalars(
        select(Suppression.email).where(among(Suppression.email, _postgresql(session), [*emails, *hashes]))
    )
    return Known(readers, {hashes.get(entry, entry) for entry in listed})


def decide(
    row: Row,
    before: Reader | None,
    suppressed: bool,
    categories: dict[str, int],
    confirmed: bool,
    default: tuple[str, ...],
    now: datetime,
) -> Change | None:
    """What one row does (None: the reader is kept as they were); ValueError when its status
    would claim a consent not given. A row naming no newsletter leaves a known reader's as they
    are and gives a new one `default`; a newsletter the reader left stays left, listed or not."""
    if suppressed or (before is not None and before.status in ENDED):
        return None  # consent withdrawn or mailbox gone: an import never overrides it
    # A row without a status keeps the reader's, except that `confirmed` makes a pending one active.
    standing = before.status if before is not None else SubscriberStatus.PENDING
    waiting = confirmed and standing == SubscriberStatus.PENDING
    status = row.status or (SubscriberStatus.ACTIVE if waiting else standing)
    if status == SubscriberStatus.ACTIVE and not (confirmed or standing == SubscriberStatus.ACTIVE):
        raise ValueError(NOT_CONFIRMED)
    start = before or Reader(0, row.email, None, row.language, status, None, None)
    have = start.newsletters
    newsletters = dict(have)
    if row.newsletters or before is None:
        left = SubscriptionStatus.UNSUBSCRIBED
        newsletters = {n: have.get(n, SubscriptionStatus.ACTIVE) for n in row.newsletters or default}
        newsletters |= {n: s for n, s in have.items() if s == left}  # its record is how we know
    after = replace(
        start,
        name=row.name or start.name,
        language=row.language,
        timezone=row.timezone or start.timezone,
        status=status,
        confirmed_at=start.confirmed_at or (now if status == SubscriberStatus.ACTIVE else None),
        unsubscribed_at=now if status == SubscriberStatus.UNSUBSCRIBED else start.unsubscribed_at,
        categories=frozenset(categories[slug] for slug in row.categories),
        newsletters=newsletters,
    )
    return Change(before, after)


def write(session: Session, changes: list[Change], now: datetime) -> list[tuple[Change, str | None]]:
    """The changes into the store, each with None or why the database refused its row: a chunk in
    one savepoint, and only when the database refuses it, row by row."""
    try:
        with session.begin_nested():
            _write(session, changes, now)
        return [(change, None) for change in changes]
    except (IntegrityError, DataError):
        pass
    written: list[tuple[Change, str | None]] = []
    for change in changes:
        try:
            with session.begin_nested():
                _write(session, [change], now)
        except (IntegrityError, DataError) as exc:
            # The driver's message may quote the row's values: name the kind of refusal only.
            written.append((change, f"refused by the database ({type(exc).__name__})"))
            continue
        written.append((change, None))
    return written


def _write(session: Session, changes: list[Change], now: datetime) -> None:
    new = [change.after for change in changes if change.before is None]
    if new:
        _insert_many(
            session,
            _SUBSCRIBERS,
            ("email", "created_at", *_COLUMNS),
            [
                (r.email, now, r.name, r.language, r.status, r.confirmed_at, r.unsubscribed_at, r.timezone)
                for r in new
            ],
        )
        query = select(Subscriber.email, Subscriber.id).where(
            among(Subscriber.email, _postgresql(session), [r.email for r in new])
        )
        ids = {email: id_ for email, id_ in session.execute(query)}
        for reader in new:
            reader.id = ids[reader.email]
    updated = [
        {"id": c.after.id, **dict(zip(_COLUMNS, c.after.columns(), strict=True))}
        for c in changes
        if c.before is not None and c.before.columns() != c.after.columns()
    ]
    if updated:
        session.execute(update(Subscriber), updated)
    empty = Reader(0, "", None, "", SubscriberStatus.PENDING, None, None)
    pairs = [(c.before or empty, c.after) for c in changes]
    _insert_many(
        session,
        _CATEGORIES,
        ("subscriber_id", "category_id"),
        [(a.id, i) for b, a in pairs for i in a.categories - b.categories],
    )
    active = SubscriptionStatus.ACTIVE
    _insert_many(
        session,
        _SUBSCRIPTIONS,
        ("subscriber_id", "newsletter", "status", "subscribed_at", "source"),
        [
            (a.id, n, active, now, "import")
            for b, a in pairs
            for n in a.newsletters
            if n not in b.newsletters  # in the row's order
        ],
    )
    _delete_many(
        session,
        _CATEGORIES,
        "category_id",
        [(a.id, i) for b, a in pairs for i in b.categories - a.categories],
    )
    _delete_many(
        session,
        _SUBSCRIPTIONS,
        "newsletter",
        [(a.id, n) for b, a in pairs for n in b.newsletters.keys() - a.newsletters.keys()],
    )


def _delete_many(session: Session, table: Table, column: str, rows: list[tuple[int, Any]]) -> None:
    """A reader's rows of `table` named by (subscriber id, `column`), in one executemany."""
    if rows:
        session.execute(
            delete(table).where(
                table.c.subscriber_id == bindparam("sid"), table.c[column] == bindparam("value")
            ),
            [{"sid": sid, "value": value} for sid, value in rows],
        )


def _insert_many(session: Session, table: Table, names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Rows (values in the order of `names`) into `table`, as many a statement as the driver
    takes: SQLAlchemy's binding, per row and column, took most of an import's time, and a
    statement a row most of PostgreSQL's. A column's conversion (a status's value, a time as
    SQLite keeps it) runs once per distinct value."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    for index, name in enumerate(names):
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            converted = {value: process(value) for value in {row[index] for row in rows}}
            rows = [(*row[:index], converted[row[index]], *row[index + 1 :]) for row in rows]
    quote = dialect.identifier_preparer.quote
    head = f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in names)}) "
    if dialect.name == "postgresql":  # a column a parameter: psycopg parses a long statement each time
        types = [dialect.type_compiler_instance.process(table.c[name].type) for name in names]
        arrays = ", ".join(f"%b::{type_}[]" for type_ in types)  # binary: times go 10 times faster
        connection.exec_driver_sql(
            f"{head}SELECT * FROM unnest({arrays})", tuple(map(list, zip(*rows, strict=True)))
        )
        return
    one = f"({', '.join(['?'] * len(names))})"
    step = _PARAMETERS // len(names)
    for first in range(0, len(rows), step):
        batch = rows[first : first + step]
        values = ", ".join([one] * len(batch))
        connection.exec_driver_sql(f"{head}VALUES {values}", tuple(v for row in batch for v in row))


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
