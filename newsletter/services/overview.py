"""What needs a person's eye, in one read: feeds, readers, articles, recent editions."""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.services import editions, feeds, subscribers
from newsletter.services.editions import EditionSummary
from newsletter.services.feeds import FeedState
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import SubscriberStatus


@dataclass(frozen=True)
class Overview:
    feeds: list[FeedState]
    subscribers: dict[SubscriberStatus, int]
    articles: int
    editions: list[EditionSummary]


def overview(runtime: Runtime, editions_shown: int = 10) -> Overview:
    return Overview(
        feeds.feed_states(runtime),
        subscribers.counts(runtime),
        sum(count for _language, count in feeds.stored_articles(runtime).by_language),
        editions.editions(runtime, limit=editions_shown),
    )
