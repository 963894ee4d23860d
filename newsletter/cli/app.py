"""The `newsletter` command: a thin caller of the services, one sub-command per task."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from newsletter import logs
from newsletter.cli import editions as cli_editions
from newsletter.editions.slots import last_slot
from newsletter.errors import NewsletterError, SettingsError
from newsletter.ingest.run import FeedReport, fetch_feeds
from newsletter.settings import load_settings
from newsletter.store.db import unit_of_work
from newsletter.store.models import Article, Category, Edition, Feed, Subscriber, article_categories
from newsletter.store.runtime import Runtime, open_runtime
from newsletter.subscribers.bulk import ImportReport, export_csv, import_csv

app = typer.Typer(
    help="Pull a news site's feeds, compose per-reader digests and send them exactly once.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")
subscribers_app = typer.Typer(help="Subscribers in bulk: CSV import and export.", no_args_is_help=True)
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(cli_editions.edition_app, name="edition")
app.command()(cli_editions.trending)
app.command()(cli_editions.preview)
app.command()(cli_editions.send)
app.command()(cli_editions.editions)

out = Console()
err = Console(stderr=True)


class State:
    """Made by the callback; commands ask it for the runtime, which connects on first use."""

    def __init__(self, config: Path | None) -> None:
        self.config = config
        self.settings = load_settings(config)
        self._runtime: Runtime | None = None

    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = open_runtime(self.settings)
        return self._runtime


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(help="Settings file (default: $NEWSLETTER_CONFIG or config/newsletter.toml)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    logs.configure(verbose)
    ctx.obj = State(config)
    ctx.call_on_close(lambda: ctx.obj._runtime and ctx.obj._runtime.close())


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply the database migrations (every command does this itself when needed)."""
    ctx.obj.runtime()
    out.print(f"database up to date: {ctx.obj.settings.database_url}")


@app.command()
def fetch(ctx: typer.Context) -> None:
    """Fetch every configured feed and store its articles; exit 1 unless every feed was read."""
    reports = _fetch_with_progress(ctx.obj.runtime())
    _print_reports(reports)
    if not all(report.read for report in reports):
        raise typer.Exit(1)


def _fetch_with_progress(runtime: Runtime) -> list[FeedReport]:
    feeds = runtime.settings.feeds
    if not feeds:
        raise NewsletterError("no feeds configured: add [[feeds]] tables to the settings file")
    if not err.is_terminal:
        return fetch_feeds(runtime.settings, runtime.factory)
    with Progress(
        TextColumn("[bold]fetching"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=len(feeds))

        def advance(report: FeedReport) -> None:
            progress.update(task, advance=1, description=report.url)

        return fetch_feeds(runtime.settings, runtime.factory, on_report=advance)


def _print_reports(reports: list[FeedReport]) -> None:
    table = Table(title="Feeds")
    for column in ("feed", "status", "new", "updated", "unchanged", "problem"):
        table.add_column(column, overflow="fold")
    for r in reports:
        colour = {"ok": "green", "not-modified": "cyan", "partial": "yellow"}.get(r.status, "red")
        problem = r.problem or (f"{len(r.warnings)} warning(s)" if r.warnings else "")
        table.add_row(
            r.url, f"[{colour}]{r.status}[/]", str(r.new), str(r.updated), str(r.unchanged), problem
        )
    out.print(table)
    for r in reports:
        if r.problem:
            err.print(f"[red]{r.url}[/]: {r.problem}", markup=True, highlight=False)


def _stored_table(runtime: Runtime) -> Table:
    with runtime.factory() as session:
        rows = session.execute(
            select(Category.name, Article.language, func.count(Article.id))
            .join(article_categories, article_categories.c.category_id == Category.id)
            .join(Article, Article.id == article_categories.c.article_id)
            .where(Category.is_section)
            .group_by(Category.name, Article.language)
            .order_by(Category.name, Article.language)
        ).all()
        by_language = session.execute(
            select(Article.language, func.count()).group_by(Article.language).order_by(Article.language)
        ).all()
    table = Table(title="Stored articles")
    table.add_column("category")
    table.add_column("language")
    table.add_column("articles", justify="right")
    for name, language, count in rows:
        table.add_row(name, language, str(count))
    for language, count in by_language:
        table.add_row("[bold]all[/]", language, f"[bold]{count}[/]")
    return table


@app.command()
def status(ctx: typer.Context) -> None:
    """What needs a person's eye: each feed's last fetch and error, readers, recent editions."""
    runtime: Runtime = ctx.obj.runtime()
    with runtime.factory() as session:
        feeds = session.scalars(select(Feed).order_by(Feed.id)).all()
        readers = session.execute(
            select(Subscriber.status, func.count()).group_by(Subscriber.status).order_by(Subscriber.status)
        ).all()
        articles = session.scalar(select(func.count()).select_from(Article))
    table = Table(title="Feeds")
    for column in ("feed", "status", "HTTP", "last fetched (UTC)", "last read well", "entries", "problem"):
        table.add_column(column, overflow="fold")
    for feed in feeds:
        colour = {"ok": "green", "not-modified": "cyan", "partial": "yellow"}.get(
            feed.last_status or "", "red"
        )
        table.add_row(
            feed.url,
            f"[{colour}]{feed.last_status or 'never fetched'}[/]",
            str(feed.last_http_status or ""),
            f"{feed.last_fetched_at:%Y-%m-%d %H:%M}" if feed.last_fetched_at else "",
            f"{feed.last_ok_at:%Y-%m-%d %H:%M}" if feed.last_ok_at else "",
            str(feed.entries_seen),
            feed.last_error or "",
        )
    out.print(table)
    people = ", ".join(f"{count} {state}" for state, count in readers) or "none"
    out.print(f"{articles} articles stored; subscribers: {people}")
    out.print(cli_editions.editions_table(runtime, limit=10))


@subscribers_app.command("import")
def subscribers_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A CSV file with an email column.")],
) -> None:
    """Add or update subscribers from a CSV; bad rows are reported and kept aside, never lost."""
    report = _import(ctx.obj.runtime(), path)
    if report.rejected:
        raise typer.Exit(1)


