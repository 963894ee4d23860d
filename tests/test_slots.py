"""Slots across the site's changes of time: none twice, none lost, none ever after now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.editions.slots import last_slot, next_slot_after, slot_time, wall_clock

BRUSSELS = ZoneInfo("Europe/Brussels")


def slots_seen(days: str, at: str, start: datetime, hours: int) -> list[datetime]:
    """Every distinct slot `last_slot` gives, asked every five minutes from `start`."""
    seen: list[datetime] = []
    now = start
    while now < start + timedelta(hours=hours):
        slot = last_slot(days, at, BRUSSELS, now)
        assert slot.astimezone(UTC) <= now  # never a slot after now
        if not seen or slot != seen[-1]:
            seen.append(slot)
        now += timedelta(minutes=5)
    return seen


def test_the_spring_hour_loses_no_slot() -> None:
    """29 March 2026: 02:00 CET becomes 03:00 CEST; a 02:30 slot does not exist on the wall."""
    seen = slots_seen("*", "02:30", datetime(2026, 3, 28, 3, 0, tzinfo=UTC), 72)
    as_utc = [slot.astimezone(UTC).strftime("%m-%d %H:%M") for slot in seen]
    assert as_utc == ["03-28 01:30", "03-29 01:30", "03-30 00:30", "03-31 00:30"]
    assert seen[1].strftime("%H:%M %Z") == "03:30 CEST"  # where the wall clock would have been


def test_the_autumn_hour_fires_its_slot_once() -> None:
    """25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice on the wall."""
    seen = slots_seen("*", "02:30", datetime(2026, 10, 24, 3, 0, tzinfo=UTC), 72)
    as_utc = [slot.astimezone(UTC).strftime("%m-%d %H:%M") for slot in seen]
    assert as_utc == ["10-24 00:30", "10-25 00:30", "10-26 01:30", "10-27 01:30"]  # the first 02:30 only


def test_the_reported_spring_case_is_not_in_the_future() -> None:
    now = datetime(2026, 3, 29, 1, 15, tzinfo=UTC)
    assert last_slot("*", "02:30", BRUSSELS, now).astimezone(UTC) == datetime(2026, 3, 28, 1, 30, tzinfo=UTC)
    assert next_slot_after("*", "02:30", BRUSSELS, now).astimezone(UTC) == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC
    )


@pytest.mark.parametrize("days", ["*", "mon", "mon,thu", "fri-mon"])
@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
    ),
    at=st.sampled_from(["00:00", "01:30", "02:00", "02:30", "02:59", "03:00", "07:00", "23:59"]),
    zone=st.sampled_from(["Europe/Brussels", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]),
)
def test_last_and_next_slots_bracket_now(days: str, moment: datetime, at: str, zone: str) -> None:
    tz = ZoneInfo(zone)
    before, after = last_slot(days, at, tz, moment), next_slot_after(days, at, tz, moment)
    assert before.astimezone(UTC) <= moment < after.astimezone(UTC)
    assert next_slot_after(days, at, tz, before) == after  # nothing scheduled in between
    assert last_slot(days, at, tz, after.astimezone(UTC) - timedelta(microseconds=1)) == before


def test_every_printed_time_reads_the_sites_wall_clock_with_its_zone() -> None:
    assert wall_clock(datetime(2026, 11, 23, 6, 0, tzinfo=UTC), BRUSSELS) == "2026-11-23 07:00 CET"
    assert wall_clock(datetime(2026, 7, 1, 5, 30, tzinfo=UTC), BRUSSELS) == "2026-07-01 07:30 CEST"
    assert wall_clock(slot_time("2026-11-23T07:00", BRUSSELS)) == "2026-11-23 07:00 CET"  # its own zone
