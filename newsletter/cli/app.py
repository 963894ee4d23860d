"""The `newsletter` command: one sub-command per task, each a thin caller of the services."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from newsletter import logs
from newsletter.cli import demo, editions, feeds, send
from newsletter.cli.db import db_app
from newsletter.cli.output import err
from newsletter.cli.state import State
from newsletter.cli.subscribers import subscribers_app
from newsletter.errors import NewsletterError, SettingsError

app = typer.Typer(
    help="Pull a news site's feeds, compose per-reader digests and send them exactly once.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(feeds.fetch)
app.command()(feeds.status)
app.command()(editions.trending)
app.command()(editions.preview)
app.add_typer(editions.edition_app, name="edition")
app.command()(send.send)
app.command()(editions.editions)
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(db_app, name="db")
app.command()(demo.demo)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            help="Settings file (default: $NEWSLETTER_CONFIG, else config/newsletter.toml under home)."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    logs.configure(verbose)
    ctx.obj = State(config)
    ctx.call_on_close(ctx.obj.close)


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
