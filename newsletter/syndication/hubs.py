"""Telling WebSub hubs which feeds changed (`hub.mode=publish`), from a queue in the store.

A push is a row per (hub, feed), queued in the transaction that changed the feed and sent
later by the scheduler or `newsletter archive push`, so a slow hub never delays a send. Each
request names one feed (one `hub.url`); a hub that does not answer 2xx is asked again after a
wait that doubles from a minute to six hours. After MAX_ATTEMPTS the row stays, given up, with
the hub's last answer, until the feed changes again. No request is made inside a transaction.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.settings import Settings
from newsletter.store.db import unit_of_work
from newsletter.store.models import HubPush
from newsletter.text import display_url, printable

if TYPE_CHECKING:  # the HTTP client is imported where a push goes, not by every archive run
    import httpx

log = logging.getLogger("newsletter.hubs")

MAX_ATTEMPTS = 20  # about three days of trying
FIRST_WAIT = timedelta(minutes=1)
LONGEST_WAIT = timedelta(hours=6)
# A claimed row is not due for others this long: a second scheduler does not push it again,
# and a process that died mid-push leaves it due again afterwards.
LEASE = timedelta(minutes=15)
PROBLEM_CHARS = 200


def enqueue(session: Session, settings: Settings, topics: list[str], now: datetime) -> None:
    """Queue a push of each changed feed to every hub; a pair already queued (or given up) is
    due now again, with its count of attempts started over."""
    hubs = [str(hub) for hub in settings.syndication.hubs]
    if not hubs or not topics:
        return
    for hub in hubs:
        for topic in sorted(set(topics)):
            existing = session.scalars(
                select(HubPush).where(HubPush.hub == hub, HubPush.topic == topic)
            ).first()
            if existing is None:
                session.add(HubPush(hub=hub, topic=topic, attempts=0, next_at=now))
            else:
                existing.attempts, existing.next_at = 0, now
    session.flush()


def wait(attempts: int) -> timedelta:
    """How long after its `attempts`-th failure a push is tried again."""
    return min(FIRST_WAIT * 2 ** min(attempts - 1, 20), LONGEST_WAIT)


@dataclass(frozen=True)
class Attempt:
    """One request to a hub (its URL with any credentials masked): `problem` is None when the
    hub accepted it; `retry_at` is None when it was accepted or given up."""

    hub: str
    topic: str
    problem: str | None
    retry_at: datetime | None


@dataclass(frozen=True)
class PushReport:
    attempts: list[Attempt]

    @property
    def accepted(self) -> list[Attempt]:
        return [a for a in self.attempts if a.problem is None]

    @property
    def failed(self) -> list[Attempt]:
        return [a for a in self.attempts if a.problem is not None]


@dataclass(frozen=True)
class _Claimed:
    id: int
    hub: str
    topic: str
    attempts: int


def push_due(factory: sessionmaker[Session], settings: Settings, now: datetime) -> PushReport:
    """Send every push that is due: claim the rows, commit, make the requests, then record each
    outcome (a row queued again meanwhile is left due: its feed changed after the request)."""
    lease = now + LEASE
    claimed = _claim(factory, [str(hub) for hub in settings.syndication.hubs], now, lease)
    if not claimed:
        return PushReport([])
    from newsletter.ingest.fetch import make_client  # httpx and its backends: only for a push

    # The hubs are the operator's own setting: any address, but no redirect is followed.
    with make_client(settings.fetch, allowed=lambda _address: True) as client:
        outcomes = _requests(client, settings, claimed)
    attempts = []
    with unit_of_work(factory) as session:
        for row in claimed:
            problem = outcomes[row.id]
            hub = display_url(row.hub)
            current = (HubPush.id == row.id) & (HubPush.next_at == lease)
            if problem is None:
                session.execute(delete(HubPush).where(current))
                attempts.append(Attempt(hub, row.topic, None, None))
                continue
            count = row.attempts + 1
            retry_at = now + wait(count) if count < MAX_ATTEMPTS else None
            session.execute(
                update(HubPush)
                .where(current)
                .values(attempts=count, next_at=retry_at or now, last_error=problem)
            )
            attempts.append(Attempt(hub, row.topic, problem, retry_at))
            if retry_at is None:
                log.warning("WebSub hub %s: gave up telling it of %s: %s", hub, row.topic, problem)
    return PushReport(attempts)


def _claim(factory: sessionmaker[Session], hubs: list[str], now: datetime, lease: datetime) -> list[_Claimed]:
    """The due pushes, leased; those for a hub no longer in the settings are dropped."""
    with unit_of_work(factory) as session:
        session.execute(delete(HubPush).where(HubPush.hub.not_in(hubs)))
        query = (
            select(HubPush)
            .where(HubPush.next_at <= now, HubPush.attempts < MAX_ATTEMPTS)
            .order_by(HubPush.hub, HubPush.next_at, HubPush.id)
        )
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = session.scalars(query).all()
        for row in rows:
            row.next_at = lease
        return [_Claimed(row.id, row.hub, row.topic, row.attempts) for row in rows]


def _requests(client: httpx.Client, settings: Settings, claimed: list[_Claimed]) -> dict[int, str | None]:
    """Each row's problem (None: accepted). A hub that gives no answer at all is not asked of
    its other feeds this time: they wait with the same problem, and the other hubs go on."""
    outcomes: dict[int, str | None] = {}
    silent: dict[str, str] = {}
    for row in claimed:
        if row.hub in silent:
            outcomes[row.id] = silent[row.hub]
            continue
        answered, problem = _publish(client, row.hub, row.topic, settings.fetch.timeout_seconds)
        outcomes[row.id] = problem
        if not answered and problem is not None:
            silent[row.hub] = problem
    return outcomes


def _publish(client: httpx.Client, hub: str, topic: str, seconds: float) -> tuple[bool, str | None]:
    """POST one publish notification; (whether the hub answered, the problem or None). The
    answer's body is never read; the whole exchange ends within `seconds`."""
    import httpx

    from newsletter.ingest.fetch import _DEADLINE

    deadline = _DEADLINE.set(time.monotonic() + seconds)  # fetch's own: the client's connections end by it
    try:
        with client.stream("POST", hub, data={"hub.mode": "publish", "hub.url": topic}) as response:
            if response.is_success:
                return True, None
            said = f"HTTP {response.status_code} {printable(response.reason_phrase)}".strip()
            return True, said[:PROBLEM_CHARS]
    except httpx.TimeoutException:
        return False, f"timed out after {seconds:g} s"
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
        return False, f"{type(exc).__name__}: {printable(str(exc))}"[:PROBLEM_CHARS]
    finally:
        _DEADLINE.reset(deadline)
