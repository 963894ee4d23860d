"""Options several commands share, and reading a moment given on the command line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from newsletter.errors import SettingsError
from newsletter.settings import Settings

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
        raise SettingsError("--at", f"not an ISO 8601 time: {at!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=settings.zone)
