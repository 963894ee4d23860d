"""The other sender processes of `send --workers N`: started while this one prepares the edition,
told which edition once it is prepared, and waited for."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from contextlib import ExitStack, suppress
from pathlib import Path
from types import TracebackType
from typing import IO

# What a sender started before its edition existed reads on its stdin: the edition's id, or
# nothing (the command refused or failed to prepare one): then it exits without a word.
ON_STDIN = "--edition-on-stdin"


class SenderProcesses:
    """`count` processes running `newsletter send --no-archive` beside this one. Started early
    (`start` without an edition), each imports the CLI and opens the store while this process
    prepares (a second of CPU each, which otherwise delayed the send), then waits on its stdin
    for `go`. Leaving the `with` block unblocks any still waiting (they exit) and waits for all."""

    def __init__(self, count: int, config: Path | None, rate: float | None) -> None:
        self.count = count
        self.command = [sys.executable, "-m", "newsletter"]
        if config is not None:
            self.command += ["--config", str(config)]
        self.command += ["send", "--no-archive"]
        if rate:
            self.command += ["--rate", str(rate)]
        self.children: list[subprocess.Popen[bytes]] = []
        self.logs: list[IO[str]] = []
        self.files = ExitStack()
        self.waiting = False  # started before the edition was known: told it on stdin

    def __enter__(self) -> SenderProcesses:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.wait()
        self.files.close()

    def start(self, edition_id: int | None = None) -> None:
        """Start the processes: on this edition, or (None) waiting to be told it (`go`)."""
        if self.children or not self.count:
            return
        self.waiting = edition_id is None
        command = self.command + ([ON_STDIN] if self.waiting else ["--edition", str(edition_id)])
        # Logs go to files (self.files closes them): a full pipe would stall a sender.
        temporary = tempfile.TemporaryFile
        self.logs = [self.files.enter_context(temporary("w+")) for _ in range(self.count)]
        self.children = [
            subprocess.Popen(
                command,
                stdin=subprocess.PIPE if self.waiting else subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            for log in self.logs
        ]

    def go(self, edition_id: int) -> None:
        """Send this edition: those started early are told it, or the processes start now."""
        if not self.waiting:
            self.start(edition_id)
            return
        for child in self.children:
            _tell(child, f"{edition_id}\n")
        self.waiting = False

    def wait(self) -> list[str]:
        """Wait for them all (those never told an edition exit at once); the last lines of each
        that failed."""
        for child in self.children:
            _tell(child, "")
        problems = []
        for child, log in zip(self.children, self.logs, strict=True):
            if child.wait() != 0:
                log.seek(0)
                problems.append("\n".join(log.read().strip().splitlines()[-5:]))
        return problems


def _tell(child: subprocess.Popen[bytes], line: str) -> None:
    """Write `line` to a waiting sender's stdin and close it (nothing: it exits). One that died
    starting up has its log read by `wait`."""
    if child.stdin is None or child.stdin.closed:
        return
    with suppress(BrokenPipeError):
        child.stdin.write(line.encode())
    with suppress(BrokenPipeError):
        child.stdin.close()
