"""Leaving one newsletter with a link's token (RFC 8058's one-click, the page's button, a mail to
the unsubscribe address), written together: the one-clicks that arrive while one group is being
written go in the next transaction, all of them at once.

A burst of one-clicks during a send used to take the store's write lock once each, queued
behind each other and behind the sender's writes: most waited seconds. Together they take it
once per group, and each is answered only once its group is committed, durably (SQLite syncs
its log for that commit; PostgreSQL waits for its WAL, whatever the session's default). One
thread per process writes the groups while there are any: a page hands its request over from
the event loop and awaits the answer, holding no thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session

from newsletter.metrics.counters import count_unsubscribes
from newsletter.store.availability import StoreBusy
from newsletter.store.db import session_factory, unit_of_work
from newsletter.store.models import Consent, Subscriber, SubscriberNewsletter, UTCDateTime
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import SubscriptionStatus
from newsletter.subscribers.tokens import TokenError, read

# How long the writer thread waits for more requests before it ends.
LINGER_SECONDS = 1.0
SUBSCRIPTIONS = cast(Table, SubscriberNewsletter.__table__)  # for one statement over many rows
CONSENTS = cast(Table, Consent.__table__)
# A group's statements, made once (each group only binds its values).
READERS = select(Subscriber.id, Subscriber.email, Subscriber.language).where(
    Subscriber.id.in_(bindparam("ids", expanding=True))
)
ACTIVE = select(SUBSCRIPTIONS.c.subscriber_id, SUBSCRIPTIONS.c.newsletter).where(
    # by reader (its index) and by name, not by pair: SQLite reads a whole table for a tuple IN
    SUBSCRIPTIONS.c.subscriber_id.in_(bindparam("ids", expanding=True)),
    SUBSCRIPTIONS.c.newsletter.in_(bindparam("names", expanding=True)),
    SUBSCRIPTIONS.c.status == SubscriptionStatus.ACTIVE,
)
RECORDED = insert(CONSENTS)
ENDED = (
    update(SUBSCRIPTIONS)
    .where(
        SUBSCRIPTIONS.c.subscriber_id == bindparam("reader"),
        SUBSCRIPTIONS.c.newsletter == bindparam("name"),
        SUBSCRIPTIONS.c.status == SubscriptionStatus.ACTIVE,
    )
    .values(
        status=SubscriptionStatus.UNSUBSCRIBED,
        unsubscribed_at=bindparam("at", type_=UTCDateTime()),
        source=bindparam("how"),
    )
)


@dataclass(frozen=True)
class Left:
    newsletter: str
    title: str
    email: str
    language: str


@dataclass(eq=False)
class _Asked:
    """One reader's request, and its answer once its group is written: told to a thread that
    waits (`done`) or to an event loop's future."""

    subscriber_id: int
    newsletter: str
    source: str
    at: datetime
    done: threading.Event | None = None
    future: asyncio.Future[Left] | None = None
    left: Left | None = None
    error: BaseException | None = None
    ended: bool = False  # this request ended the subscription (not a repeat, not already left)


class Leaving:
    """The requests of one process, written in groups by one thread; `wait` bounds how long a
    request waits for its group to be taken (then StoreBusy, and nothing of it is written), and
    the unit of work's own deadline how long its writing may wait for the store; None waits
    on. One per app: the pages share it."""

    def __init__(self, runtime: Runtime, wait: float | None = None) -> None:
        self.runtime = runtime
        self.wait = wait
        # Its commits synced to disk on SQLite too (the store's default syncs at checkpoints).
        durable = runtime.engine.execution_options(sqlite_synchronous="FULL")
        self.factory = session_factory(durable, write_wait=runtime.write_wait)
        self.lock = threading.Lock()  # guards what follows, never held while writing
        self.pending: list[_Asked] = []
        self.writing = False  # a writer thread is running: it takes what is pending
        self.idle = False  # and waits for more
        self.arrived = threading.Condition(self.lock)

    def leave(self, token: str, source: str, now: datetime) -> Left:
        """Leave the newsletter the token names, once this and what came with it is committed;
        again is harmless. TokenError for a bad token, before the store is touched."""
        asked = self._asked(token, source, now)
        asked.done = threading.Event()
        self._hand_over(asked)
        if not asked.done.wait(self.wait) and self._withdraw(asked):
            raise StoreBusy(self.runtime.settings.database_label(), self.wait or 0.0)
        asked.done.wait()  # being written: the unit of work's own deadline bounds it
        if asked.error is not None:
            raise asked.error
        assert asked.left is not None
        return asked.left

    def leave_here(self, token: str, source: str, now: datetime) -> Left:
        """One request written by the calling thread: a one-off (a mail to the unsubscribe
        address, read by `bounces`) leaves no writer thread waiting for more behind it."""
        asked = self._asked(token, source, now)
        self._write([asked])
        if asked.error is not None:
            raise asked.error
        assert asked.left is not None
        return asked.left

    async def leave_soon(self, token: str, source: str, now: datetime) -> Left:
        """`leave` from an event loop: the token is checked here, the write awaited without a
        thread of the loop's pool per request."""
        asked = self._asked(token, source, now)
        loop = asyncio.get_running_loop()
        asked.future = loop.create_future()
        self._hand_over(asked)
        expiry = None if self.wait is None else loop.call_later(self.wait, self._expire, asked)
        try:
            return await asked.future
        finally:
            if expiry is not None:
                expiry.cancel()

    @cached_property
    def key(self) -> bytes:
        """The settings' key, checked once (the check costs more than the MAC)."""
        return self.runtime.settings.signing_key()

    def _asked(self, token: str, source: str, now: datetime) -> _Asked:
        signed = read(self.key, "unsubscribe", token)
        return _Asked(signed.subscriber_id, signed.scope, source, now)

    def _hand_over(self, asked: _Asked) -> None:
        with self.lock:
            self.pending.append(asked)
            if self.idle:
                self.arrived.notify()
            if self.writing:
                return
            self.writing = True
        threading.Thread(target=self._write_all, name="newsletter-leaving", daemon=True).start()

    def _expire(self, asked: _Asked) -> None:
        """A request's deadline in its event loop: withdrawn if no group has taken it yet."""
        assert asked.future is not None
        if not asked.future.done() and self._withdraw(asked):
            asked.future.set_exception(StoreBusy(self.runtime.settings.database_label(), self.wait or 0.0))

    def _withdraw(self, asked: _Asked) -> bool:
        with self.lock:
            if asked in self.pending:
                self.pending.remove(asked)
                return True
            return False

    def _write_all(self) -> None:
        """The writer thread: group after group while requests keep coming, then, once none has
        come for a while, it ends (a thread started per group would cost more than its write)."""
        while True:
            with self.lock:
                if not self.pending:
                    self.idle = True
                    self.arrived.wait(LINGER_SECONDS)
                    self.idle = False
                group, self.pending = self.pending, []
                if not group:
                    self.writing = False
                    return
            self._write(group)

    def _write(self, group: list[_Asked]) -> None:
        try:
            with unit_of_work(self.factory) as session:
                if session.get_bind().dialect.name == "postgresql":  # never the ledger's `off`
                    session.execute(text("SET LOCAL synchronous_commit = on"))
                answers = leave_together(session, self.runtime, group)
        except BaseException as exc:  # the store's trouble is each request's, raised where it waits
            for asked in group:
                asked.error = exc
        else:
            count_unsubscribes(asked.source for asked in group if asked.ended)
            for asked, answer in zip(group, answers, strict=True):
                if isinstance(answer, Left):
                    asked.left = answer
                else:
                    asked.error = answer
        _tell(group)


