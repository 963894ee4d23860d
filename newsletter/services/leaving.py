"""Leaving one newsletter with a link's token (RFC 8058's one-click, the page's button, a mail to
the unsubscribe address), written together: the one-clicks that arrive while one is being
written go in the next transaction, all of them at once.

A burst of one-clicks during a send used to take the store's write lock once each, queued
behind each other and behind the sender's writes: most waited seconds. Together they take it
once per group, and each is answered only once its group is committed.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, tuple_, update
from sqlalchemy.orm import Session

from newsletter.store.availability import StoreBusy
from newsletter.store.db import unit_of_work
from newsletter.store.models import Consent, Subscriber, SubscriberNewsletter, UTCDateTime
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import SubscriptionStatus
from newsletter.subscribers.tokens import TokenError, read

SUBSCRIPTIONS = cast(Table, SubscriberNewsletter.__table__)  # for one statement over many rows


@dataclass(frozen=True)
class Left:
    newsletter: str
    title: str
    email: str
    language: str


@dataclass
class _Asked:
    """One reader's request, and its answer once its group is written."""

    subscriber_id: int
    newsletter: str
    source: str
    at: datetime
    done: threading.Event = field(default_factory=threading.Event)
    left: Left | None = None
    error: BaseException | None = None


class Leaving:
    """The requests of one process, written in groups; `wait` bounds how long one waits for its
    group to be written (then StoreBusy, and nothing of it is); None waits on. One per app: the
    pages share it."""

    def __init__(self, runtime: Runtime, wait: float | None = None) -> None:
        self.runtime = runtime
        self.wait = wait
        self.lock = threading.Lock()  # guards `pending`, never held while writing
        self.writing = threading.Lock()  # one group written at a time
        self.pending: list[_Asked] = []

    def leave(self, token: str, source: str, now: datetime) -> Left:
        """Leave the newsletter the token names, once this and what came with it is committed;
        again is harmless. TokenError for a bad token, before the store is touched."""
        signed = read(self.runtime.settings.signing_key(), "unsubscribe", token)
        asked = _Asked(signed.subscriber_id, signed.scope, source, now)
        deadline = time.monotonic() + (self.wait or 0.0)
        with self.lock:
            self.pending.append(asked)
        while not asked.done.is_set():
            left = -1 if self.wait is None else max(deadline - time.monotonic(), 0)
            if self.writing.acquire(timeout=left):
                try:
                    self._write_pending()
                finally:
                    self.writing.release()
            elif not self._withdraw(asked):
                asked.done.wait()  # being written: the unit of work's own deadline bounds it
            else:
                raise StoreBusy(self.runtime.settings.database_label(), self.wait or 0.0)
        if asked.error is not None:
            raise asked.error
        assert asked.left is not None
        return asked.left

    def _withdraw(self, asked: _Asked) -> bool:
        with self.lock:
            if asked in self.pending:
                self.pending.remove(asked)
                return True
            return False

    def _write_pending(self) -> None:
        with self.lock:
            group, self.pending = self.pending, []
        if not group:
            return
        try:
            with unit_of_work(self.runtime.factory) as session:
                answers = leave_together(session, self.runtime, group)
        except BaseException as exc:  # the store's trouble is each request's: none was written
            for asked in group:
                asked.error = exc
                asked.done.set()
            raise
        for asked, answer in zip(group, answers, strict=True):
            if isinstance(answer, Left):
                asked.left = answer
            else:
                asked.error = answer
            asked.done.set()


def leave_together(session: Session, runtime: Runtime, group: list[_Asked]) -> list[Left | TokenError]:
    """The group's subscriptions ended, each with its consent record, in a few statements
    whatever its size (the busiest writes of all: no objects); each request's answer."""
    settings = runtime.settings
    readers = {
        row.id: row
        for row in session.execute(
            select(Subscriber.id, Subscriber.email, Subscriber.language).where(
                Subscriber.id.in_({a.subscriber_id for a in group})
            )
        )
    }
    known = {i for i, row in readers.items() if not row.email.startswith("sha256:")}  # not forgotten
    wanted = {(a.subscriber_id, a.newsletter) for a in group if a.subscriber_id in known}
    active = select(SubscriberNewsletter.subscriber_id, SubscriberNewsletter.newsletter).where(
        tuple_(SubscriberNewsletter.subscriber_id, SubscriberNewsletter.newsletter).in_(wanted),
        SubscriberNewsletter.status == SubscriptionStatus.ACTIVE,
    )
    if session.get_bind().dialect.name == "postgresql":
        active = active.with_for_update()
    ending = {(row[0], row[1]) for row in session.execute(active)} if wanted else set()
    first: dict[tuple[int, str], _Asked] = {}
    for asked in group:  # a double click ends it once, recorded once
        if (asked.subscriber_id, asked.newsletter) in ending:
            first.setdefault((asked.subscriber_id, asked.newsletter), asked)
    if first:
        session.execute(
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
            ),
            [
                {"reader": a.subscriber_id, "name": a.newsletter, "at": a.at, "how": a.source}
                for a in first.values()
            ],
        )
        session.execute(
            insert(Consent),
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
