"""Rate limits counted in the store: a sliding window of recent requests per key, the same for
every worker process of the pages (`serve --workers N`) and on both databases.

A request costs one short unit of work: on PostgreSQL a lock on the key for the transaction (two
workers counting one key take turns; SQLite's write lock does that there), then one statement
that counts the key's hits still in their window and adds this one only when under the limit.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, literal, select, text
from sqlalchemy.orm import Session, sessionmaker

from newsletter.store.db import unit_of_work
from newsletter.store.models import LimitHit, UTCDateTime

# The class of PostgreSQL's two-part advisory locks these take ("lims"): apart from the
# one-part locks of the migrations and the archive.
LOCK_CLASS = 0x6C69_6D73
# A hit stamped up to this much after a request still counts for it: requests that arrive
# together are stamped before they take turns (and workers' clocks differ a little), so one
# stamped a moment earlier must see those committed before it. Only a clock set back further
# starts the count again.
CLOCK_SLACK = timedelta(seconds=60)


def take(
    factory: sessionmaker[Session],
    limit: str,
    key: str,
    allowed: int,
    window: float,
    now: datetime,
    prune_too: bool = False,
) -> bool:
    """Count one request for `key` under the limit named `limit`: False when `allowed` requests
    were counted in the last `window` seconds (this one is not counted then).

    A hit counts while `now` is in [its time, its time + window), or is at most `CLOCK_SLACK`
    before its time (requests that arrived together). One stamped later than that (the clock
    was set back) counts no more, so a client is not shut out for as long as the clock went
    back. `prune_too`: the hits of every key whose window has passed go as well."""
    digest = hashlib.sha256(f"{limit}\n{key}".encode()).digest()
    expires = now + timedelta(seconds=window)
    key_text = digest.hex()
    live = (
        select(func.count())
        .select_from(LimitHit)
        .where(
            LimitHit.key == key_text, LimitHit.expires_at > now, LimitHit.expires_at <= expires + CLOCK_SLACK
        )
        .scalar_subquery()
    )
    with unit_of_work(factory) as session:
        if prune_too:
            prune(session, now)
        if session.get_bind().dialect.name == "postgresql":
            lock = int.from_bytes(digest[:4], "big", signed=True)
            session.execute(
                text("SELECT pg_advisory_xact_lock(:class, :key)"), {"class": LOCK_CLASS, "key": lock}
            )
        added = session.scalar(
            insert(LimitHit)
            .from_select(
                ["key", "expires_at"],
                select(literal(key_text), literal(expires, UTCDateTime)).where(live < allowed),
            )
            .returning(LimitHit.id)
        )
        return added is not None


def prune(session: Session, now: datetime) -> int:
    """Drop the hits whose window has passed; how many. Rows another worker is pruning at the
    same moment are left to it (PostgreSQL), so two prunes never wait for, nor deadlock, each other."""
    spent = select(LimitHit.id).where(LimitHit.expires_at <= now).with_for_update(skip_locked=True)
    result = session.execute(delete(LimitHit).where(LimitHit.id.in_(spent)))
    return int(getattr(result, "rowcount", 0) or 0)
