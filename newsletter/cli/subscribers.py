"""`newsletter subscribers ...`: one reader at a time (add, remove, list, show, forget), or in bulk
(CSV import and export; `-` is standard input or output)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.table import Table
from rich.text import Text

from newsletter.cli.options import (
    STANDARD,
    JsonOption,
    LanguageOption,
    TimezoneOption,
    optional_newsletter,
)
from newsletter.cli.output import emit_json, err, iso, line, local, out, outside, where
from newsletter.cli.state import state
from newsletter.errors import InputError, NewsletterError
from newsletter.services import confirmations, subscribers
from newsletter.services.subscribers import LINK_LIFETIME, ReaderRecord, ReaderRow
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import ENDED, DeliveryStatus, SubscriberStatus
from newsletter.subscribers.addresses import InvalidAddress, normalize_email
from newsletter.subscribers.bulk import ImportReport, ImportStopped
from newsletter.text import printable

subscribers_app = typer.Typer(
    help="Subscribers: one reader at a time, or in bulk (CSV import and export).", no_args_is_help=True
)
# What the store keeps of a name (Subscriber.name).
MAX_NAME = 300


@subscribers_app.command("import")
def subscribers_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A CSV file with an email column (`-`: standard input).")],
    confirmed: Annotated[
        bool,
        typer.Option(
            "--confirmed",
            help="These readers opted in (double opt-in done elsewhere): rows may make them active.",
        ),
    ] = False,
    send_confirmation: Annotated[
        bool,
        typer.Option(
            "--send-confirmation",
            help="Mail each reader left pending the confirmation link (at most once per link lifetime, "
            "7 days; paced).",
        ),
    ] = False,
    newsletters: Annotated[
        list[str] | None,
        typer.Option(
            "--newsletters",
            help="What a new reader whose newsletters cell is empty takes, comma-separated or "
            "repeated (default: every newsletter the site sends).",
        ),
    ] = None,
) -> None:
    """Add or update subscribers from a CSV; bad rows are reported and kept aside, never lost.

    A reader left pending gets nothing until they confirm: --confirmed makes the file's readers
    active (they opted in elsewhere), --send-confirmation mails each pending one the link."""
    wanted = _names(newsletters, "--newsletters")
    if wanted and (unknown := [n for n in wanted if n not in state(ctx).settings.newsletters]):
        known = ", ".join(state(ctx).settings.newsletters)
        raise InputError("--newsletters", f"no newsletter {unknown[0]!r} (configured: {known})")
    if send_confirmation:  # a setting the mails need is wrong: told before the store is touched
        confirmations.check_settings(state(ctx).settings)
    runtime = state(ctx).runtime()
    where(state(ctx).config, runtime.settings)
    report = import_and_show(
        runtime, path, confirmed=confirmed, send_confirmation=send_confirmation, newsletters=wanted
    )
    again = "import the same list again" if path == STANDARD else "import the same file again"
    unsent = send_and_show(runtime, report.pending, again) if send_confirmation else False
    if report.rejected or unsent:
        raise typer.Exit(1)


def import_and_show(
    runtime: Runtime,
    path: Path,
    *,
    confirmed: bool = False,
    send_confirmation: bool = False,
    newsletters: list[str] | None = None,
) -> ImportReport:
    """Import and print the outcome, and what becomes of the readers left pending (told of
    the two options unless `send_confirmation`); shared with `newsletter demo`."""
    source = sys.stdin.buffer if path == STANDARD else path
    name = "standard input" if path == STANDARD else str(path)
    try:
        report = subscribers.import_file(runtime, source, confirmed=confirmed, newsletters=newsletters)
    except ImportStopped as stopped:  # the store failed: what the chunks before it committed stays
        again = "list" if path == STANDARD else "file"
        line(
            f"{name}: stopped after line {stopped.line}; committed up to there: {_counts(stopped.report)}. "
            f"Import the same {again} again to finish: what is stored counts as unchanged.",
            to=err,
        )
        raise stopped.__cause__ or stopped from None
    line(f"{name}: {_counts(report)}")
    if report.activated:
        one = report.activated == 1
        who = (
            "1 reader who had not confirmed is"
            if one
            else f"{report.activated} readers who had not confirmed are"
        )
        line(f"{who} now active (--confirmed: they opted in elsewhere)")
    for number, _raw, error in report.rejected:
        err.print(outside(f"  line {number}: {error}"), soft_wrap=True)
    if report.rejects_file:
        line(f"rejected rows written to {report.rejects_file}, with the reason for each", to=err)
    if report.pending and not send_confirmation:
        waiting = len(report.pending)
        source = "list" if path == STANDARD else "file"  # standard input is no file to name
        options = "" if confirmed else ", or with --confirmed if they opted in elsewhere (active at once)"
        line(
            f"{waiting} {'reader is' if waiting == 1 else 'readers are'} pending: they get nothing until "
            f"they confirm, and this import mailed nobody. Import the {source} again with "
            f"--send-confirmation to mail each one the confirmation link{options}."
        )
    return report


def _counts(report: ImportReport) -> str:
    return (
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.kept} kept as they were (unsubscribed or suppressed), {len(report.rejected)} rejected"
    )


def send_and_show(runtime: Runtime, pending: list[int], again: str) -> bool:
    """Mail the confirmation links and print the outcome; True when some could not go, then
    `again` (what the operator runs again) is told. Those the relay took without answering are
    told apart: they may be sent a new link once theirs has expired."""
    done = confirmations.send_confirmations(runtime, pending, datetime.now(UTC))
    days = LINK_LIFETIME.days
    line(
        f"confirmation emails: {done.sent} sent, {done.uncertain} may not have arrived (the relay did "
        f"not answer), {done.already} not sent again (a link went to them in the last {days} days), "
        f"{done.failed} failed"
    )
    if done.uncertain:
        line(
            f"those that may not have arrived are not sent again now (their link may be in the mailbox): "
            f"{again} with --send-confirmation once {days} days have passed to mail a new link to any "
            "still pending",
            to=err,
        )
    if done.stopped:
        line(f"the provider refuses to send: {printable(done.stopped)}", to=err)
        line(f"{done.untried} readers were not tried", to=err)
    if done.failed or done.untried:
        line(f"{again} with --send-confirmation to mail those not sent", to=err)
    return bool(done.failed or done.untried)


@subscribers_app.command("export")
def subscribers_export(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Where to write the CSV (`-`: standard output).")],
) -> None:
    """Write every subscriber to a CSV in the import format."""
    runtime = state(ctx).runtime()
    if path != STANDARD:
        count = subscribers.export_file(runtime, path)
        line(f"{count} subscribers written to {path}")
        return
    # The service writes to a path: through a temporary file, so standard output gets only the CSV.
    with tempfile.TemporaryDirectory() as folder:
        written = Path(folder) / "subscribers.csv"
        count = subscribers.export_file(runtime, written)
        with written.open("rb") as source:
            shutil.copyfileobj(source, sys.stdout.buffer)
    sys.stdout.flush()
    line(f"{count} subscribers written to standard output", to=err)


def _mailbox(value: str) -> str:
    """The address as the store keeps it, checked before anything is read or asked."""
    try:
        return normalize_email(value)
    except InvalidAddress as exc:
        raise InputError("EMAIL", str(exc)) from None


EmailArgument = Annotated[
    str, typer.Argument(metavar="EMAIL", help="The reader's address.", callback=_mailbox)
]


def _names(values: list[str] | None, option: str) -> list[str] | None:
    """`--newsletters weekly,daily` and `--newsletters weekly --newsletters daily` alike."""
    if values is None:
        return None
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not names:
        raise InputError(option, "name at least one")
    return list(dict.fromkeys(names))


def _name(value: str | None) -> str | None:
    """A display name on one line, as the sign-up form keeps it."""
    if value is None:
        return None
    name = " ".join(printable(value).split())
    if len(name) > MAX_NAME:
        raise InputError("--name", f"longer than {MAX_NAME} characters")
    return name or None


def _stored(runtime: Runtime, address: str) -> ReaderRecord | None:
    """The reader as stored, or None when the address is not on the list."""
    try:
        return subscribers.show(runtime, address)
    except NewsletterError:  # the only refusal `show` makes of a checked address: no such reader
        return None


@subscribers_app.command("add")
def subscribers_add(
    ctx: typer.Context,
    email: EmailArgument,
    name: Annotated[str | None, typer.Option("--name", help="The reader's name.")] = None,
    newsletters: Annotated[
        list[str] | None,
        typer.Option(
            "--newsletters",
            help="Newsletters to take, comma-separated or repeated (default: a new reader takes "
            "every newsletter the site sends, a known one keeps theirs).",
        ),
    ] = None,
    categories: Annotated[
        list[str] | None,
        typer.Option("--categories", help="Sections the reader chose, comma-separated or repeated."),
    ] = None,
    language: LanguageOption = None,
    timezone: TimezoneOption = None,
) -> None:
    """Add a reader who opted in elsewhere, or update one: active at once.

    The operator vouches for the consent, recorded as given on the command line. A suppressed
    address, or a reader who left, is refused: only they can come back."""
    named, wanted, chosen = (
        _name(name),
        _names(newsletters, "--newsletters"),
        _names(categories, "--categories"),
    )
    runtime = state(ctx).runtime()
    known = _stored(runtime, email)
    if known is not None and known.suppression is None and known.row.status not in ENDED:
        # Only the reader takes back a newsletter they left (the service would record a consent
        # and change nothing); and choices not given on the command line stay as they are.
        if left := [n for n in wanted or [] if n in known.row.left]:
            raise NewsletterError(
                f"{email} left the {left[0]} newsletter: only the reader can take it again "
                "(sign-up or preferences page)"
            )
        chosen = known.row.categories if chosen is None else chosen
    try:
        row = subscribers.add(runtime, email, datetime.now(UTC), named, wanted, chosen, language, timezone)
    except InputError as exc:
        if exc.name != "categories":
            raise
        raise InputError("--categories", exc.problem) from None  # named as the command line spells it
    line(f"{'updated' if known else 'added'} {_summary(row)}")


SITE_ZONE = "the site's"  # a reader who chose no zone


def _summary(row: ReaderRow) -> str:
    takes = ", ".join(row.newsletters) or "no newsletter"
    left = f"; left {', '.join(row.left)}" if row.left else ""
    chose = ", ".join(row.categories) or "every section"
    return (
        f"{row.email}: {row.status}, takes {takes}{left}; language {row.language}; "
        f"time zone {row.timezone or SITE_ZONE}; categories {chose}"
    )


@subscribers_app.command("remove")
def subscribers_remove(
    ctx: typer.Context,
    email: EmailArgument,
    newsletter: Annotated[
        str | None,
        typer.Option(
            "--newsletter",
            "-n",
            help="Only this newsletter (default: every one, and the address is suppressed).",
            callback=optional_newsletter,
        ),
    ] = None,
) -> None:
    """Unsubscribe a reader from one newsletter, or from all.

    From all, the address is also suppressed, so no later import brings it back; either way
    it is recorded as done on the command line."""
    runtime = state(ctx).runtime()
    record = subscribers.show(runtime, email)  # an unknown address is told before anything changes
    if newsletter is not None and newsletter in record.row.left:
        line(f"{email} already left the {newsletter} newsletter; nothing changed")
        return
    if newsletter is not None and newsletter not in record.row.newsletters:
        takes = ", ".join(record.row.newsletters) or "none"
        raise NewsletterError(f"{email} does not take the {newsletter} newsletter (takes: {takes})")
    row = subscribers.remove(runtime, email, datetime.now(UTC), newsletter)
    if newsletter is None:
        line(f"{email} unsubscribed from every newsletter and suppressed: no import brings it back")
    else:
        line(f"{email} left the {newsletter} newsletter; still takes {', '.join(row.newsletters) or 'none'}")


@subscribers_app.command("list")
def subscribers_list(
    ctx: typer.Context,
    status: Annotated[SubscriberStatus | None, typer.Option(help="Only readers in this status.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many, by address.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Readers by address, with their status, newsletters, language and categories."""
    zone = state(ctx).settings.zone
    rows = subscribers.readers(state(ctx).runtime(), status, limit)
    if as_json:
        emit_json([_row_json(row, zone) for row in rows])
        return
    if not rows:
        line("no subscribers" if status is None else f"no {status} subscribers")
        return
    table = Table(title="Subscribers")
    for column in ("address", "name", "status", "newsletters", "left", "language", "categories", "since"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            outside(row.email),
            outside(row.name or ""),
            row.status,
            outside(", ".join(row.newsletters)),
            outside(", ".join(row.left)),
            outside(row.language),
            outside(", ".join(row.categories)),
            local(row.created_at, zone),
        )
    out.print(table)


