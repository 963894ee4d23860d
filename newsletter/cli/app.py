"""The `newsletter` command: one sub-command per task, each a thin caller of the services."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

from newsletter import logs
from newsletter.cli import demo, editions, feeds, send
from newsletter.cli.db import db_app
from newsletter.cli.output import err
from newsletter.cli.state import State
from newsletter.cli.subscribers import subscribers_app
from newsletter.errors import NewsletterError
from newsletter.text import printable

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
    """Console entry point: every expected failure is one line on stderr and an exit status.

    2: what was asked is wrong whatever the store holds (settings, options, arguments);
    1: the command ran and could not do it all (a feed or delivery failed, a name matched
    nothing, the store or a file could not be used); see `NewsletterError.exit_code`.
    """
    try:
        code = app(prog_name="newsletter", standalone_mode=False)
    except NewsletterError as exc:
        fail(str(exc), exc.exit_code)
    except OSError as exc:  # a file the command reads or writes: a missing folder, no permission, a full disk
        fail(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc.strerror or exc), 1)
    except NoArgsIsHelpError as exc:  # `newsletter` or `newsletter edition` alone: the help
        exc.show()
        sys.exit(exc.exit_code)
    except UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "newsletter"
        fail(f"{exc.format_message()} (see `{command} --help`)", exc.exit_code)
    except ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def fail(message: str, code: int) -> NoReturn:
    """One line, whatever the message holds (server answers can carry line breaks)."""
    print(f"newsletter: {' '.join(printable(message).split())}", file=sys.stderr)
    sys.exit(code)
