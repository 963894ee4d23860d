"""A sender that dies at an instant of the test's choosing, in this process: what a kill -9
leaves behind, without a process to start for it.

The doomed sender has a store connection of its own, as a process has. When the test kills it
(from the provider's side: the loopback API or SMTP server, at the n-th request or message),
every statement it would run next, in any of its threads, raises `Killed` instead, and its
connection is dropped: its open transaction is rolled back as the database does for a process
that died. `Killed` is no `Exception`, so none of the sender's own handlers turns it into a
clean stop: nothing more of it is written, nothing more is handed over, its claims stay as they
were. They name a process that no longer exists (a pid above any pid_max), so the next sender
on this host takes them over at once, as it does a killed process's (`ledger._claim_is_dead`).

What only a real process shows (the kernel closing its sockets, a kill in the middle of a write)
stays in the e2e tests (test_send_gate_e2e, test_provider_word_e2e, test_takeover_processes).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from newsletter.sending.pace import Pace
from newsletter.sending.providers import Provider, make_provider
from newsletter.sending.report import SendReport
from newsletter.sending.sender import Sender
from newsletter.settings import Settings
from newsletter.store.runtime import open_runtime

# Above PID_MAX_LIMIT (2**22): no process has it, so `kill(pid, 0)` says it is gone.
GONE_PID = 2**22 + 1


class Killed(BaseException):
    """The doomed sender's process is gone: raised wherever it would do anything more."""


class Doomed:
    """A sender in this process that `kill()` stops dead (see the module's docstring)."""

    def __init__(self, settings: Settings, pace: Pace | None = None) -> None:
        self.settings = settings
        self.pace = pace or Pace.from_settings(settings.sending)
        self.dead = threading.Event()
        self.report: SendReport | None = None

    def kill(self) -> None:
        self.dead.set()

    def _refuse(self, *_args: Any) -> None:
        if self.dead.is_set():
            raise Killed  # on a statement: SQLAlchemy drops the connection, rolling back

    def _sleep(self, seconds: float) -> None:
        if self.dead.wait(seconds):
            raise Killed

    def send(self, edition_id: int, provider: Provider | None = None) -> None:
        """Send until killed (through `provider`, or the settings' own); a sender that finishes
        alive fails the test."""
        runtime = open_runtime(self.settings, migrate=False)
        event.listen(runtime.engine, "before_cursor_execute", self._refuse)
        event.listen(runtime.engine, "commit", self._refuse)
        provider = provider or make_provider(self.settings)
        sender = Sender(self.settings, runtime.factory, provider, self.pace, sleep=self._sleep)
        sender.worker = f"{socket.gethostname()}:{GONE_PID}:{int(time.time())}:1"
        try:
            with _quiet_threads():
                self.report = sender.send(edition_id)
        except Killed:
            return
        finally:
            provider.close()
            runtime.close()
        raise AssertionError(f"the sender was never killed: {self.report}")


@contextmanager
def _quiet_threads() -> Iterator[None]:
    """A doomed sender's other threads (its recorder, its heartbeat) end with `Killed` too: not
    an error of the test's."""
    before = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not Killed:
            before(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = before
