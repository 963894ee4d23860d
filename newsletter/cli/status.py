"""`newsletter status`: what needs a person's eye, for a person or a monitoring system."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from newsletter.cli import output
from newsletter.cli.options import JsonOption
from newsletter.cli.output import err, out, outside
from newsletter.cli.state import state
from newsletter.services.overview import overview
from newsletter.services.subscribers import LINK_LIFETIME
from newsletter.text import printable


def status(
    ctx: typer.Context,
    as_json: JsonOption = False,
    check: Annotated[
        bool,
        typer.Option("--check", help="For a monitoring system: list only the problems; exit 1 if any."),
    ] = False,
) -> None:
    """What needs a person's eye: feeds, readers, suppressions, recent editions, each job's next
    run, and the problems (`--check` exits 1 when there is one)."""
    zone = state(ctx).settings.zone
    seen = overview(state(ctx).runtime(), datetime.now(UTC))
    settings_file = output.settings_file(state(ctx).config)
    if check:  # each problem once: on stdout, as lines or in the JSON
        if as_json:
            output.emit_json({"problems": seen.problems})
        for problem in [] if as_json else seen.problems:
            out.print(outside(problem), soft_wrap=True)
        raise typer.Exit(1 if seen.problems else 0)
    if as_json:
        output.emit_json(
            {
                "settings_file": settings_file,
                "store": seen.store,
                "feeds": [
                    {
                        "url": feed.url,
                        "status": feed.status.value if feed.status else None,
                        "http_status": feed.http_status,
                        "fetched_at": output.iso(feed.fetched_at, zone),
                        "read_well_at": output.iso(feed.read_well_at, zone),
                        "entries": feed.entries,
                        "error": feed.error,
                    }
                    for feed in seen.feeds
                ],
                "articles": seen.articles,
                "subscribers": {str(status): count for status, count in seen.subscribers.items()},
                "unconfirmed": {
                    "count": seen.unconfirmed.count,
                    "never_sent": seen.unconfirmed.never_sent,
                    "oldest": output.iso(seen.unconfirmed.oldest, zone),
                },
                "suppressions": {str(reason): count for reason, count in seen.suppressions.items()},
                "editions": [output.edition_json(summary, zone) for summary in seen.editions],
                "jobs": [
                    {
                        "id": job.job_id,
                        "what": job.what,
                        "next_run": output.iso(job.next_run, zone),
                        "next_run_utc": job.next_run.astimezone(UTC).isoformat(),
                    }
                    for job in seen.jobs
                ],
                "problems": seen.problems,
            }
        )
        return
    output.where(state(ctx).config, state(ctx).settings)
    table = Table(title="Feeds")
    for column in ("feed", "status", "HTTP", "last fetched", "last read well", "entries", "problem"):
        table.add_column(column, overflow="fold")
    for feed in seen.feeds:
        table.add_row(
            outside(feed.url),
            output.feed_status(feed.status),
            str(feed.http_status or ""),
            output.local(feed.fetched_at, zone),
            output.local(feed.read_well_at, zone),
            str(feed.entries),
            outside(feed.error or ""),
        )
    out.print(table)
    people = ", ".join(f"{count} {status}" for status, count in seen.subscribers.items()) or "none"
    kept_out = ", ".join(f"{count} {reason}" for reason, count in seen.suppressions.items()) or "none"
    out.print(
        f"{seen.articles} articles stored; subscribers: {people}; suppressed: {kept_out}",
        markup=False,
        soft_wrap=True,
    )
    if (waiting := seen.unconfirmed).count:
        out.print(
            f"pending past their confirmation link ({LINK_LIFETIME.days} days): {waiting.count}, "
            f"the oldest since {output.local(waiting.oldest, zone)}; "
            f"{waiting.never_sent} of them never sent one ({waiting.advice()})",
            markup=False,
            soft_wrap=True,
        )
    out.print(output.editions_table(seen.editions, zone))
    jobs = Table(title="Jobs of `newsletter run` (computed from the schedules)")
    for column in ("job", "what", "next run", "next run (UTC)"):
        jobs.add_column(column)
    for job in seen.jobs:
        jobs.add_row(
            outside(job.job_id),
            outside(job.what),
            output.local(job.next_run, zone),
            f"{job.next_run.astimezone(UTC):%Y-%m-%d %H:%M}",
        )
    out.print(jobs)
    for problem in seen.problems:
        err.print(Text.assemble(("problem: ", "red"), printable(problem)), soft_wrap=True)
