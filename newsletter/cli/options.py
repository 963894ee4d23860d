"""Options several commands share, and reading a moment given on the command line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from newsletter.errors import InputError
from newsletter.settings import Settings

# `--at` years: wide for any real use, narrow enough that windows and slots around the moment
# (days or a century of `trending --days` away) stay within what dates and databases can hold.
FIRST_YEAR, LAST_YEAR = 1970, 9000

NewsletterOption = Annotated[str, typer.Option("--newsletter", "-n", help="Which newsletter.")]
AtOption = Annotated[
    str | None,
    typer.Option(help="Act as of this time (ISO 8601; local to the site's time zone if no offset)."),
]


def moment(settings: Settings, at: str | None) -> datetime:
    """`--at` as an aware time (the site's zone when no offset is given); now when absent."""
    if at is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(at)
    except ValueError:
        raise InputError("--at", f"not an ISO 8601 time: {at!r}") from None
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise InputError("--at", f"{at!r} is out of range: use a time from {FIRST_YEAR} to {LAST_YEAR}")
    return value if value.tzinfo else value.replace(tzinfo=settings.zone)
