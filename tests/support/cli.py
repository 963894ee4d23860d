"""The `newsletter` command as an operator types it: run in this process (its exit status and what
it printed, without the second or so a new interpreter costs), or as a process of its own for the
properties that are about a process."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from newsletter.cli.app import main

ROOT = Path(__file__).resolve().parent.parent.parent


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


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`newsletter ARGS...` as a process of its own, with the caller's NEWSLETTER_* left out."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        env={**base, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
