"""Commands for editors: trending, preview, the edition's picks, and the list of editions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from newsletter.cli import output
from newsletter.cli.options import AtOption, NewsletterOption, moment
from newsletter.cli.output import err, out, outside
from newsletter.cli.state import state
from newsletter.editions.ranking import SIGNALS
from newsletter.errors import NewsletterError
from newsletter.services import editions as service
from newsletter.services import editors
from newsletter.store.statuses import PickAction

# A century: any real look back, and date arithmetic far from overflowing.
MAX_DAYS = 36_500

edition_app = typer.Typer(
    help="The upcoming edition: the editors' pins and exclusions.", no_args_is_help=True
)


def trending(
    ctx: typer.Context,
    category: Annotated[str | None, typer.Option(help="Only this category (slug or name).")] = None,
    days: Annotated[
        int, typer.Option(min=1, max=MAX_DAYS, help="Articles published in the last N days.")
    ] = 7,
    limit: Annotated[int, typer.Option(min=1, help="How many to show.")] = 20,
    at: AtOption = None,
) -> None:
    """Rank recent articles by trending score, with each signal's share of the score."""
    settings = state(ctx).settings
    now = moment(settings, at)
    ranked = editors.trending(state(ctx).runtime(), now, category, days)
    table = Table(title=f"Trending as of {now.astimezone(settings.zone):%Y-%m-%d %H:%M}")
    for column in ("#", "score", *SIGNALS, "title", "categories"):
        table.add_column(column, justify="right" if column not in ("title", "categories") else "left")
    for position, item in enumerate(ranked[:limit], start=1):
        shares = item.score.shares()
        table.add_row(
            str(position),
            f"{item.score.total:.2f}",
            *(f"{shares[s]:.0%}" for s in SIGNALS),
            outside(item.title),
            outside(", ".join(item.sections)),
        )
    out.print(table)


def preview(
    ctx: typer.Context,
    newsletter: NewsletterOption = "weekly",
    category: Annotated[
        list[str] | None, typer.Option(help="A category the reader chose; repeat for more.")
    ] = None,
    language: Annotated[str | None, typer.Option(help="The reader's language.")] = None,
    email: Annotated[str | None, typer.Option(help="Preview for this subscriber exactly.")] = None,
    text: Annotated[bool, typer.Option("--text", help="The plain-text part instead of the HTML.")] = False,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of standard output.")
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Why each candidate article was kept or dropped.")
    ] = False,
    at: AtOption = None,
) -> None:
    """Write exactly what a reader with these preferences (or this subscriber) gets next."""
    if out_file is not None and not out_file.parent.is_dir():  # say so before the work, not after
        raise NewsletterError(f"{out_file}: no such folder {out_file.parent}")
    settings = state(ctx).settings
    result = editors.preview(
        state(ctx).runtime(), newsletter, moment(settings, at), category, language, email
    )
    edition = result.edition
    err.print(
        f"{newsletter} edition {edition.slot}: window {edition.window_start:%Y-%m-%d %H:%M} to "
        f"{edition.window_end:%Y-%m-%d %H:%M} UTC; sections {', '.join(result.sections)}; "
        f"language {result.language}",
        highlight=False,
        markup=False,
    )
    if explain:
        table = Table(title="Candidates")
        for column in ("id", "kept", "why", "title"):
            table.add_column(column)
        for decision in result.plan.decisions:
            table.add_row(
                str(decision.article_id),
                "yes" if decision.kept else "no",
                outside(decision.reason),
                outside(decision.title),
            )
        err.print(table)
    if result.composed is None:
        err.print("Nothing new for this reader: the edition would skip them.")
        raise typer.Exit(3)
    err.print(f"Subject: {result.composed.subject}", highlight=False, markup=False)
    output.warnings(result.composed.warnings)
    body = result.text if text else result.html
    if out_file:
        out_file.write_text(body or "", encoding="utf-8")
        err.print(f"written to {out_file}", markup=False)
    else:
        sys.stdout.write(body or "")


def _pick(ctx: typer.Context, article: str, newsletter: str, at: str | None, action: PickAction) -> None:
    settings = state(ctx).settings
    picked = editors.pick_article(state(ctx).runtime(), newsletter, article, action, moment(settings, at))
    verb = "pinned to" if action == PickAction.PIN else "excluded from"
    out.print(
        f"{picked.title!r} {verb} the {newsletter} edition of {picked.edition.slot}",
        highlight=False,
        markup=False,
    )


@edition_app.command("pin")
def edition_pin(
    ctx: typer.Context,
    article: Annotated[str, typer.Argument(help="The article's id or URL.")],
    newsletter: NewsletterOption = "weekly",
    at: AtOption = None,
) -> None:
    """Put an article in the upcoming edition for every reader of its categories."""
    _pick(ctx, article, newsletter, at, PickAction.PIN)


@edition_app.command("exclude")
def edition_exclude(
    ctx: typer.Context,
    article: Annotated[str, typer.Argument(help="The article's id or URL.")],
    newsletter: NewsletterOption = "weekly",
    at: AtOption = None,
) -> None:
    """Keep an article out of the upcoming edition."""
    _pick(ctx, article, newsletter, at, PickAction.EXCLUDE)


def editions(ctx: typer.Context) -> None:
    """List editions with their deliveries per status."""
    out.print(output.editions_table(service.editions(state(ctx).runtime())))
