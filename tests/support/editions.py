"""An edition ready to send, and read back: its deliveries per status, the edition of a slot;
what sending tests start from and check (an edition sent to the outbox: tests/support/outbox.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from newsletter.editions.compose import Composer
from newsletter.editions.edition import open_edition
from newsletter.editions.prepare import prepare
from newsletter.store.db import unit_of_work
from newsletter.store.models import Article, Category, Delivery, Edition, Subscriber, SubscriberNewsletter
from newsletter.store.runtime import Runtime
from tests.conftest import WEEKLY_NOV_23

# The weekly of 23 November sent on time, ten minutes after its slot.
ON_TIME = WEEKLY_NOV_23.replace(minute=10)


def weekly_edition(runtime: Runtime, readers: int) -> int:
    """`readers` more weekly readers, and the weekly edition of 23 November prepared for all; its id."""
    with unit_of_work(runtime.factory) as session:
        for i in range(readers):
            reader = Subscriber(email=f"reader{i:04d}@example.com", status="active", language="en")
            reader.newsletters = [SubscriberNewsletter(newsletter="weekly")]
            session.add(reader)
    with unit_of_work(runtime.factory) as session:
        edition = open_edition(session, runtime.settings, "weekly", WEEKLY_NOV_23)
        prepare(session, runtime.settings, edition, Composer(runtime.settings.templates_path()))
        return edition.id


def tally(runtime: Runtime, edition_id: int) -> dict[str, int]:
    """The edition's deliveries per status that goes out (skipped and suppressed left out)."""
    with runtime.factory() as session:
        rows = session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.edition_id == edition_id, Delivery.status.not_in(("skipped", "suppressed")))
            .group_by(Delivery.status)
        ).all()
    return {str(status): n for status, n in rows}


def edition_of(runtime: Runtime, slot: str, newsletter: str = "weekly") -> Edition:
    """The newsletter's edition of that slot (2026-11-23T07:00)."""
    with runtime.factory() as session:
        return session.scalars(
            select(Edition).where(Edition.slot == slot, Edition.newsletter == newsletter)
        ).one()


def tracked(runtime: Runtime) -> None:
    """Click tracking on: article links go through the pages' /c/ links."""
    settings = runtime.settings
    runtime.settings = settings.model_copy(
        update={"links": settings.links.model_copy(update={"track_clicks": True})}
    )


def publish(runtime: Runtime, at: datetime, title: str = "Late news, after the review") -> int:
    """A politics article published at `at`, as a fetch would store it; its id."""
    with unit_of_work(runtime.factory) as session:
        politics = session.scalars(select(Category).where(Category.slug == "politics")).one()
        url = f"https://www.europeantimes.example/{'-'.join(title.lower().split())}"
        article = Article(
            key=url, language="en", url=url, title=title, published_at=at, categories=[politics]
        )
        session.add(article)
        session.flush()
        return article.id
