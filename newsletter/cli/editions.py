"""`newsletter editions` and `newsletter deliveries`: what went out, and to whom, or why not."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from newsletter.cli import output
from newsletter.cli.options import JsonOption
from newsletter.cli.output import out, outside
from newsletter.cli.state import state
from newsletter.services import editions as service
from newsletter.store.runtime import MAX_ID
from newsletter.store.statuses import DeliveryStatus


def editions(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List editions with their deliveries per status."""
    zone = state(ctx).settings.zone
    summaries = service.editions(state(ctx).runtime(), limit)
    if as_json:
        output.emit_json([output.edition_json(summary, zone) for summary in summaries])
    else:
        out.print(output.editions_table(summaries, zone))


def deliveries(
    ctx: typer.Context,
    edition_id: Annotated[
        int, typer.Argument(metavar="EDITION", min=1, max=MAX_ID, help="The edition's id (see `editions`).")
    ],
    status: Annotated[
        list[DeliveryStatus] | None, typer.Option(help="Only deliveries in this status; repeat for more.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many (failures first).")] = None,
    as_json: JsonOption = False,
) -> None:
    """An edition's deliveries, failures first, with the provider's words.

    Each reader's address, attempts, and what the provider answered (or why the reader was
    skipped or suppressed)."""
    zone = state(ctx).settings.zone
    runtime = state(ctx).runtime()
    summary = service.edition(runtime, edition_id)
    rows = service.deliveries(runtime, edition_id, status, limit)
    if as_json:
        output.emit_json(
            {
                "edition": output.edition_json(summary, zone),
                "deliveries": [
                    {
                        "id": row.delivery_id,
                        "email": row.email,
                        "name": row.name,
                        "status": row.status.value,
                        "attempts": row.attempts,
                        "sent_at": output.iso(row.sent_at, zone),
                        "message_id": row.message_id,
                        "provider_event": row.provider_event,
                        "provider_event_at": output.iso(row.provider_event_at, zone),
                        "detail": row.detail,
                    }
                    for row in rows
                ],
            }
        )
        return
    output.line(output.edition_line(summary.edition, zone))
    counts = ", ".join(f"{summary.counts[s]} {s}" for s in DeliveryStatus if summary.counts.get(s))
    output.line(f"deliveries: {counts or 'none'}")
    if told := output.waves_line(summary, zone):
        output.line(told)
    if not rows:
        output.line("none listed" if status is None else f"none {' or '.join(status)}")
        return
    table = Table(title="Deliveries")
    for column in ("id", "address", "status", "attempts", "sent at", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row.delivery_id),
            outside(row.email),
            row.status,
            str(row.attempts),
            output.local(row.sent_at, zone),
            outside(row.detail or ""),
        )
    out.print(table)
