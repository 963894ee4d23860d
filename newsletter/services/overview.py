"""What needs a person's eye, in one call: feeds, readers, suppressions, articles, recent
editions, each job's next run, and the problems a monitoring system should hear of."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from newsletter.services import editions, feeds, subscribers, timetable
from newsletter.services.editions import EditionSummary
from newsletter.services.feeds import FeedState
from newsletter.services.subscribers import Unconfirmed
from newsletter.services.timetable import JobTime
from newsletter.store.db import reading
from newsletter.store.models import Article, Suppression
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import SubscriberStatus, SuppressionReason


@dataclass(frozen=True)
class Overview:
    feeds: list[FeedState]
    subscribers: dict[SubscriberStatus, int]
    unconfirmed: Unconfirmed  # pending past their confirmation link's life
    suppressions: dict[SuppressionReason, int]
    articles: int
    editions: list[EditionSummary]
    jobs: list[JobTime]
    problems: list[str]


def overview(runtime: Runtime, now: datetime, editions_shown: int = 10) -> Overview:
    with reading(runtime.factory) as session:
        articles = session.scalar(select(func.count()).select_from(Article)) or 0
        suppressed = session.execute(
            select(Suppression.reason, func.count()).group_by(Suppression.reason).order_by(Suppression.reason)
        ).all()
    waiting = subscribers.unconfirmed(runtime, now)
    return Overview(
        feeds.feed_states(runtime),
        subscribers.counts(runtime),
        waiting,
        {reason: count for reason, count in suppressed},
        articles,
        editions.editions(runtime, limit=editions_shown),
        timetable.jobs(runtime, now),
        timetable.problems(runtime, now) + waiting.problems(),
    )


def database_reachable(runtime: Runtime) -> bool:
    """For `/healthz`: the store answers a trivial query (whatever the driver raises, it does not)."""
    try:
        with reading(runtime.factory) as session:
            session.execute(select(1))
    except Exception as exc:  # any failure of the store is the one answer "unreachable"
        logging.getLogger("newsletter.health").error("the database is unreachable: %s", exc)
        return False
    return True
