"""Options several commands share, each checked where it is read so an error names the option."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from newsletter import logs
from newsletter.cli.state import state
from newsletter.errors import InputError

if TYPE_CHECKING:  # the root's options come from here: `--help` must not load the settings
    from newsletter.settings import Settings

# `--at` years: wide for any real use, narrow enough that windows and slots around the moment
# (days or a century of `trending --days` away) stay within what dates and databases can hold.
FIRST_YEAR, LAST_YEAR = 1970, 9000
# `-` for a file means standard input or output.
STANDARD = Path("-")


def use_config(ctx: typer.Context, value: Path | None) -> None:
    """The settings file; given after the command, it wins over one given before."""
    if value is None:
        return
    if not value.is_file():
        raise InputError("--config", f"no such file: {value}")
    state(ctx).config = value


def use_verbose(ctx: typer.Context, value: bool) -> None:
    if value and not state(ctx).verbose:
        state(ctx).verbose = True
        logs.configure(verbose=True)


# Eager: read before the other options, whose checks may need the settings.
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Settings file (default: $NEWSLETTER_CONFIG, else config/newsletter.toml under home).",
        is_eager=True,
        expose_value=False,
        callback=use_config,
    ),
]
VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="Debug logging.", is_eager=True, expose_value=False, callback=use_verbose
    ),
]


def known_newsletter(ctx: typer.Context, value: str) -> str:
    """A newsletter the settings define."""
    if ctx.resilient_parsing:
        return value
    configured = state(ctx).settings.newsletters
    if value not in configured:
        known = ", ".join(sorted(configured)) or "none"
        raise InputError("-n/--newsletter", f"no newsletter {value!r} (configured: {known})")
    return value


def digest_newsletter(ctx: typer.Context, value: str) -> str:
    """A newsletter with editions on a schedule: the next edition's commands (preview, checks,
    test-send, picks, notes, holds) have none to show for an alert newsletter."""
    value = known_newsletter(ctx, value)
    if not ctx.resilient_parsing and state(ctx).settings.newsletter(value).is_alert:
        raise InputError(
            "-n/--newsletter",
            f"{value} is an alert newsletter: it has no next edition "
            f"(see one alert as sent with `newsletter alert ARTICLE -n {value} --dry-run`)",
        )
    return value


def optional_newsletter(ctx: typer.Context, value: str | None) -> str | None:
    """`-n/--newsletter` checked as every command checks it, but with no default."""
    return None if value is None else known_newsletter(ctx, value)


def known_language(value: str | None) -> str | None:
    """A language as the store keeps it ('pt-BR' -> 'pt')."""
    if value is None:
        return None
    from newsletter.settings import language_code

    try:
        return language_code(value)
    except ValueError:
        raise InputError(
            "--language", f"not a known language code: {value!r} (use one like 'en', 'de' or 'pt-BR')"
        ) from None


def known_zone(value: str | None) -> str | None:
    """A reader's time zone as the store keeps it ('europe/lisbon' -> 'Europe/Lisbon'); an empty
    one is kept as empty: the site's zone."""
    if value is None:
        return None
    from newsletter.subscribers.zones import reader_zone

    try:
        return reader_zone(value) or ""
    except ValueError:
        raise InputError(
            "--timezone", f"not a time zone: {value!r} (use an IANA name like 'Europe/Lisbon')"
        ) from None


def mailbox(value: str | None) -> str | None:
    """One plain email address, normalized."""
    if value is None:
        return None
    from newsletter.subscribers.addresses import InvalidAddress, normalize_email

    try:
        return normalize_email(value)
    except InvalidAddress as exc:
        raise InputError("--to", str(exc)) from None


NewsletterOption = Annotated[
    str, typer.Option("--newsletter", "-n", help="Which newsletter.", callback=digest_newsletter)
]
AtOption = Annotated[
    str | None,
    typer.Option(help="Act as of this time (ISO 8601; local to the site's time zone if no offset)."),
]
LanguageOption = Annotated[
    str | None, typer.Option(help="The reader's language (e.g. en, de).", callback=known_language)
]
TimezoneOption = Annotated[
    str | None,
    typer.Option(
        "--timezone",
        help="The reader's time zone, an IANA name (e.g. Europe/Lisbon); empty: the site's.",
        callback=known_zone,
    ),
]
CategoriesOption = Annotated[
    list[str] | None, typer.Option("--category", help="A category the reader chose; repeat for more.")
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="JSON on standard output (stable keys, ISO 8601 times).")
]
HostOption = Annotated[
    str, typer.Option("--host", help="Address to listen on (behind a reverse proxy: loopback).")
]
PortOption = Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")]


def moment(settings: Settings, at: str | None) -> datetime:
    """`--at` as an aware time (the site's zone when no offset is given); now when absent."""
    if at is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(at)
    except ValueError:
        raise InputError("--at", f"not a time: {at!r} (use ISO 8601, e.g. 2026-11-23T07:00)") from None
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise InputError("--at", f"{at!r} is out of range: use a time from {FIRST_YEAR} to {LAST_YEAR}")
    return value if value.tzinfo else value.replace(tzinfo=settings.zone)