def _tell(group: list[_Asked]) -> None:
    """Each request its answer: a waiting thread woken, an event loop's futures settled in one
    call per loop (each call wakes the loop)."""
    loops: dict[asyncio.AbstractEventLoop, list[_Asked]] = {}
    for asked in group:
        if asked.done is not None:
            asked.done.set()
        elif asked.future is not None:
            loops.setdefault(asked.future.get_loop(), []).append(asked)
    for loop, settled in loops.items():
        with contextlib.suppress(RuntimeError):  # a loop closed: nobody awaits these any more
            loop.call_soon_threadsafe(_settle, settled)


def _settle(group: list[_Asked]) -> None:
    for asked in group:
        assert asked.future is not None
        if asked.future.done():  # cancelled: its page went away
            continue
        if asked.error is not None:
            asked.future.set_exception(asked.error)
        else:
            assert asked.left is not None
            asked.future.set_result(asked.left)


def leave_together(session: Session, runtime: Runtime, group: list[_Asked]) -> list[Left | TokenError]:
    """The group's subscriptions ended, each with its consent record, in a few statements
    whatever its size (the busiest writes of all: no objects); each request's answer."""
    settings = runtime.settings
    connection = session.connection()  # Core statements: no ORM objects, nor its per-row work
    readers = {row.id: row for row in connection.execute(READERS, {"ids": {a.subscriber_id for a in group}})}
    known = {i for i, row in readers.items() if not row.email.startswith("sha256:")}  # not forgotten
    wanted = {(a.subscriber_id, a.newsletter) for a in group if a.subscriber_id in known}
    ending: set[tuple[int, str]] = set()
    if wanted:
        active = ACTIVE.with_for_update() if connection.dialect.name == "postgresql" else ACTIVE
        asked_for = {"ids": {r for r, _name in wanted}, "names": {name for _r, name in wanted}}
        ending = {(row[0], row[1]) for row in connection.execute(active, asked_for)} & wanted
    first: dict[tuple[int, str], _Asked] = {}
    for asked in group:  # a double click ends it once, recorded once
        key = (asked.subscriber_id, asked.newsletter)
        asked.ended = key in ending and first.setdefault(key, asked) is asked
    if first:
        connection.execute(
            ENDED,
            [
                {"reader": a.subscriber_id, "name": a.newsletter, "at": a.at, "how": a.source}
                for a in first.values()
            ],
        )
        connection.execute(
            RECORDED,
            [
                {
                    "subscriber_id": a.subscriber_id,
                    "at": a.at,
                    "action": "unsubscribe",
                    "source": a.source,
                    "detail": json.dumps({"newsletter": a.newsletter}),
                }
                for a in first.values()
            ],
        )
    answers: list[Left | TokenError] = []
    for asked in group:
        found = readers.get(asked.subscriber_id)
        if found is None or asked.subscriber_id not in known:
            answers.append(TokenError("this link is not valid any more"))
            continue
        config = settings.newsletters.get(asked.newsletter)
        title = config.title if config else asked.newsletter
        answers.append(Left(asked.newsletter, title, found.email, found.language))
    return answers
