"""`newsletter preview`: exactly what one reader gets in the next edition, and why."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from newsletter.cli import output
from newsletter.cli.options import (
    STANDARD,
    AtOption,
    CategoriesOption,
    LanguageOption,
    NewsletterOption,
    moment,
)
from newsletter.cli.output import err, outside
from newsletter.cli.state import state
from newsletter.errors import NewsletterError
from newsletter.services import editors

# `preview`'s exit status when the reader would get nothing: it ran, and the answer is "none".
NOTHING_TO_SEND = 3


def preview(
    ctx: typer.Context,
    newsletter: NewsletterOption = "weekly",
    category: CategoriesOption = None,
    language: LanguageOption = None,
    email: Annotated[str | None, typer.Option(help="Preview for this subscriber exactly.")] = None,
    text: Annotated[bool, typer.Option("--text", help="The plain-text part instead of the HTML.")] = False,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Write here instead of standard output (`-`: standard output)."),
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Why each candidate article was kept or dropped.")
    ] = False,
    at: AtOption = None,
) -> None:
    """Write exactly what such a reader (or this subscriber) gets in the next edition.

    Exit 3, with the reason, when they would get nothing."""
    if out_file == STANDARD:
        out_file = None
    if out_file is not None and not out_file.parent.is_dir():  # say so before the work, not after
        raise NewsletterError(f"{out_file}: no such folder {out_file.parent}")
    settings = state(ctx).settings
    result = editors.preview(
        state(ctx).runtime(), newsletter, moment(settings, at), category, language, email
    )
    output.line(output.edition_line(result.edition, settings.zone), to=err)
    output.line(f"sections {', '.join(result.sections)}; language {result.language}", to=err)
    if explain:
        table = Table(title="Candidates")
        for column in ("id", "kept", "why", "title"):
            table.add_column(column, overflow="fold")
        for decision in result.plan.decisions:
            table.add_row(
                str(decision.article_id),
                "yes" if decision.kept else "no",
                outside(decision.reason),
                outside(decision.title),
            )
        err.print(table)
    if result.composed is None:
        output.line(f"no digest for this reader: {result.reason or 'nothing to send'}", to=err)
        raise typer.Exit(NOTHING_TO_SEND)
    output.line(f"Subject: {result.composed.subject}", to=err)
    output.warnings(result.composed.warnings)
    body = (result.text if text else result.html) or ""
    if out_file:
        out_file.write_text(body, encoding="utf-8")
        output.line(f"written to {out_file}", to=err)
    else:
        sys.stdout.write(body)
