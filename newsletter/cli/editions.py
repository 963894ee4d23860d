"""Commands for editors and the operator: trending, preview, edition picks, send, editions."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy import func, select, update

from newsletter.editions.compose import Composer
from newsletter.editions.editions import find_article, open_edition, pick, trending_signals, upcoming_slot
from newsletter.editions.prepare import counts
from newsletter.editions.preview import preview as make_preview
from newsletter.editions.ranking import SIGNALS, rank
from newsletter.errors import SettingsError
from newsletter.ingest.articles import slugify
from newsletter.sending.providers import make_provider
from newsletter.sending.sender import Pace, SendReport, prepare_due, publish
from newsletter.store.db import unit_of_work
from newsletter.store.models import Article, Category, Delivery, Edition, utcnow
from newsletter.store.runtime import Runtime

out = Console()
err = Console(stderr=True)
edition_app = typer.Typer(
    help="The upcoming edition: the editors' pins and exclusions.", no_args_is_help=True
)

NewsletterOption = Annotated[str, typer.Option("--newsletter", "-n", help="Which newsletter.")]
AtOption = Annotated[
    str | None,
    typer.Option(help="Act as of this time (ISO 8601; local to the site's time zone if no offset)."),
]


def moment(runtime: Runtime, at: str | None) -> datetime:
    if at is None:
        return utcnow()
    try:
        value = datetime.fromisoformat(at)
    except ValueError:
        raise SettingsError("--at", f"not an ISO 8601 time: {at!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=runtime.settings.zone)


def trending(
    ctx: typer.Context,
    category: Annotated[str | None, typer.Option(help="Only this category (slug or name).")] = None,
    days: Annotated[int, typer.Option(help="Articles published in the last N days.")] = 7,
    limit: Annotated[int, typer.Option(help="How many to show.")] = 20,
    at: AtOption = None,
) -> None:
    """Rank recent articles by trending score, with each signal's share of the score."""
    runtime: Runtime = ctx.obj.runtime()
    now = moment(runtime, at)
    settings = runtime.settings
    with runtime.factory() as session:
        query = select(Article).where(
            Article.language == settings.site.language,
            Article.published_at >= now - timedelta(days=days),
            Article.published_at <= now,
        )
        if category:
            query = query.where(Article.categories.any(Category.slug == slugify(category)))
        articles = {a.id: a for a in session.scalars(query)}
        signals = trending_signals(session, list(articles.values()))
    scores = rank(signals, settings.ranking, now)
    table = Table(title=f"Trending as of {now.astimezone(settings.zone):%Y-%m-%d %H:%M}")
    for column in ("#", "score", *SIGNALS, "title", "categories"):
        table.add_column(column, justify="right" if column not in ("title", "categories") else "left")
    for position, item in enumerate(scores[:limit], start=1):
        article = articles[item.article_id]
        shares = item.shares()
        table.add_row(
            str(position),
            f"{item.total:.2f}",
            *(f"{shares[s]:.0%}" for s in SIGNALS),
            article.title,
            ", ".join(c.name for c in article.categories if c.is_section),
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
    runtime: Runtime = ctx.obj.runtime()
    composer = Composer(runtime.settings.templates_path())
    with runtime.factory() as session:
        result = make_preview(
            session,
            runtime.settings,
            composer,
            newsletter,
            moment(runtime, at),
            category,
            language,
            email,
        )
    edition = result.edition
    err.print(
        f"{newsletter} edition {edition.slot}: window {edition.window_start:%Y-%m-%d %H:%M} to "
        f"{edition.window_end:%Y-%m-%d %H:%M} UTC; sections {', '.join(result.sections)}; "
        f"language {result.language}",
        highlight=False,
    )
    if explain:
        table = Table(title="Candidates")
        for column in ("id", "kept", "why", "title"):
            table.add_column(column)
        for decision in result.plan.decisions:
            table.add_row(
                str(decision.article_id),
                "yes" if decision.kept else "no",
                decision.reason,
                decision.title,
            )
        err.print(table)
    if result.composed is None:
        err.print("Nothing new for this reader: the edition would skip them.")
        raise typer.Exit(3)
    err.print(f"Subject: {result.composed.subject}", highlight=False)
    for warning in result.composed.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    body = result.text if text else result.html
    if out_file:
        out_file.write_text(body or "", encoding="utf-8")
        err.print(f"written to {out_file}")
    else:
        sys.stdout.write(body or "")


def _edition_pick(ctx: typer.Context, article: str, newsletter: str, at: str | None, action: str) -> None:
    runtime: Runtime = ctx.obj.runtime()
    with unit_of_work(runtime.factory) as session:
        found = find_article(session, article)
        slot = upcoming_slot(runtime.settings, newsletter, moment(runtime, at))
        edition = open_edition(session, runtime.settings, newsletter, slot)
        pick(session, edition, found, action)
    verb = "pinned to" if action == "pin" else "excluded from"
    out.print(f"{found.title!r} {verb} the {newsletter} edition of {edition.slot}", highlight=False)


@edition_app.command("pin")
def edition_pin(
    ctx: typer.Context,
    article: Annotated[str, typer.Argument(help="The article's id or URL.")],
    newsletter: NewsletterOption = "weekly",
    at: AtOption = None,
) -> None:
    """Put an article in the upcoming edition for every reader of its categories."""
    _edition_pick(ctx, article, newsletter, at, "pin")


@edition_app.command("exclude")
def edition_exclude(
    ctx: typer.Context,
    article: Annotated[str, typer.Argument(help="The article's id or URL.")],
    newsletter: NewsletterOption = "weekly",
    at: AtOption = None,
) -> None:
    """Keep an article out of the upcoming edition."""
    _edition_pick(ctx, article, newsletter, at, "exclude")


def editions(ctx: typer.Context) -> None:
    """List editions with their deliveries per status."""
    out.print(editions_table(ctx.obj.runtime()))


def editions_table(runtime: Runtime, limit: int = 50) -> Table:
    """The latest editions with their deliveries per status."""
    statuses = ("pending", "sending", "sent", "failed", "skipped", "suppressed")
    with runtime.factory() as session:
        rows = session.scalars(select(Edition).order_by(Edition.id.desc()).limit(limit)).all()
        tallies = session.execute(
            select(Delivery.edition_id, Delivery.status, func.count())
            .where(Delivery.edition_id.in_([e.id for e in rows]))
            .group_by(Delivery.edition_id, Delivery.status)
        ).all()
    by_edition: dict[int, dict[str, int]] = {}
    for edition_id, status, count in tallies:
        by_edition.setdefault(edition_id, {})[status] = count
    table = Table(title="Editions")
    for column in ("id", "newsletter", "slot", "status", *statuses):
        table.add_column(column)
    for e in rows:
        tally = by_edition.get(e.id, {})
        table.add_row(str(e.id), e.newsletter, e.slot, e.status, *(str(tally.get(s, 0)) for s in statuses))
    return table


def send(
    ctx: typer.Context,
    newsletter: NewsletterOption = "weekly",
    at: AtOption = None,
    retry_failed: Annotated[
        int | None,
        typer.Option("--retry-failed", help="Resend only this edition's failed deliveries."),
    ] = None,
    edition_id: Annotated[int | None, typer.Option("--edition", help="Resume this edition.")] = None,
    rate: Annotated[float | None, typer.Option(help="At most this many messages per second.")] = None,
    workers: Annotated[
        int, typer.Option(min=1, max=32, help="Sender processes sharing the edition (one per core).")
    ] = 1,
) -> None:
    """Prepare the due edition (once) and send it; run again to resume after any stop."""
    runtime: Runtime = ctx.obj.runtime()
    if workers > 1:
        send_with_workers(
            ctx,
            runtime,
            newsletter,
            moment(runtime, at),
            retry_failed or edition_id,
            retry_failed is not None,
            rate,
            workers,
        )
        return
    report = send_edition(
        runtime,
        newsletter,
        moment(runtime, at),
        retry_failed or edition_id,
        retry_failed is not None,
        rate,
    )
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {warning}")
    print_send_report(report)
    if report.status == "sending":  # this sender is done; others still hold batches
        out.print("other senders are finishing their batches; `newsletter editions` shows the end")
    elif report.status != "complete":
        raise typer.Exit(1)


def send_edition(
    runtime: Runtime,
    newsletter: str,
    now: datetime,
    edition_id: int | None = None,
    retry_failed: bool = False,
    rate: float | None = None,
) -> SendReport:
    """`publish` with a progress bar on a terminal and warnings shown."""
    provider = make_provider(runtime.settings)
    try:
        if not err.is_terminal:
            return publish(
                runtime,
                provider,
                newsletter,
                now,
                edition_id,
                retry_failed,
                Pace.from_settings(runtime.settings.sending, rate),
            )
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
                    task,
                    total=report.total,
                    completed=done,
                    failed=report.failed,
                    rate=f"{done / seconds:.0f}",
                )

            return publish(
                runtime,
                provider,
                newsletter,
                now,
                edition_id,
                retry_failed,
                Pace.from_settings(runtime.settings.sending, rate),
                show,
            )
    finally:
        provider.close()


