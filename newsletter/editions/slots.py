"""When editions go out: a newsletter's slots in the site's time zone. Pure date arithmetic."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def weekdays(spec: str) -> frozenset[int]:
    """'mon', 'mon,thu', 'mon-fri' or '*' as weekday numbers (Monday = 0); ValueError if bad."""
    spec = spec.strip().lower()
    if spec == "*":
        return frozenset(range(7))
    found: set[int] = set()
    for part in spec.split(","):
        ends = part.strip().split("-")
        if len(ends) > 2 or any(end not in DAY_NAMES for end in ends):
            raise ValueError(f"use day names like 'mon', 'mon,thu', 'mon-fri' or '*': {spec!r}")
        first, last = DAY_NAMES.index(ends[0]), DAY_NAMES.index(ends[-1])
        found.update(range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)])
    return frozenset(found)


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
