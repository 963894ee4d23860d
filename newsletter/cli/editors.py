"""Commands for editors: trending, preview, and the next edition's picks."""

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
    JsonOption,
    LanguageOption,
    NewsletterOption,
    moment,
)
from newsletter.cli.output import err, out, outside
from newsletter.cli.state import state
from newsletter.editions.ranking import SIGNALS
from newsletter.editions.slots import slot_time
from newsletter.errors import NewsletterError
from newsletter.services import editions, editors, sending
from newsletter.services.audit import COMMAND_LINE
from newsletter.store.statuses import EditionStatus, PickAction

# A century: any real look back, and date arithmetic far from overflowing.
MAX_DAYS = 36_500
# `preview`'s exit status when the reader would get nothing: it ran, and the answer is "none".
NOTHING_TO_SEND = 3

edition_app = typer.Typer(
    help="The next edition: the editors' pins and exclusions, holds and approvals.", no_args_is_help=True
)
ArticleArgument = Annotated[str, typer.Argument(help="The article's id (see `trending`) or URL.")]


def trending(
    ctx: typer.Context,
    category: Annotated[str | None, typer.Option(help="Only this category (slug or name).")] = None,
    days: Annotated[
        int, typer.Option(min=1, max=MAX_DAYS, help="Articles published in the last N days.")
    ] = 7,
    limit: Annotated[int, typer.Option(min=1, help="How many to show.")] = 20,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Rank recent articles by trending score, with their ids (what `edition pin` takes).

    Each signal's share of the score is shown, so the ranking can be explained."""
    zone = state(ctx).settings.zone
    now = moment(state(ctx).settings, at)
    ranked = editors.trending(state(ctx).runtime(), now, category, days)[:limit]
    if as_json:
        output.emit_json(
            {
                "as_of": output.iso(now, zone),
                "articles": [
                    {
                        "rank": position,
                        "id": item.article_id,
                        "title": item.title,
                        "categories": item.sections,
                        "published_at": output.iso(item.score.published_at, zone),
                        "score": item.score.total,
                        "signals": item.score.parts,
                        "shares": item.score.shares(),
                    }
                    for position, item in enumerate(ranked, start=1)
                ],
            }
        )
        return
    table = Table(title=f"Trending as of {output.local(now, zone)}")
    for column in ("#", "score", *SIGNALS, "id", "title", "categories"):
        table.add_column(column, justify="left" if column in ("title", "categories") else "right")
    for position, item in enumerate(ranked, start=1):
        shares = item.score.shares()
        table.add_row(
            str(position),
            f"{item.score.total:.2f}",
            *(f"{shares[s]:.0%}" for s in SIGNALS),
            str(item.article_id),
            outside(item.title),
            outside(", ".join(item.sections)),
        )
    out.print(table)


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


def _pick(ctx: typer.Context, article: str, newsletter: str, at: str | None, action: PickAction) -> None:
    settings = state(ctx).settings
    picked = editors.pick_article(state(ctx).runtime(), newsletter, article, action, moment(settings, at))
    verb = "pinned to" if action == PickAction.PIN else "excluded from"
    output.line(
        f"{picked.title!r} (article {picked.article_id}) {verb} the "
        f"{output.edition_line(picked.edition, settings.zone)}"
    )


@edition_app.command("pin")
def edition_pin(
    ctx: typer.Context,
    article: ArticleArgument,
    newsletter: NewsletterOption = "weekly",
    at: AtOption = None,
) -> None:
    """Put an article in the next edition for every reader of its categories."""
    _pick(ctx, article, newsletter, at, PickAction.PIN)


@edition_app.command("exclude")
def edition_exclude(
    ctx: typer.Context,
    article: ArticleArgument,
    newsletter: NewsletterOption = "weekly",
    at: AtOption = None,
) -> None:
    """Keep an article out of the next edition."""
    _pick(ctx, article, newsletter, at, PickAction.EXCLUDE)


@edition_app.command("unpick")
def edition_unpick(
    ctx: typer.Context,
    article: ArticleArgument,
    newsletter: NewsletterOption = "weekly",
    at: AtOption = None,
) -> None:
    """Undo a pin or an exclusion on the next edition; exit 1 when the article had neither."""
    settings = state(ctx).settings
    runtime = state(ctx).runtime()
    now = moment(settings, at)
    undone = editors.unpick_article(runtime, newsletter, article, now)
    if undone is None:
        edition = editions.next_edition(runtime, newsletter, now).edition
        raise NewsletterError(
            f"article {article} has no pin or exclusion in the {output.edition_line(edition, settings.zone)}"
        )
    was = "pin" if undone.action == PickAction.PIN else "exclusion"
    output.line(
        f"{undone.title!r} (article {undone.article_id}): {was} removed from the "
        f"{output.edition_line(undone.edition, settings.zone)}"
    )


@edition_app.command("picks")
def edition_picks(ctx: typer.Context, newsletter: NewsletterOption = "weekly", at: AtOption = None) -> None:
    """List the next edition's pins and exclusions."""
    settings = state(ctx).settings
    edition, picked = editors.edition_picks(state(ctx).runtime(), newsletter, moment(settings, at))
    output.line(output.edition_line(edition, settings.zone))
    if not picked:
        output.line("no pins or exclusions")
        return
    table = Table(title="Picks")
    for column in ("id", "pick", "title"):
        table.add_column(column, overflow="fold")
    for p in picked:
        table.add_row(str(p.article_id), p.action, outside(p.title))
    out.print(table)


def _decide(ctx: typer.Context, newsletter: str, at: str | None, action: str) -> editors.Decision:
    settings = state(ctx).settings
    decided = editors.decide(state(ctx).runtime(), newsletter, action, moment(settings, at), COMMAND_LINE)
    still = f"; it waits: {decided.waiting}" if decided.waiting else ""
    output.line(f"{action}: the {output.edition_line(decided.edition, settings.zone)}{still}")
    return decided


@edition_app.command("hold")
def edition_hold(ctx: typer.Context, newsletter: NewsletterOption = "weekly", at: AtOption = None) -> None:
    """Hold the next edition: it does not go until released (past the next slot, it is skipped)."""
    _decide(ctx, newsletter, at, "hold")


@edition_app.command("approve")
def edition_approve(ctx: typer.Context, newsletter: NewsletterOption = "weekly", at: AtOption = None) -> None:
    """Approve the next edition (what `approval = "required"` waits for); it goes at its slot."""
    _decide(ctx, newsletter, at, "approve")


@edition_app.command("release")
def edition_release(ctx: typer.Context, newsletter: NewsletterOption = "weekly", at: AtOption = None) -> None:
    """Release a held edition: sent at once when its slot has come, else at its slot."""
    decided = _decide(ctx, newsletter, at, "release")
    runtime, now = state(ctx).runtime(), moment(state(ctx).settings, at)
    if decided.waiting or slot_time(decided.edition.slot, state(ctx).settings.zone) > now:
        return
    report = sending.send(runtime, newsletter, now)
    output.send_report(report)
    if report.status != EditionStatus.COMPLETE:
        raise typer.Exit(1)
