"""A clock the tests set: every entry point takes its time from one, so a test means the same on a
Monday after a slot, on a DST night and on 31 December."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# Sunday near midnight, late in a weekly window (Mondays 07:00, Brussels) and hours from any slot, DST
# change or year's end, so no test depends on the day the suite runs.
NOW = datetime(2026, 11, 29, 23, 0, tzinfo=UTC)


class FixedClock:
    """Stands still until a test moves it."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