def _import(runtime: Runtime, path: Path) -> ImportReport:
    if not path.is_file():
        raise NewsletterError(f"no such file: {path}")
    try:
        with unit_of_work(runtime.factory) as session:
            report = import_csv(session, runtime.settings, path)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NewsletterError(f"cannot import {path}: {exc}") from None
    out.print(
        f"{path}: {report.added} added, {report.updated} updated, "
        f"{report.kept} kept as they were (unsubscribed), {len(report.rejected)} rejected"
    )
    for line, _raw, error in report.rejected:
        err.print(f"  line {line}: {error}", highlight=False)
    if report.rejects_file:
        err.print(f"rejected rows written to {report.rejects_file}, with the reason for each")
    return report


@subscribers_app.command("export")
def subscribers_export(
    ctx: typer.Context, path: Annotated[Path, typer.Argument(help="Where to write the CSV.")]
) -> None:
    """Write every subscriber to a CSV in the import format."""
    runtime = ctx.obj.runtime()
    with runtime.factory() as session:
        count = export_csv(session, path)
    out.print(f"{count} subscribers written to {path}")


@app.command()
def demo(
    ctx: typer.Context,
    subscribers: Annotated[Path, typer.Option(help="Demo subscribers to import.")] = Path(
        "subscribers/demo-subscribers.csv"
    ),
) -> None:
    """The whole job on the bundled sample site: fetch, import readers, compose and send the
    weekly edition to the local outbox, and say where it is."""
    state: State = ctx.obj
    if not state.settings.demo:
        raise NewsletterError("`newsletter demo` runs with the demo settings: make demo")
    runtime = state.runtime()
    reports = _fetch_with_progress(runtime)
    _print_reports(reports)
    out.print(_stored_table(runtime))
    _import(runtime, subscribers)
    settings = runtime.settings
    with runtime.factory() as session:
        newest = session.scalar(select(func.max(Article.published_at)))
    if newest is None:
        raise NewsletterError("no articles were stored: the demo has nothing to send")
    # The sample is dated: send the first weekly slot after its newest article, as if on time.
    weekly = settings.newsletter("weekly")
    slot = last_slot(weekly.days, weekly.at, settings.zone, newest + timedelta(days=7))
    report = cli_editions.send_edition(runtime, "weekly", slot)
    cli_editions.print_send_report(report)
    with runtime.factory() as session:
        edition = session.get(Edition, report.edition_id)
    assert edition is not None
    folder = settings.outbox_dir / f"edition-{report.edition_id}"
    files = sorted(folder.glob("*.eml")) if folder.is_dir() else []
    out.print(f"\nThe {edition.newsletter} edition of {edition.slot}: {len(files)} messages in {folder}/")
    if files:
        out.print(f"Open one in a mail client, e.g.:  xdg-open {files[0]}")
        out.print(f"or read its source:              less {files[0]}")
    out.print(f"Database: {settings.database_url}")


def main() -> None:
    """Console entry point: known errors become one line on stderr, never a traceback."""
    try:
        code = app(standalone_mode=False)
    except SettingsError as exc:
        print(f"newsletter: {exc}", file=sys.stderr)
        sys.exit(2)
    except NewsletterError as exc:
        print(f"newsletter: {exc}", file=sys.stderr)
        sys.exit(1)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click's usage errors carry their own exit code
        code = getattr(exc, "exit_code", None)
        if code is None:
            raise
        show = getattr(exc, "show", None)
        if show:
            show()
        sys.exit(code)
    sys.exit(code if isinstance(code, int) else 0)
