"""`newsletter bounces`: read the bounce mailbox of an SMTP site and act on it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from newsletter.cli import output
from newsletter.cli.options import JsonOption
from newsletter.cli.output import err, out, outside
from newsletter.cli.state import state
from newsletter.errors import InputError
from newsletter.services import bounces as service

COLOURS = {"hard": "red", "soft": "yellow", "unsubscribed": "cyan", "unreadable": "red"}


def bounces(
    ctx: typer.Context,
    maildir: Annotated[
        Path | None,
        typer.Option("--maildir", metavar="PATH", help="Read this Maildir folder (default: bounce_maildir)."),
    ] = None,
    imap: Annotated[
        bool, typer.Option("--imap", help="Read the IMAP folder of the settings (bounce_imap_*), over TLS.")
    ] = False,
    unsubscribe_maildir: Annotated[
        Path | None,
        typer.Option(
            "--unsubscribe-maildir",
            metavar="PATH",
            help="Also read this Maildir, where mail to the unsubscribe address is delivered.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Read the bounce mailbox and act on it; exit 1 when a message could not be read.

    Hard bounces suppress the address, soft ones count (suppressed after
    `sending.soft_bounce_limit` in a row), mail to unsubscribe+TOKEN@… unsubscribes; each message
    is then filed away. A message that could not be read is left in place."""
    if maildir is not None and imap:
        raise InputError("--maildir", "give --maildir or --imap, not both")
    settings = state(ctx).settings
    boxes = service.open_mailboxes(settings, maildir, imap, unsubscribe_maildir)
    output.told_here("newsletter.bounces", state(ctx).verbose)
    report = service.read_mailboxes(state(ctx).runtime(), boxes, datetime.now(UTC))
    if as_json:
        output.emit_json(
            {
                "messages": [
                    {
                        "mailbox": h.mailbox,
                        "key": h.key,
                        "outcome": h.outcome,
                        "delivery_id": h.delivery_id,
                        "email": h.email,
                        "suppressed": h.suppressed,
                        "detail": h.detail,
                    }
                    for h in report.handled
                ],
                "counts": report.counts(),
            }
        )
    else:
        table = Table(title="Bounce mailbox")
        for column in ("message", "outcome", "delivery", "reader", "suppressed", "detail"):
            table.add_column(column, overflow="fold")
        for h in report.handled:
            table.add_row(
                outside(h.key),
                outside(h.outcome),
                str(h.delivery_id or ""),
                outside(h.email or ""),
                "yes" if h.suppressed else "",
                outside(h.detail),
                style=COLOURS.get(h.outcome),
            )
        if report.handled:
            out.print(table)
        counts = ", ".join(f"{n} {outcome}" for outcome, n in report.counts().items()) or "nothing to read"
        output.line(f"{' and '.join(box.name for box in boxes)}: {counts}")
    for problem in report.unreadable:
        output.line(f"left in place, could not be read: {problem.key}: {problem.detail}", err)
    if report.unreadable:
        raise typer.Exit(1)
