"""`newsletter subscribers ...`: readers in bulk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from newsletter.cli.output import err, out, outside
from newsletter.cli.state import state
from newsletter.services import subscribers
from newsletter.store.runtime import Runtime
from newsletter.subscribers.bulk import ImportReport

subscribers_app = typer.Typer(help="Subscribers in bulk: CSV import and export.", no_args_is_help=True)


@subscribers_app.command("import")
def subscribers_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A CSV file with an email column.")],
    confirmed: Annotated[
        bool,
        typer.Option(
            "--confirmed",
            help="These readers opted in (double opt-in done elsewhere): rows may make them active.",
        ),
    ] = False,
) -> None:
    """Add or update subscribers from a CSV; bad rows are reported and kept aside, never lost."""
    report = import_and_show(state(ctx).runtime(), path, confirmed=confirmed)
    if report.rejected:
        raise typer.Exit(1)


def import_and_show(runtime: Runtime, path: Path, *, confirmed: bool = False) -> ImportReport:
    """Import and print the outcome; shared with `newsletter demo`."""
    report = subscribers.import_file(runtime, path, confirmed=confirmed)
    out.print(
        f"{path}: {report.added} added, {report.updated} updated, "
        f"{report.kept} kept as they were (unsubscribed or suppressed), {len(report.rejected)} rejected",
        markup=False,
    )
    for line, _raw, error in report.rejected:
        err.print(outside(f"  line {line}: {error}"), highlight=False)
    if report.rejects_file:
        err.print(Text(f"rejected rows written to {report.rejects_file}, with the reason for each"))
    return report


@subscribers_app.command("export")
def subscribers_export(
    ctx: typer.Context, path: Annotated[Path, typer.Argument(help="Where to write the CSV.")]
) -> None:
    """Write every subscriber to a CSV in the import format."""
    count = subscribers.export_file(state(ctx).runtime(), path)
    out.print(f"{count} subscribers written to {path}", markup=False)
