"""When editions go out: a newsletter's slots in the site's time zone. Pure date arithmetic."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from newsletter.settings import weekdays


def last_slot(days: str, at: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The latest scheduled time at or before `now` (aware, in `zone`)."""
    allowed = weekdays(days)
    hour, minute = (int(part) for part in at.split(":"))
    local_now = now.astimezone(zone)
    for back in range(8):
        day: date = local_now.date() - timedelta(days=back)
        candidate = datetime.combine(day, time(hour, minute), zone)
        if day.weekday() in allowed and candidate <= local_now:
            return candidate
    raise AssertionError("every weekly schedule has a slot within eight days")


def slot_name(slot: datetime) -> str:
    """A slot's stable name, unique per newsletter: its local start, to the minute."""
    return slot.strftime("%Y-%m-%dT%H:%M")