def _row_json(row: ReaderRow, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "email": row.email,
        "name": row.name,
        "status": row.status.value,
        "language": row.language,
        "timezone": row.timezone,
        "newsletters": row.newsletters,
        "left": row.left,
        "categories": row.categories,
        "created_at": iso(row.created_at, zone),
    }


@subscribers_app.command("show")
def subscribers_show(ctx: typer.Context, email: EmailArgument, as_json: JsonOption = False) -> None:
    """Everything stored about one reader: what a data subject access request asks for.

    Subscriptions with their times and sources, consents, deliveries per status, suppression."""
    zone = state(ctx).settings.zone
    record = subscribers.show(state(ctx).runtime(), email)
    row = record.row
    if as_json:
        emit_json(
            {
                **_row_json(row, zone),
                "confirmed_at": iso(record.confirmed_at, zone),
                "unsubscribed_at": iso(record.unsubscribed_at, zone),
                "subscriptions": [_timed(entry, zone) for entry in _by_newsletter(record)],
                "consents": [_timed(entry, zone) for entry in record.consents],
                "deliveries": {status.value: record.deliveries.get(status, 0) for status in DeliveryStatus},
                "suppression": record.suppression,
            }
        )
        return
    line(row.email)
    line(f"name: {row.name or 'none given'}")
    line(f"status: {row.status}; language {row.language}; categories {', '.join(row.categories) or 'all'}")
    line(f"time zone: {row.timezone or f'{SITE_ZONE} ({zone.key})'}")
    line(
        f"added {local(row.created_at, zone)}; confirmed {local(record.confirmed_at, zone) or 'never'}; "
        f"unsubscribed {local(record.unsubscribed_at, zone) or 'never'}"
    )
    line(f"suppressed: {record.suppression or 'no'}")
    delivered = ", ".join(f"{n} {s}" for s, n in sorted(record.deliveries.items()) if n)
    line(f"deliveries: {delivered or 'none'}")
    out.print(_table("Subscriptions", SUBSCRIPTION_COLUMNS, _by_newsletter(record), zone))
    out.print(_table("Consents", CONSENT_COLUMNS, record.consents, zone))


