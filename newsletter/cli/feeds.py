"""`newsletter fetch`: every feed read into the store, with a progress bar on a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from newsletter.cli import output
from newsletter.cli.output import err, out
from newsletter.cli.state import state
from newsletter.services import feeds

if TYPE_CHECKING:
    from newsletter.ingest.run import FeedReport
    from newsletter.store.runtime import Runtime


def fetch(ctx: typer.Context) -> None:
    """Fetch every configured feed and store its articles; exit 1 unless every feed was read."""
    reports = fetch_with_progress(state(ctx).runtime(), state(ctx).verbose)
    out.print(output.feed_reports(reports))
    if not all(report.read for report in reports):
        raise typer.Exit(1)


def fetch_with_progress(runtime: Runtime, verbose: bool) -> list[FeedReport]:
    """`feeds.fetch` with a progress bar on a terminal; the table printed afterwards says how each
    feed went, so it is not logged feed by feed too."""
    output.told_here("newsletter.feeds", verbose)
    if not err.is_terminal:
        return feeds.fetch(runtime)
    with Progress(
        TextColumn("[bold]fetching"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=len(runtime.settings.feeds))
        return feeds.fetch(runtime, lambda report: progress.update(task, advance=1, description=report.url))
