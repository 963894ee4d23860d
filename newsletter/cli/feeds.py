"""`newsletter fetch` and `newsletter status`: the feeds, and what needs a person's eye."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from newsletter.cli import output
from newsletter.cli.output import err, out, outside
from newsletter.cli.state import state
from newsletter.ingest.run import FeedReport
from newsletter.services import feeds
from newsletter.services.overview import overview
from newsletter.store.runtime import Runtime
from newsletter.text import printable


def fetch(ctx: typer.Context) -> None:
    """Fetch every configured feed and store its articles; exit 1 unless every feed was read."""
    reports = fetch_with_progress(state(ctx).runtime())
    show_reports(reports)
    if not all(report.read for report in reports):
        raise typer.Exit(1)


def fetch_with_progress(runtime: Runtime) -> list[FeedReport]:
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


def show_reports(reports: list[FeedReport]) -> None:
    out.print(output.feed_reports(reports))
    for r in reports:
        if r.problem:
            err.print(Text.assemble((printable(r.url), "red"), f": {printable(r.problem)}"), highlight=False)


def status(ctx: typer.Context) -> None:
    """What needs a person's eye: each feed's last fetch and error, readers, recent editions."""
    seen = overview(state(ctx).runtime())
    table = Table(title="Feeds")
    for column in ("feed", "status", "HTTP", "last fetched (UTC)", "last read well", "entries", "problem"):
        table.add_column(column, overflow="fold")
    for feed in seen.feeds:
        table.add_row(
            outside(feed.url),
            output.feed_status(feed.status),
            str(feed.http_status or ""),
            f"{feed.fetched_at:%Y-%m-%d %H:%M}" if feed.fetched_at else "",
            f"{feed.read_well_at:%Y-%m-%d %H:%M}" if feed.read_well_at else "",
            str(feed.entries),
            outside(feed.error or ""),
        )
    out.print(table)
    people = ", ".join(f"{count} {status}" for status, count in seen.subscribers.items()) or "none"
    out.print(f"{seen.articles} articles stored; subscribers: {people}")
    out.print(output.editions_table(seen.editions))
