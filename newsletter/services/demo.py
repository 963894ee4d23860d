"""The bundled demo: which edition to send from a dated sample, and where its messages went."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from newsletter.editions.slots import last_slot, slot_name
from newsletter.errors import NewsletterError
from newsletter.store.db import reading
from newsletter.store.models import Article, Edition
from newsletter.store.runtime import Runtime


def demo_moment(runtime: Runtime) -> datetime:
    """The sample is dated: act as at the first weekly slot after its newest article, as if on time."""
    with reading(runtime.factory) as session:
        newest = session.scalar(select(func.max(Article.published_at)))
    if newest is None:
        raise NewsletterError("no articles were stored: the demo has nothing to send")
    settings = runtime.settings
    weekly = settings.newsletter("weekly")
    return last_slot(weekly.days, weekly.at, settings.zone, newest + timedelta(days=7))


def demo_edition(runtime: Runtime, moment: datetime) -> int | None:
    """The demo's edition when an earlier run made it: run again, it is resumed, not sent anew."""
    with reading(runtime.factory) as session:
        return session.scalar(
            select(Edition.id).where(Edition.newsletter == "weekly", Edition.slot == slot_name(moment))
        )


def outbox_messages(runtime: Runtime, edition_id: int) -> tuple[Path, list[Path]]:
    """The outbox folder of an edition and the messages in it."""
    folder = runtime.settings.outbox_dir / f"edition-{edition_id}"
    return folder, sorted(folder.glob("*.eml")) if folder.is_dir() else []