# Each table's columns: the service's key, the heading.
SUBSCRIPTION_COLUMNS = {
    "newsletter": "newsletter",
    "status": "status",
    "subscribed_at": "subscribed",
    "unsubscribed_at": "left",
    "paused_until": "paused until",
    "source": "source",
}
CONSENT_COLUMNS = {
    "at": "at",
    "action": "action",
    "source": "source",
    "wording": "wording",
    "detail": "detail",
}


def _by_newsletter(record: ReaderRecord) -> list[dict[str, object]]:
    return sorted(record.subscriptions, key=lambda entry: str(entry["newsletter"]))


def _timed(entry: dict[str, object], zone: ZoneInfo) -> dict[str, object]:
    """A service's record for JSON: times in ISO 8601 with the site's offset."""
    return {key: iso(value, zone) if isinstance(value, datetime) else value for key, value in entry.items()}


def _table(title: str, columns: dict[str, str], entries: list[dict[str, object]], zone: ZoneInfo) -> Table:
    table = Table(title=title)
    for heading in columns.values():
        table.add_column(heading, overflow="fold")
    for entry in entries:
        table.add_row(*(_cell(entry.get(key), zone) for key in columns))
    return table


def _cell(value: object, zone: ZoneInfo) -> Text:
    if isinstance(value, datetime):
        return Text(local(value, zone))
    return outside("" if value is None else str(value))


@subscribers_app.command("forget")
def subscribers_forget(
    ctx: typer.Context,
    email: EmailArgument,
    yes: Annotated[
        bool, typer.Option("--yes", help="Do not ask (needed when standard input is not a terminal).")
    ] = False,
) -> None:
    """Erase a reader's personal data: the right to be forgotten.

    Deliveries stay, counted against an anonymous reader; only a hash of the address is kept,
    so it is refused ever after. Asks first on a terminal; elsewhere it needs --yes."""
    runtime = state(ctx).runtime()
    record = subscribers.show(runtime, email)  # an unknown address is told before anything is asked
    if not yes:
        if not sys.stdin.isatty():
            raise InputError("--yes", f"forgetting {email} cannot be undone: confirm with --yes")
        named = f" ({printable(record.row.name)})" if record.row.name else ""
        typer.confirm(f"Erase everything stored about {email}{named}, for good?", abort=True, err=True)
    subscribers.forget(runtime, email, datetime.now(UTC))
    line(
        f"{email} forgotten: name, address, choices and consents erased; its deliveries are kept "
        "against an anonymous reader, and only a hash of the address, so it is never mailed again"
    )
