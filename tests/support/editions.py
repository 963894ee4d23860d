"""An edition ready to send, and its deliveries per status: what sending tests start from and check."""

from __future__ import annotations

from sqlalchemy import func, select

from newsletter.editions.compose import Composer
from newsletter.editions.edition import open_edition
from newsletter.editions.prepare import prepare
from newsletter.store.db import unit_of_work
from newsletter.store.models import Delivery, Subscriber, SubscriberNewsletter
from newsletter.store.runtime import Runtime
from tests.conftest import WEEKLY_NOV_23


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
