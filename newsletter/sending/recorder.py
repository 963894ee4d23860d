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
    """Writes a provider's outcomes to the ledger, one write at a time, grouping what came
    meanwhile: outcomes reported from several threads at once (requests or connections in
    flight together) go in one transaction.

    `durable` (an API whose answer can be lost): a report returns once its outcomes are written,
    so a request's readers are in the ledger before its thread posts another request, and a crash
    leaves uncertain only what was in flight. Otherwise (SMTP, where a write per message would
    cost more than the message) a writer thread writes them within `seconds` (50 ms) or once
    `size` wait, and the connections never wait for the database: a crash forgets at most that
    much of what was accepted. `flush` writes what is left and raises what could not be written.

    Refusals (failed, deferred) are held back, not written: the sender first asks whether the
    provider, rather than the readers, is to blame (`held`), then writes them (`write_held`). A
    refused message was not sent, so holding it back can never cause a copy to go twice.
    """

    def __init__(
        self,
        write: Callable[[list[Outcome]], None],
        size: int = 200,
        seconds: float = 0.05,
        durable: bool = False,
    ) -> None:
        self.write = write
        self.durable = durable
        self.size = size
        self.seconds = seconds
        self.lock = threading.Lock()  # guards the lists below, never held while writing
        self.wake = threading.Condition(self.lock)
        self.writing = threading.Lock()  # one write at a time
        self.pending: list[Outcome] = []
        self.held: list[Outcome] = []
        self.seen: list[Outcome] = []
        self.since = 0.0
        self.writer: threading.Thread | None = None
        self.closed = False

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
            if not self.durable and self.writer is None and not self.closed:
                self.writer = threading.Thread(target=self._write_on, name="recorder", daemon=True)
                self.writer.start()
            self.wake.notify()
        if self.durable:  # written now: by this thread, or by the one writing (ours with its own)
            self.flush()

    def _write_on(self) -> None:
        """The writer: what is due (`size` outcomes, or the oldest `seconds` old) goes at once."""
        while True:
            with self.lock:
                while not self.closed:
                    if self.pending:
                        left = self.seconds - (time.monotonic() - self.since)
                        if len(self.pending) >= self.size or left <= 0:
                            break
                        self.wake.wait(left)
                    else:
                        self.wake.wait()
                if self.closed:
                    return
            try:
                self.flush()
            except Exception:  # the sender's own flush at the end of the batch will raise it
                log.exception("writing outcomes to the ledger failed; the batch's end will try again")
                return

    def flush(self) -> None:
        """Write what waits (never the held failures); what a failed write held is kept for
        the next try."""
        with self.writing:
            with self.lock:
                batch, self.pending = self.pending, []
            if not batch:
                return  # the writer took it
            try:
                self.write(batch)
            except Exception:
                with self.lock:
                    self.pending = batch + self.pending
                raise

    def close(self, flush: bool = True) -> None:
        """Stop the writer, then write what is left (unless told not to: an error is on its way)."""
        with self.lock:
            self.closed = True
            self.wake.notify()
        if self.writer is not None and self.writer is not threading.current_thread():
            self.writer.join()
        if flush:
            self.flush()

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
