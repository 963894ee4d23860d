"""The `newsletter` command: one sub-command per task, each a thin caller of the services."""

from __future__ import annotations

import atexit
import functools
import gc
import sys
from typing import NoReturn

import typer
import typer.main
from typer._click import Command
from typer._click.exceptions import (
    BadParameter,
    ClickException,
    MissingParameter,
    NoArgsIsHelpError,
    UsageError,
)

from newsletter import logs
from newsletter.cli.commands import LazyGroup, with_shared_options
from newsletter.cli.state import State, state
from newsletter.errors import NewsletterError
from newsletter.text import printable

# The commands come from the table of `commands`, imported only when one runs.
app = typer.Typer(
    cls=LazyGroup,
    help="Pull a news site's feeds, compose per-reader digests and send them exactly once.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(ctx: typer.Context) -> None:
    """Logging as asked so far; a `--verbose` after the command turns debug on there."""
    logs.configure(state(ctx).verbose)


def command() -> Command:
    """The `newsletter` command with `--config` and `--verbose` on the root and on every command
    and group below it, so they work wherever they are typed."""
    return with_shared_options(typer.main.get_command(app))


def main() -> None:
    """Console entry point: every expected failure is one line on stderr and an exit status.

    2: what was asked is wrong whatever the store holds (settings, options, arguments);
    1: the command ran and could not do it all (a feed or delivery failed, a name matched
    nothing, the store or a file could not be used); see `NewsletterError.exit_code`.
    """
    _collect_nothing_at_exit()
    shared = State()
    try:
        code = command().main(prog_name="newsletter", standalone_mode=False, obj=shared)
    except NewsletterError as exc:
        fail(str(exc), exc.exit_code)
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
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        told = store_unavailable(shared, exc)
        if told is None:
            raise
        fail(told, 1)
    finally:
        shared.close()
    sys.exit(code if isinstance(code, int) else 0)


@functools.cache
def _collect_nothing_at_exit() -> None:
    """Leaving, the interpreter's collector walks every object the imports made: 0.3 s of CPU a
    command, on the critical path of `send --workers` (each sender pays it, the last one last).
    Frozen first, they are only freed."""
    atexit.register(gc.freeze)


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
    from pydantic import ValidationError  # only for an error: the command may not have loaded it

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


def store_unavailable(shared: State, exc: Exception) -> str | None:
    """What to say when `exc` is the store down or locked outside a send's own retries, else None.
    Imported here: a command that never opened the store (`--help`, a bad option) never meets it."""
    from newsletter.store.availability import UNAVAILABLE

    if not isinstance(exc, UNAVAILABLE):
        return None
    from newsletter.store.runtime import driver_words

    settings = shared.settings
    return (
        f"the database {settings.database_label()} cannot be used now ({driver_words(settings, exc)}); "
        "nothing was lost: run the command again once it is back"
    )
