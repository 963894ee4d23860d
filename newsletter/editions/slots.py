"""When editions go out: a newsletter's slots in the site's time zone. Pure date arithmetic.

A slot is a wall-clock time on the chosen days. Where a change of time makes it ambiguous or
absent, it is one real instant all the same: in the autumn hour that repeats, the first
occurrence (so no slot fires twice); in the spring hour that is skipped, the instant the wall
clock would have shown it before the change (so no slot is lost). Times are compared as
instants (UTC), never as wall-clock values, which Python compares naively within one zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from newsletter.settings import weekdays


def slot_on(day: date, at: str, zone: ZoneInfo) -> datetime:
    """The instant of the slot `at` (HH:MM) on `day`, in `zone`, shown as the wall clock reads it."""
    hour, minute = (int(part) for part in at.split(":"))
    wall = datetime.combine(day, time(hour, minute), zone)  # fold=0: the first of a repeated hour
    return wall.astimezone(UTC).astimezone(zone)  # a skipped time becomes the real instant


def last_slot(days: str, at: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The latest scheduled time at or before `now` (aware, in `zone`)."""
    allowed = weekdays(days)
    instant = now.astimezone(UTC)
    today = now.astimezone(zone).date()
    for back in range(9):
        day = today - timedelta(days=back)
        candidate = slot_on(day, at, zone)
        if day.weekday() in allowed and candidate.astimezone(UTC) <= instant:
            return candidate
    raise AssertionError("every weekly schedule has a slot within eight days")


def next_slot_after(days: str, at: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The first scheduled time strictly after `now` (aware, in `zone`)."""
    allowed = weekdays(days)
    instant = now.astimezone(UTC)
    today = now.astimezone(zone).date()
    for ahead in range(9):
        day = today + timedelta(days=ahead)
        candidate = slot_on(day, at, zone)
        if day.weekday() in allowed and candidate.astimezone(UTC) > instant:
            return candidate
    raise AssertionError("every weekly schedule has a slot within eight days")


def wall_clock(moment: datetime, zone: tzinfo | None = None) -> str:
    """A moment as people at the site read it, the zone named ('2026-11-23 07:00 CET'): in
    `zone` (the site's), or in the zone it carries (a slot already is in the site's)."""
    return f"{moment if zone is None else moment.astimezone(zone):%Y-%m-%d %H:%M %Z}"


def slot_name(slot: datetime) -> str:
    """A slot's stable name, unique per newsletter: its local start, to the minute."""
    return slot.strftime("%Y-%m-%dT%H:%M")


def slot_time(name: str, zone: ZoneInfo) -> datetime:
    """The instant a slot's name stands for (`slot_name` undone): an edition composed early for
    review has a window that ends before its slot, so the slot is read from its name."""
    day, at = name[:16].split("T")  # an alert's slot names its article after the minute
    return slot_on(date.fromisoformat(day), at, zone)