def send_with_workers(
    ctx: typer.Context,
    runtime: Runtime,
    newsletter: str,
    now: datetime,
    edition_id: int | None,
    retry_failed: bool,
    rate: float | None,
    workers: int,
) -> None:
    """Prepare here, then let `workers` sender processes share the edition through the ledger,
    showing their joint progress from it."""
    if edition_id is None:
        edition_id, warnings = prepare_due(runtime, newsletter, now)
        for warning in warnings:
            err.print(f"[yellow]warning:[/] {warning}")
    if retry_failed:
        with unit_of_work(runtime.factory) as session:
            session.execute(
                update(Delivery)
                .where(Delivery.edition_id == edition_id, Delivery.status == "failed")
                .values(status="pending", detail=None)
            )
    command = [sys.executable, "-m", "newsletter"]
    if ctx.obj.config is not None:
        command += ["--config", str(ctx.obj.config)]
    command += ["send", "--edition", str(edition_id)]
    if rate:
        command += ["--rate", str(rate / workers)]
    problems = []
    with (
        ExitStack() as files,
        Progress(
            TextColumn(f"[bold]sending with {workers} senders"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        ) as progress,
    ):
        # Logs go to files: a full pipe would stall a sender.
        logs = [files.enter_context(tempfile.TemporaryFile("w+")) for _ in range(workers)]
        children = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log) for log in logs]
        task = progress.add_task("", total=None)
        while any(child.poll() is None for child in children):
            with runtime.factory() as session:
                tally = counts(session, edition_id)
            progress.update(
                task,
                total=sum(tally.values()),
                completed=sum(n for s, n in tally.items() if s not in ("pending", "sending")),
            )
            time.sleep(0.5)
        for child, log in zip(children, logs, strict=True):
            if child.returncode != 0:
                log.seek(0)
                problems.append("\n".join(log.read().strip().splitlines()[-5:]))
    with runtime.factory() as session:
        edition = session.get(Edition, edition_id)
        tally = counts(session, edition_id)
    assert edition is not None
    report = SendReport(
        edition_id, edition.status, tally.get("sent", 0), tally.get("failed", 0), counts=tally
    )
    print_send_report(report)
    for problem in problems:
        err.print(problem, highlight=False, markup=False)
    if problems or report.status != "complete":
        raise typer.Exit(1)


def print_send_report(report: SendReport) -> None:
    counts = ", ".join(f"{count} {status}" for status, count in sorted(report.counts.items()))
    colour = {"complete": "green", "partial": "yellow"}.get(report.status, "red")
    out.print(
        f"edition {report.edition_id}: [{colour}]{report.status}[/] — this run sent {report.sent}, "
        f"failed {report.failed}; ledger: {counts}"
    )
