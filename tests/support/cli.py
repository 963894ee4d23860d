"""The `newsletter` command as an operator types it: run in this process (its exit status and what
it printed, without the second or so a new interpreter costs), or as a process of its own for the
properties that are about a process. Also what the command-line tests share: the times they send
or prepare at, and how a refusal reads."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from newsletter.cli import output
from newsletter.cli.app import main

ROOT = Path(__file__).resolve().parent.parent.parent
# The edition the sample's readers get, as every command tells it.
NOV_23 = "weekly edition of 2026-11-23 07:00 CET, window 2026-11-16 07:00 CET to 2026-11-23 07:00 CET"
BEFORE = ("--at", "2026-11-22T12:00")  # editors at work: the 23 November slot is ahead
ON_TIME = ("--at", "2026-11-23T07:10")  # the slot has come


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def newsletter(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    input: str | bytes | None = None,
) -> Ran:
    """`newsletter ARGS...` through the console entry point, as a process would run it with its
    standard streams on pipes: `env` set and `cwd` entered for the call only, `input` (or nothing)
    on standard input, which is no terminal. The output is read as `subprocess.run(text=True)`
    reads it; the logging the command configures is undone; a traceback is printed on its
    stderr with exit status 1, as the interpreter would."""
    stdin = io.TextIOWrapper(io.BytesIO(input.encode() if isinstance(input, str) else input or b""), "utf-8")
    stdout, stderr = _pipe(), _pipe()
    code: object = 0
    with (
        mock.patch.dict(os.environ, env or {}),
        _working_directory(cwd),
        _logging_kept(),
        mock.patch.object(sys, "argv", ["newsletter", *args]),
        mock.patch.object(sys, "stdin", stdin),
        redirect_stdout(stdout),
        redirect_stderr(stderr),
        _consoles_on_pipes(),
    ):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        except Exception:  # a bug: what the interpreter would do with it
            traceback.print_exc()
            code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): printed, status 1
        print(code, file=stderr)
        code = 1
    return Ran(code, _read(stdout), _read(stderr))


def _pipe() -> io.TextIOWrapper:
    """A text stream with bytes below it (`sys.stdout.buffer` works), as a pipe is; no terminal."""
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)


def _read(stream: io.TextIOWrapper) -> str:
    stream.flush()
    data = stream.buffer.getvalue().decode("utf-8")  # type: ignore[attr-defined]
    return data.replace("\r\n", "\n").replace("\r", "\n")  # universal newlines, as text=True reads


@contextmanager
def _working_directory(cwd: Path | None) -> Iterator[None]:
    if cwd is None:
        yield
        return
    before = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(before)


@contextmanager
def _logging_kept() -> Iterator[None]:
    """The `newsletter` loggers as they were: handlers, levels (a command quiets the loggers of
    what it prints itself) and propagation."""
    kept = {
        logger.name: (logger, logger.handlers[:], logger.level, logger.propagate)
        for logger in [logging.getLogger("newsletter"), logging.getLogger("python_http_client"), *_ours()]
    }
    try:
        yield
    finally:
        for logger, handlers, level, propagate in kept.values():
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
        for logger in _ours():  # made during the call (a module imported then): as a new one is
            if logger.name not in kept:
                logger.handlers[:] = []
                logger.setLevel(logging.NOTSET)
                logger.propagate = True


def _ours() -> list[logging.Logger]:
    known = list(logging.Logger.manager.loggerDict.items())
    return [
        logger
        for name, logger in known
        if name.startswith("newsletter.") and isinstance(logger, logging.Logger)
    ]


@contextmanager
def _consoles_on_pipes() -> Iterator[None]:
    """The module-level Rich consoles of newsletter/cli/output.py as a process makes them when it
    starts: built by the same code, on this call's stdout and stderr and environment (`COLUMNS`,
    `NO_COLOR`...), not on whatever the test runner's streams were when the module was imported.
    They are changed in place: every name bound to them (a default argument too) sees it."""
    consoles = (output.out, output.err)
    kept = [dict(vars(console)) for console in consoles]
    fresh = (output.console(), output.console(stderr=True))
    try:
        for console, made in zip(consoles, fresh, strict=True):
            vars(console).clear()
            vars(console).update(vars(made))
        yield
    finally:
        for console, state in zip(consoles, kept, strict=True):
            vars(console).clear()
            vars(console).update(state)


def one_line(text: str) -> str:
    """Output read as words: where a narrow table wrapped a cell does not matter."""
    return " ".join(text.split())


def refused(result: Ran | subprocess.CompletedProcess, code: int, words: str) -> None:
    """One line on stderr, the CLI's prefix, the exit status, no traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    [line] = result.stderr.splitlines()
    assert line.startswith("newsletter: ") and words in line, line


def environment(**extra: str) -> dict[str, str]:
    """This process's environment without the caller's NEWSLETTER_*, and `extra`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}, **extra}


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, input: str | None = None
) -> subprocess.CompletedProcess:
    """`newsletter ARGS...` as a process of its own (`python -m newsletter`), with the caller's
    NEWSLETTER_* left out: for what only a real process shows."""
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        env=environment(**(env or {})),
        cwd=cwd,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )
