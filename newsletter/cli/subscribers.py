"""`newsletter subscribers ...`: readers in bulk; `-` is standard input or output."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from newsletter.cli.options import STANDARD
from newsletter.cli.output import err, line, outside
from newsletter.cli.state import state
from newsletter.services import subscribers
from newsletter.store.runtime import Runtime
from newsletter.subscribers.bulk import ImportReport

subscribers_app = typer.Typer(help="Subscribers in bulk: CSV import and export.", no_args_is_help=True)


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
) -> None:
    """Add or update subscribers from a CSV; bad rows are reported and kept aside, never lost."""
    report = import_and_show(state(ctx).runtime(), path, confirmed=confirmed)
    if report.rejected:
        raise typer.Exit(1)


def import_and_show(runtime: Runtime, path: Path, *, confirmed: bool = False) -> ImportReport:
    """Import and print the outcome; shared with `newsletter demo`."""
    if path == STANDARD:
        report = subscribers.import_file(runtime, sys.stdin.buffer, confirmed=confirmed)
        name = "standard input"
    else:
        report = subscribers.import_file(runtime, path, confirmed=confirmed)
        name = str(path)
    line(
        f"{name}: {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{report.kept} kept as they were (unsubscribed or suppressed), {len(report.rejected)} rejected"
    )
    for number, _raw, error in report.rejected:
        err.print(outside(f"  line {number}: {error}"), soft_wrap=True)
    if report.rejects_file:
        line(f"rejected rows written to {report.rejects_file}, with the reason for each", to=err)
    return report


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
