"""The `newsletter` command run in this process, as an operator types it: its exit status and what it
printed, without the second or so a new interpreter costs."""

from __future__ import annotations

import io
import logging
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from unittest import mock

from newsletter.cli.app import main


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def newsletter(*args: str) -> Ran:
    """`newsletter ARGS...` through the console entry point; the logging it configures is undone."""
    logger = logging.getLogger("newsletter")
    kept = (logger.handlers[:], logger.level, logger.propagate)
    stdout, stderr = io.StringIO(), io.StringIO()
    code: object = 0
    try:
        with (
            mock.patch.object(sys, "argv", ["newsletter", *args]),
            redirect_stdout(stdout),
            redirect_stderr(stderr),
        ):
            main()
    except SystemExit as exc:
        code = exc.code
    finally:
        logger.handlers[:] = kept[0]
        logger.setLevel(kept[1])
        logger.propagate = kept[2]
    return Ran(code if isinstance(code, int) else 1, stdout.getvalue(), stderr.getvalue())
