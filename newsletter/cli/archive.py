"""`newsletter archive ...`: the public archive and its feeds, withdrawn from, rendered again,
written out as static files, and pushed to the WebSub hubs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from newsletter.cli.options import JsonOption
from newsletter.cli.output import emit_json, iso, line, local, out, outside
from newsletter.cli.state import state
from newsletter.services import archive
from newsletter.store.runtime import MAX_ID

archive_app = typer.Typer(
    help="The public archive and its feeds: withdraw an edition, render again, export, tell the hubs.",
    no_args_is_help=True,
)
HUBS_LATER = (
    "the WebSub hubs are told at the next refresh of `newsletter run`, or by `newsletter archive push`"
)


@archive_app.command("withdraw")
def archive_withdraw(
    ctx: typer.Context,
    edition_id: Annotated[
        int, typer.Argument(metavar="EDITION", min=1, max=MAX_ID, help="The edition's id (see `editions`).")
    ],
    as_json: JsonOption = False,
) -> None:
    """Take an edition out of the archive: its pages answer 410 Gone, and it leaves every feed.

    It leaves the indexes and the sitemap too; the static export removes its files."""
    runtime = state(ctx).runtime()
    changed = archive.withdraw(runtime, edition_id, datetime.now(UTC))
    if as_json:
        emit_json({"edition": edition_id, "changed_feeds": changed})
        return
    line(f"edition {edition_id} withdrawn: its pages answer 410 Gone; {len(changed)} feed(s) changed")
    if changed and runtime.settings.syndication.hubs:
        line(HUBS_LATER)


@archive_app.command("export")
def archive_export(
    ctx: typer.Context,
    folder: Annotated[
        Path, typer.Argument(metavar="DIR", help="The folder: empty, or one an earlier export wrote.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Write every page and feed, the sitemap and robots.txt as static files.

    Run again, it rewrites only the files whose bytes changed and removes what was withdrawn;
    files it did not write are never touched."""
    report = archive.export(state(ctx).runtime(), folder)
    if as_json:
        emit_json(
            {
                "folder": str(report.folder),
                "written": report.written,
                "unchanged": report.unchanged,
                "removed": report.removed,
            }
        )
        return
    line(
        f"{report.folder}: {len(report.written)} file(s) written, {report.unchanged} unchanged, "
        f"{len(report.removed)} removed"
    )


@archive_app.command("rebuild")
def archive_rebuild(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Publish sent editions not yet in the archive, and render every page and feed again.

    Run it after a template changed; a page or feed that comes out the same is left as it was."""
    runtime = state(ctx).runtime()
    rebuilt = archive.rebuild(runtime, datetime.now(UTC))
    if as_json:
        emit_json({"published": rebuilt.published, "changed_feeds": rebuilt.changed})
        return
    published = ", ".join(str(e) for e in rebuilt.published)
    line(
        f"{len(rebuilt.published)} edition(s) published{f' ({published})' if published else ''}; "
        f"{len(rebuilt.changed)} feed(s) changed"
    )
    if rebuilt.changed and runtime.settings.syndication.hubs:
        line(HUBS_LATER)


@archive_app.command("push")
def archive_push(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Tell the WebSub hubs now of every changed feed whose push is due.

    Exit 1 if a hub did not accept one: it is asked again later, waiting longer each time."""
    settings = state(ctx).settings
    report = archive.push(state(ctx).runtime(), datetime.now(UTC))
    if as_json:
        emit_json(
            [
                {
                    "hub": a.hub,
                    "feed": a.topic,
                    "accepted": a.problem is None,
                    "problem": a.problem,
                    "retry_at": iso(a.retry_at, settings.zone),
                }
                for a in report.attempts
            ]
        )
    elif not settings.syndication.hubs:
        line("no WebSub hubs configured ([syndication] hubs)")
    elif not report.attempts:
        line("no push is due")
    else:
        table = Table(title="WebSub pushes")
        for column in ("hub", "feed", "result"):
            table.add_column(column, overflow="fold")
        for a in report.attempts:
            if a.problem is None:
                result = "accepted"
            elif a.retry_at is None:
                result = f"{a.problem}; given up"
            else:
                result = f"{a.problem}; again at {local(a.retry_at, settings.zone)}"
            table.add_row(outside(a.hub), outside(a.topic), outside(result))
        out.print(table)
    if report.failed:
        raise typer.Exit(1)
