"""The `newsletter` command: a thin caller of the services, one sub-command per task."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from newsletter import logs
from newsletter.errors import NewsletterError, SettingsError
from newsletter.ingest import FeedReport, fetch_feeds
from newsletter.models import Article, Category, article_categories
from newsletter.runtime import Runtime, open_runtime
from newsletter.settings import load_settings

app = typer.Typer(
    help="Pull a news site's feeds, compose per-reader digests and send them exactly once.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database: migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)


class State:
    """Made by the callback; commands ask it for the runtime, which connects on first use."""

    def __init__(self, config: Path | None) -> None:
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
            select(Article.language, func.count())
            .group_by(Article.language)
            .order_by(Article.language)
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
def demo(ctx: typer.Context) -> None:
    """Run the whole job on the bundled sample site: fetch, store, and show what was stored."""
    state: State = ctx.obj
    if not state.settings.demo:
        raise NewsletterError("`newsletter demo` runs with the demo settings: make demo")
    runtime = state.runtime()
    reports = _fetch_with_progress(runtime)
    _print_reports(reports)
    out.print(_stored_table(runtime))
    out.print(f"Database: {runtime.settings.database_url}")


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
