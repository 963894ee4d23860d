"""A reader's time zone: an IANA name (`Europe/Lisbon`) checked against the zones the system
knows, kept as that name's own spelling; none kept means the site's zone, whatever it becomes."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

# Longer than any IANA name (the longest is 32): a longer cell is refused before any lookup.
MAX_NAME = 64
# The regions a reader chooses among (the old aliases, `US/Eastern`, `Etc/GMT+5`, are not offered).
REGIONS = ("Africa", "America", "Antarctica", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific")


@lru_cache(maxsize=1)
def _known() -> dict[str, str]:
    """Every zone the system knows, by its lower-case spelling (read once: it walks the tz database)."""
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def reader_zone(value: str | None) -> str | None:
    """A reader's zone as stored: the IANA name (any case, spaces as underscores), or None for an
    empty value (the site's zone); ValueError names what is wrong without echoing the value."""
    given = (value or "").strip()
    if not given:
        return None
    if len(given) > MAX_NAME:
        raise ValueError("time zone is not an IANA name like 'Europe/Lisbon'")
    name = _known().get(given.lower().replace(" ", "_"))
    if name is None:
        raise ValueError("time zone is not an IANA name like 'Europe/Lisbon'")
    return name


def zone_of(stored: str | None, site: zoneinfo.ZoneInfo) -> zoneinfo.ZoneInfo:
    """The zone a reader's editions are timed in: theirs, else the site's (a name the system no
    longer knows, after an update of its tz data, falls back to the site's too)."""
    if not stored:
        return site
    try:
        return zoneinfo.ZoneInfo(stored)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return site


@lru_cache(maxsize=4)
def zone_choices(site: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The zones a reader may pick, grouped by region in name order: the site's zone first, as
    a group of its own, then UTC and each region's cities."""
    grouped: dict[str, list[str]] = {region: [] for region in REGIONS}
    for name in sorted(_known().values()):
        region = name.split("/", 1)[0]
        if region in grouped and "/" in name:
            grouped[region].append(name)
    return (
        (site, (site,)),
        ("UTC", ("UTC",)),
        *((region, tuple(names)) for region, names in grouped.items()),
    )
