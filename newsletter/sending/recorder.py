"""Collecting a provider's outcomes and writing them to the ledger in small groups."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from newsletter.sending.providers import Outcome, OutcomeStatus

log = logging.getLogger("newsletter.send")
# Refusals, held back until the sender has judged whose fault they are.
HELD = (OutcomeStatus.FAILED, OutcomeStatus.DEFERRED)


class Recorder:
    """Writes outcomes at once for a whole request, and within `seconds` (50 ms) for
    message-at-a-time providers (SMTP), where a write per message would cost more than the
    message: a timer flushes what waits even when no further outcome comes (a slow reply), so a
    crash forgets at most that much of what was accepted.

    Providers report from several threads (requests or connections in flight at once). One
    writer at a time: outcomes reported while a write is under way wait for it and go together
    in the next one, so several requests answered at once cost one transaction, not several.

    Refusals (failed, deferred) are held back, not written: the sender first asks whether the
    provider, rather than the readers, is to blame (`held`), then writes them (`write_held`). A
    refused message was not sent, so holding it back can never cause a copy to go twice.
    """

    def __init__(
        self, write: Callable[[list[Outcome]], None], size: int = 200, seconds: float = 0.05
    ) -> None:
        self.write = write
        self.size = size
        self.seconds = seconds
        self.lock = threading.Lock()  # guards the lists below, never held while writing
        self.writing = threading.Lock()  # the one writer
        self.pending: list[Outcome] = []
        self.held: list[Outcome] = []
        self.seen: list[Outcome] = []
        self.since = 0.0
        self.timer: threading.Timer | None = None

    def __call__(self, outcomes: list[Outcome]) -> None:
        with self.lock:
            self.seen.extend(outcomes)
            self.held.extend(o for o in outcomes if o.status in HELD)
            now = [o for o in outcomes if o.status not in HELD]
            if not now:
                return
            if not self.pending:
                self.since = time.monotonic()
            self.pending.extend(now)
            due = len(self.pending) >= self.size or time.monotonic() - self.since >= self.seconds
            if not due and self.timer is None:
                self.timer = threading.Timer(self.seconds, self._on_time)
                self.timer.daemon = True
                self.timer.start()
        if due:
            self.flush()

    def _on_time(self) -> None:
        try:
            self.flush()
        except Exception:  # the sender's own flush at the end of the batch will raise it
            log.exception("writing outcomes to the ledger failed; the batch's end will try again")

    def flush(self) -> None:
        """Write what waits (never the held failures); what a failed write held is kept for
        the next try."""
        with self.writing:
            with self.lock:
                if self.timer is not None:
                    self.timer.cancel()
                    self.timer = None
                batch, self.pending = self.pending, []
            if not batch:
                return  # the writer before us took it
            try:
                self.write(batch)
            except Exception:
                with self.lock:
                    self.pending = batch + self.pending
                raise

    def write_held(self) -> None:
        """Write the failures held back, once the sender has cleared the readers of blame."""
        with self.writing:
            with self.lock:
                held, self.held = self.held, []
            if held:
                self.write(held)

    def done(self) -> set[int]:
        """The deliveries the provider has accounted for."""
        with self.lock:
            return {o.delivery_id for o in self.seen}
