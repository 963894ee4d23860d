"""Trying the next edition without spending it: `send --dry-run`, and a test send to one address."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from newsletter.cli import output
from newsletter.cli.options import (
    AtOption,
    CategoriesOption,
    LanguageOption,
    NewsletterOption,
    mailbox,
    moment,
)
from newsletter.cli.output import out, outside
from newsletter.cli.state import state
from newsletter.errors import NewsletterError
from newsletter.sending.providers import OutcomeStatus
from newsletter.services import sending
from newsletter.services.sending import DryRun
from newsletter.settings import Settings
from newsletter.store.statuses import DeliveryStatus


def show_dry_run(planned: DryRun, settings: Settings) -> None:
    """What `send` would prepare: the variants with their subjects and recipients, who is left
    out, and when it would go; the edition is told without an id, since the rehearsal kept
    nothing."""
    zone = settings.zone
    output.line(output.edition_line(planned.edition, zone, stored=False))
    output.line("dry run: nothing was written and nothing sent")
    if planned.due is not None:
        output.line(f"it would go at {output.local(planned.due, zone)}, its slot (or now, with --now)")
    elif planned.early:
        output.line("it would go now, with --now, " + output.ahead_of_its_slot(planned.edition, settings))
    else:
        output.line("it would go now")
    table = Table(title="Variants")
    for column in ("recipients", "language", "categories", "subject"):
        table.add_column(column, justify="right" if column == "recipients" else "left", overflow="fold")
    for variant in planned.variants:
        table.add_row(
            str(variant.recipients),
            outside(variant.language),
            outside(", ".join(variant.categories)),
            outside(variant.subject),
        )
    out.print(table)
    counts, variants = planned.counts, len(planned.variants)
    output.line(
        f"{counts.get(DeliveryStatus.PENDING, 0)} to send in "
        f"{variants} variant{'' if variants == 1 else 's'}; "
        f"{counts.get(DeliveryStatus.SKIPPED, 0)} skipped (nothing new), "
        f"{counts.get(DeliveryStatus.SUPPRESSED, 0)} suppressed"
    )
    output.warnings(planned.warnings)


def test_send(
    ctx: typer.Context,
    to: Annotated[
        str, typer.Option("--to", help="The one address the test message goes to.", callback=mailbox)
    ],
    as_reader: Annotated[
        str | None, typer.Option("--as", help="Send what this subscriber (an address) would get.")
    ] = None,
    category: CategoriesOption = None,
    language: LanguageOption = None,
    newsletter: NewsletterOption = "weekly",
    at: AtOption = None,
) -> None:
    """Send the next edition, as a reader would get it, to one address only.

    It goes through the configured provider, marked as a test, its links harmless, outside the
    ledger; exit 1 unless it was sent."""
    settings = state(ctx).settings
    sent = sending.test_send(
        state(ctx).runtime(), newsletter, moment(settings, at), to, as_reader, category, language
    )
    output.line(output.edition_line(sent.edition, settings.zone))
    outcome = sent.outcome
    via = f"the outbox in {settings.outbox_dir}" if settings.provider == "outbox" else settings.provider
    said = f"test message {sent.subject!r} to {sent.to} through {via}: {outcome.status}"
    if outcome.status != OutcomeStatus.SENT:
        raise NewsletterError(f"{said}: {outcome.detail or 'no reason given'}")
    output.line(said + (f" (message id {outcome.message_id})" if outcome.message_id else ""))
