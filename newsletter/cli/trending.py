"""`newsletter trending`: recent articles ranked, with the ids editors pick by."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from newsletter.cli import output
from newsletter.cli.options import AtOption, JsonOption, moment
from newsletter.cli.output import out, outside
from newsletter.cli.state import state
from newsletter.editions.ranking import SIGNALS
from newsletter.services import editors

# A century: any real look back, and date arithmetic far from overflowing.
MAX_DAYS = 36_500


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
