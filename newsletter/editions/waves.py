"""A local-time edition's waves: each reader gets the edition of a slot at the newsletter's `at`
in their own zone, on the slot's date. Pure date arithmetic, the slots' own (`slots.slot_on`):
an hour the spring change skips goes at the instant the wall clock would have shown it, one the
autumn change repeats goes once, at its first occurrence."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.editions.slots import slot_on
from newsletter.settings import Settings
from newsletter.store import waves
from newsletter.store.models import Subscriber
from newsletter.subscribers.zones import zone_of


def moment(slot: str, at: str, zone: ZoneInfo) -> datetime:
    """When a reader in `zone` gets the edition of `slot` (its name, on the site's date), in UTC."""
    return slot_on(date.fromisoformat(slot.split("T", 1)[0]), at, zone).astimezone(UTC)


def moments(slot: str, at: str, zones: Iterable[str | None], site: ZoneInfo) -> dict[str | None, datetime]:
    """Each stored zone's moment (None, or a name the system no longer knows: the site's)."""
    return {name: moment(slot, at, zone_of(name, site)) for name in zones}


def follow(session: Session, settings: Settings, subscriber_id: int, now: datetime | None = None) -> None:
    """A reader who changed zone (as stored now) gets each edition still waiting for their wave
    at their new hour; one that has passed already, at the next wake (from `now`, when given:
    not missed)."""
    zone = session.scalar(select(Subscriber.timezone).where(Subscriber.id == subscriber_id))
    for delivery_id, newsletter, slot in waves.waiting(session, subscriber_id):
        config = settings.newsletters.get(newsletter)
        if config is not None and config.local_time:
            when = moment(slot, config.at, zone_of(zone, settings.zone))
            waves.retime(session, delivery_id, max(when, now) if now is not None else when)
