"""What needs a person's eye, in one call: feeds, readers, articles, recent editions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from newsletter.services import editions, feeds, subscribers
from newsletter.services.editions import EditionSummary
from newsletter.services.feeds import FeedState
from newsletter.store.db import reading
from newsletter.store.models import Article
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import SubscriberStatus


@dataclass(frozen=True)
class Overview:
    feeds: list[FeedState]
    subscribers: dict[SubscriberStatus, int]
    articles: int
    editions: list[EditionSummary]


def overview(runtime: Runtime, editions_shown: int = 10) -> Overview:
    with reading(runtime.factory) as session:
        articles = session.scalar(select(func.count()).select_from(Article)) or 0
    return Overview(
        feeds.feed_states(runtime),
        subscribers.counts(runtime),
        articles,
        editions.editions(runtime, limit=editions_shown),
    )
