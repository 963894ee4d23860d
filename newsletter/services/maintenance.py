"""Keeping the store tidy: what grows without end is pruned, what a person needs is kept."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from newsletter.editions.edition import FINISHED
from newsletter.store import ledger, limits
from newsletter.store.db import unit_of_work
from newsletter.store.models import Delivery, Edition
from newsletter.store.runtime import Runtime

BATCH = 500


@dataclass(frozen=True)
class Pruned:
    editions: int
    deliveries: int
    limit_hits: int


def prune(runtime: Runtime, now: datetime) -> Pruned:
    """Delivery rows of finished editions older than `[scheduler] retention_days` go, their
    counts kept on the edition (`newsletter editions` still shows them), and so do their outbox
    folders. A reader's history of articles goes with them: past the retention, no article is
    a candidate any more, so none can come twice. The pages' rate limits' hits whose window has
    passed go too."""
    settings = runtime.settings
    cutoff = now - timedelta(days=settings.scheduler.retention_days)
    editions = deliveries = 0
    while True:
        with unit_of_work(runtime.factory) as session:
            old = session.scalars(
                select(Edition)
                .where(Edition.window_end < cutoff, Edition.status.in_(FINISHED), Edition.tallies.is_(None))
                .limit(BATCH)
            ).all()
            if not old:
                break
            for edition in old:
                counts = ledger.counts(session, edition.id)
                edition.tallies = json.dumps({str(status): n for status, n in counts.items()}, sort_keys=True)
                deliveries += sum(counts.values())
                session.execute(delete(Delivery).where(Delivery.edition_id == edition.id))
            editions += len(old)
            pruned = [edition.id for edition in old]
        for edition_id in pruned:
            shutil.rmtree(settings.outbox_dir / f"edition-{edition_id}", ignore_errors=True)
    with unit_of_work(runtime.factory) as session:
        hits = limits.prune(session, now)
    return Pruned(editions, deliveries, hits)
