"""`newsletter send`: the next edition, prepared once when its slot has come and sent, by one sender
or several."""

from __future__ import annotations

import math
import sys
from datetime import datetime
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from newsletter.cli import output
from newsletter.cli.options import AtOption, known_newsletter, moment, optional_newsletter
from newsletter.cli.output import err, out
from newsletter.cli.rehearsal import show_dry_run
from newsletter.cli.senders import ON_STDIN, SenderProcesses
from newsletter.cli.state import state
from newsletter.editions.edition import EditionError, EditionHeld, EditionInfo
from newsletter.editions.slots import slot_time
from newsletter.errors import InputError
from newsletter.sending.report import SendReport
from newsletter.services import editions, sending
from newsletter.store.runtime import MAX_ID, Runtime
from newsletter.store.statuses import EditionStatus


def send(
    ctx: typer.Context,
    newsletter: Annotated[
        str | None,
        typer.Option(
            "--newsletter",
            "-n",
            help="Which newsletter (default: weekly; an edition named by id is its own newsletter's).",
            callback=optional_newsletter,
        ),
    ] = None,
    at: AtOption = None,
    now_ok: Annotated[
        bool, typer.Option("--now", help="Send the next edition now, even though its slot is ahead.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Send it all the same when no feed was read since its window opened, or (with --now) "
            "when the last edition went out less than the newsletter's usual interval ago.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Show the edition, its variants and recipients, and when it would go; change nothing, "
            "send nothing.",
        ),
    ] = False,
    retry_failed: Annotated[
        int | None,
        typer.Option(
            "--retry-failed", min=1, max=MAX_ID, help="Resend only this edition's failed deliveries."
        ),
    ] = None,
    edition_id: Annotated[
        int | None, typer.Option("--edition", min=1, max=MAX_ID, help="Resume this edition.")
    ] = None,
    resend_uncertain: Annotated[
        int | None,
        typer.Option(
            "--resend-uncertain",
            min=1,
            max=MAX_ID,
            help="Send this edition's uncertain deliveries again (a reader may get two).",
        ),
    ] = None,
    rate: Annotated[
        float | None, typer.Option(callback=positive_rate, help="At most this many messages per second.")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=32, help="Sender processes sharing the edition (one per core).")
    ] = 1,
    archive: Annotated[
        bool,
        typer.Option(
            "--archive/--no-archive",
            hidden=True,  # for the senders of --workers: the command that started them archives
            help="Archive the edition once it is sent.",
        ),
    ] = True,
    edition_on_stdin: Annotated[
        bool,
        typer.Option(
            ON_STDIN,
            hidden=True,  # for the senders of --workers, started while the edition is prepared
            help="Start up, then resume the edition whose id comes on stdin (none: exit).",
        ),
    ] = False,
) -> None:
    """Prepare the next edition (once) when its slot has come, and send it.

    Run it again to resume after any stop."""
    if edition_on_stdin:
        state(ctx).runtime()  # started up (the store opened) while the edition is prepared
        told = sys.stdin.readline().strip()
        if not told:  # the command that started this one refused the edition or failed
            return
        if not (told.isascii() and told.isdigit()):
            raise InputError(ON_STDIN, f"expected an edition id on stdin, not {told[:40]!r}")
        edition_id = int(told)
    # Waited for when the command ends, however it ends (those never told an edition leave).
    share = rate / workers if rate else None
    others = ctx.with_resource(SenderProcesses(workers - 1, state(ctx).config, share))
    edition = retry_failed or resend_uncertain or edition_id
    if dry_run and edition is not None:
        raise InputError("--dry-run", "rehearses the next edition: not with --edition or --retry-failed")
    if edition is None:  # the next edition of a newsletter: weekly unless named
        newsletter = known_newsletter(ctx, newsletter or "weekly")
        runtime = state(ctx).runtime()
        now = moment(runtime.settings, at)
        if dry_run:
            output.told_here("newsletter.editions", state(ctx).verbose)  # "prepared", then rolled back
            dry = sending.dry_run(runtime, newsletter, now, ahead_ok=now_ok, force=force)
            show_dry_run(dry, runtime.settings)
            return
        others.start()  # they start up while this process prepares the edition
        edition, warnings = prepared(runtime, newsletter, now, now_ok, force)
        output.warnings(warnings)
    else:  # an edition named by id is its own newsletter's, whatever the default
        runtime = state(ctx).runtime()
        now = moment(runtime.settings, at)
        shown = editions.edition(runtime, edition)
        if newsletter not in (None, shown.edition.newsletter):
            raise InputError(
                "-n/--newsletter", f"edition {edition} is of the {shown.edition.newsletter!r} newsletter"
            )
        newsletter = shown.edition.newsletter
        if resend_uncertain is not None:
            again = sending.resend_uncertain(runtime, resend_uncertain)
            out.print(
                f"{again} uncertain deliveries of edition {resend_uncertain} to send again", markup=False
            )
        output.line(output.edition_line(shown.edition, runtime.settings.zone))
    if workers > 1:
        with_workers(ctx, others, newsletter, edition, workers, retry_failed is not None, rate, now)
        return
    report = send_with_progress(runtime, newsletter, now, edition, retry_failed is not None, rate, archive)
    output.send_report(report)
    if report.status == EditionStatus.SENDING:  # this sender is done; others still hold batches
        out.print("other senders are finishing their batches; `newsletter editions` shows the end")
    elif report.status != EditionStatus.COMPLETE:
        raise typer.Exit(1)


