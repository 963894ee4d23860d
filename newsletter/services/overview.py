"""What needs a person's eye, in one call: feeds, readers, suppressions, articles, recent
editions, each job's next run, and the problems a monitoring system should hear of."""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from newsletter.errors import SettingsError
from newsletter.services import editions, feeds, subscribers, timetable
from newsletter.services.editions import EditionSummary
from newsletter.services.feeds import FeedState
from newsletter.services.subscribers import Unconfirmed
from newsletter.services.timetable import JobTime
from newsletter.settings import plain_http
from newsletter.store.db import reading
from newsletter.store.models import Article, Suppression
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import SubscriberStatus, SuppressionReason
from newsletter.text import display_url


@dataclass(frozen=True)
class Overview:
    store: str  # the database, a password in its URL masked
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
        runtime.settings.database_label(),
        configured_feeds(runtime),
        subscribers.counts(runtime),
        waiting,
        {reason: count for reason, count in suppressed},
        articles,
        editions.editions(runtime, limit=editions_shown),
        timetable.jobs(runtime, now),
        settings_problems(runtime) + timetable.problems(runtime, now) + waiting.problems(),
    )


def configured_feeds(runtime: Runtime) -> list[FeedState]:
    """The feeds as the store knows them, then each configured feed not fetched yet: a new
    site's status lists what it will read."""
    known = feeds.feed_states(runtime)
    shown = {feed.url for feed in known}
    unread = (display_url(feed.url) for feed in runtime.settings.feeds)
    return known + [FeedState(url, None, None, None, None, 0, None) for url in unread if url not in shown]


def settings_problems(runtime: Runtime) -> list[str]:
    """What the settings leave wrong, heard before a send fails or a reader misses an edition: no
    secret key (or a placeholder outside the demo), links that are not HTTPS, readers taking a
    newsletter the settings do not define."""
    settings = runtime.settings
    found = []
    try:
        settings.signing_key()
    except SettingsError as exc:
        found.append(f"nothing can be sent: {exc.problem}")
    if plain := plain_http(settings):
        found.append(plain)
    for name, count in subscribers.undefined_newsletters(runtime).items():
        guess = difflib.get_close_matches(name, list(settings.newsletters), n=1)
        meant = f" (a [newsletters.{guess[0]}] is: renamed or misspelt?)" if guess else ""
        found.append(
            f"{count} active reader{'' if count == 1 else 's'} take{'s' if count == 1 else ''} the "
            f"{name} newsletter, which the settings do not define{meant}: nobody sends it to them"
        )
    return found


def database_reachable(runtime: Runtime) -> bool:
    """For `/healthz`: the store answers a trivial query (whatever the driver raises, it does not)."""
    try:
        with reading(runtime.factory) as session:
            session.execute(select(1))
    except Exception as exc:  # any failure of the store is the one answer "unreachable"
        logging.getLogger("newsletter.health").error("the database is unreachable: %s", exc)
        return False
    return True
