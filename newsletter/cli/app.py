"""The `newsletter` command: one sub-command per task, each a thin caller of the services."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
import typer.main
from pydantic import ValidationError
from typer._click import Command, Parameter
from typer._click.exceptions import (
    BadParameter,
    ClickException,
    MissingParameter,
    NoArgsIsHelpError,
    UsageError,
)
from typer.core import TyperGroup

from newsletter import logs
from newsletter.cli import (
    archive,
    bounces,
    checks,
    demo,
    editions,
    editors,
    feeds,
    next_edition,
    preview,
    rehearsal,
    run,
    send,
    serve,
    trending,
)
from newsletter.cli.db import db_app
from newsletter.cli.options import ConfigOption, VerboseOption
from newsletter.cli.output import err
from newsletter.cli.state import State, state
from newsletter.cli.subscribers import subscribers_app
from newsletter.errors import NewsletterError
from newsletter.store.availability import UNAVAILABLE
from newsletter.store.runtime import driver_words
from newsletter.text import printable

app = typer.Typer(
    help="Pull a news site's feeds, compose per-reader digests and send them exactly once.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(feeds.fetch)
app.command()(feeds.status)
app.command()(trending.trending)
app.command()(preview.preview)
app.add_typer(next_edition.edition_app, name="edition")
app.command()(checks.check)
app.command()(send.send)
app.command("test-send")(rehearsal.test_send)
app.command()(editions.editions)
app.command()(editions.deliveries)
app.command()(bounces.bounces)
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(editors.editors_app, name="editors")
app.add_typer(archive.archive_app, name="archive")
app.add_typer(db_app, name="db")
app.command()(demo.demo)
app.command()(run.run)
app.command()(serve.serve)


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Logging as asked so far; a `--verbose` after the command turns debug on there."""
    logs.configure(state(ctx).verbose)


def _shared(config: ConfigOption = None, verbose: VerboseOption = False) -> None:
    """The options every command takes, before or after its name (see `shared_options`)."""


def shared_options() -> list[Parameter]:
    """`--config` and `--verbose` as typer makes them, fresh for one command."""
    template = typer.Typer(add_completion=False)
    template.command()(_shared)
    return list(typer.main.get_command(template).params)


def command() -> Command:
    """The `newsletter` command with `--config` and `--verbose` on the root and on every command
    and group below it, so they work wherever they are typed."""
    root = typer.main.get_command(app)
    below = [root]
    while below:
        current = below.pop()
        current.params.extend(shared_options())
        if isinstance(current, TyperGroup):
            below.extend(current.commands.values())
    return root


def main() -> None:
    """Console entry point: every expected failure is one line on stderr and an exit status.

    2: what was asked is wrong whatever the store holds (settings, options, arguments);
    1: the command ran and could not do it all (a feed or delivery failed, a name matched
    nothing, the store or a file could not be used); see `NewsletterError.exit_code`.
    """
    shared = State()
    try:
        code = command().main(prog_name="newsletter", standalone_mode=False, obj=shared)
    except NewsletterError as exc:
        fail(str(exc), exc.exit_code)
    except UNAVAILABLE as exc:  # the store down or locked outside a send's own retries
        settings = shared.settings
        fail(
            f"the database {settings.database_label()} cannot be used now ({driver_words(settings, exc)}); "
            "nothing was lost: run the command again once it is back",
            1,
        )
    except OSError as exc:  # a file the command reads or writes: a missing folder, no permission, a full disk
        fail(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc.strerror or exc), 1)
    except NoArgsIsHelpError as exc:  # `newsletter` or `newsletter edition` alone: the help
        exc.show()
        sys.exit(exc.exit_code)
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "newsletter"
        said = plain(exc) if isinstance(exc, BadParameter) else exc.format_message()
        fail(f"{said} (see `{where} --help`)", exc.exit_code)
    except ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    finally:
        shared.close()
    sys.exit(code if isinstance(code, int) else 0)


def plain(exc: BadParameter) -> str:
    """A bad value in plain words, after the option's names ('--days: not a whole number: 'x''),
    never the wording of the library that checked it."""
    param = exc.param
    if param is None or isinstance(exc, MissingParameter):
        return exc.format_message()
    if param.param_type_name == "option":
        name = "/".join(sorted([*param.opts, *param.secondary_opts], key=len))
    else:
        name = (param.metavar or param.name or "argument").upper()
    cause = exc.__cause__
    if not isinstance(cause, ValidationError) or not cause.errors():
        return f"{name}: {exc.message}"
    error = cause.errors()[0]
    given = error.get("input")
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    kind = error["type"]
    if kind in ("int_parsing", "int_from_float"):
        return f"{name}: not a whole number: {given!r}"
    if kind in ("float_parsing", "finite_number"):
        return f"{name}: not a number: {given!r}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        if low is not None and high is not None:
            return f"{name}: use a number from {low} to {high}, not {given}"
        bound = f"{low} or more" if low is not None else f"{high} or less"
        return f"{name}: use {bound}, not {given}"
    if kind in ("enum", "literal_error"):
        expected = error.get("ctx", {}).get("expected", "one of the listed values")
        return f"{name}: use {expected}, not {given!r}"
    return f"{name}: {error['msg'].removeprefix('Value error, ')}"


def fail(message: str, code: int) -> NoReturn:
    """One line, whatever the message holds (server answers can carry line breaks)."""
    print(f"newsletter: {' '.join(printable(message).split())}", file=sys.stderr)
    sys.exit(code)
