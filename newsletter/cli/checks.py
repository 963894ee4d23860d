"""`newsletter check`: the checklist of the next edition before it goes, for a person or a script."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from newsletter.cli import output
from newsletter.cli.options import AtOption, JsonOption, NewsletterOption, moment
from newsletter.cli.output import out, outside
from newsletter.cli.state import state
from newsletter.services import checks

COLOURS = {"pass": "green", "fail": "red", "skipped": "yellow"}


def check(
    ctx: typer.Context,
    newsletter: NewsletterOption = "weekly",
    links: Annotated[
        bool, typer.Option("--links/--no-links", help="Fetch every article link (--no-links: skip it).")
    ] = True,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the next edition before it goes: article links answer, images have alt text, each
    variant stays within Gmail's clipping limit, the SpamAssassin score, List-Unsubscribe.

    Exit 1 when a check fails."""
    settings = state(ctx).settings
    zone = settings.zone
    output.told_here("newsletter.checks", state(ctx).verbose)
    checklist = checks.run(state(ctx).runtime(), newsletter, moment(settings, at), links)
    if as_json:
        edition = checklist.edition
        output.emit_json(
            {
                "edition": {
                    "id": edition.id,
                    "newsletter": edition.newsletter,
                    "slot": output.slot_iso(edition.slot, zone),
                    "status": edition.status.value,
                    "window_start": output.iso(edition.window_start, zone),
                    "window_end": output.iso(edition.window_end, zone),
                },
                "at": output.iso(checklist.at, zone),
                "failed": [c.name for c in checklist.failed],
                "checks": [
                    {"name": c.name, "status": c.status, "summary": c.summary, "details": c.details}
                    for c in checklist.checks
                ],
            }
        )
    else:
        output.line(output.edition_line(checklist.edition, zone))
        table = Table(title=f"Checks as of {output.local(checklist.at, zone)}")
        for column in ("check", "result", "what was found"):
            table.add_column(column, overflow="fold")
        for c in checklist.checks:
            found = outside(c.summary)
            for detail in c.details:
                found.append("\n  ")
                found.append(outside(detail))
            table.add_row(Text(c.title), Text(c.status, style=COLOURS[c.status]), found)
        out.print(table)
    if checklist.failed:
        raise typer.Exit(1)