def prepared(
    runtime: Runtime, newsletter: str, now: datetime, ahead_ok: bool, force: bool
) -> tuple[int, list[str]]:
    """The next edition prepared (once) for this send, said first with the window it really
    has: closed now when it goes ahead of its slot. A refusal names the edition too."""
    zone = runtime.settings.zone
    seen: list[EditionInfo] = []
    try:
        edition_id, warnings = sending.prepare_next(runtime, newsletter, now, ahead_ok, force, seen.append)
    except EditionHeld:  # its draft is kept: told as stored
        output.line(output.edition_line(editions.next_edition(runtime, newsletter, now).edition, zone))
        raise
    except EditionError:  # rolled back: told with the window it would have had, no stored id
        told = seen[-1] if seen else editions.next_edition(runtime, newsletter, now).edition
        output.line(output.edition_line(told, zone, stored=not seen))
        raise
    info = editions.edition(runtime, edition_id).edition
    output.line(output.edition_line(info, zone))
    if slot_time(info.slot, zone) > now:
        output.line(output.ahead_of_its_slot(info, runtime.settings))
    return edition_id, warnings


def positive_rate(value: float | None) -> float | None:
    """Above 0 and finite: NaN would pass a range check, and 0 or less would mean no limit."""
    if value is not None and not 0 < value < math.inf:
        raise typer.BadParameter(f"use a number of messages per second above 0, not {value}")
    return value


def send_with_progress(
    runtime: Runtime,
    newsletter: str,
    now: datetime,
    edition_id: int | None = None,
    retry_failed: bool = False,
    rate: float | None = None,
    archive: bool = True,
) -> SendReport:
    """`sending.send` of a prepared edition with a progress bar on a terminal."""
    if not err.is_terminal:
        return sending.send(runtime, newsletter, now, edition_id, retry_failed, rate, archive=archive)
    columns = (
        TextColumn("[bold]sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TextColumn("{task.fields[rate]}/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("", total=None, failed=0, rate="-")
        began = datetime.now()

        def show(report: SendReport) -> None:
            done = report.sent + report.failed + report.suppressed
            seconds = max((datetime.now() - began).total_seconds(), 1e-6)
            progress.update(
                task, total=report.total, completed=done, failed=report.failed, rate=f"{done / seconds:.0f}"
            )

        return sending.send(runtime, newsletter, now, edition_id, retry_failed, rate, show, archive=archive)


def with_workers(
    ctx: typer.Context,
    others: SenderProcesses,
    newsletter: str,
    edition_id: int,
    workers: int,
    retry_failed: bool,
    rate: float | None,
    now: datetime,
) -> None:
    """Let `workers` senders share the prepared edition through the ledger: this process and
    the `workers - 1` others (`newsletter send --edition ID --no-archive`), started first or
    already started up (while it prepared), so that their start-up overlaps its work; their
    joint progress shown from the ledger, then the edition archived once."""
    runtime = state(ctx).runtime()
    if retry_failed:
        sending.retry_failed(runtime, edition_id)
    others.go(edition_id)
    share = rate / workers if rate else None
    with Progress(
        TextColumn(f"[bold]sending with {workers} senders"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("", total=None)

        def show(_own: SendReport) -> None:  # after each of this sender's batches
            if err.is_terminal:  # a count of the edition's rows: not for nobody to see
                done, total = sending.progress(runtime, edition_id)
                bar.update(task, total=total, completed=done)

        try:
            own = sending.send(
                runtime, newsletter, now, edition_id, rate=share, on_progress=show, archive=False
            )
            # Finished here (its sender waits for the others' batches): archived while they exit.
            sending.syndicate(runtime, edition_id, own.status, now)
        finally:  # whatever became of this sender, the others finish the edition
            problems = others.wait()
    report = sending.report(runtime, edition_id)
    if report.status != own.status:  # finished by another sender
        sending.syndicate(runtime, edition_id, report.status, now)
    output.send_report(report)
    for problem in problems:
        err.print(problem, highlight=False, markup=False)
    if problems or report.status != EditionStatus.COMPLETE:
        raise typer.Exit(1)
