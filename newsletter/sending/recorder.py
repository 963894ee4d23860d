"""Collecting a provider's outcomes and writing them to the ledger in small groups, with the
hand-overs (the gate each message or request passes just before it goes) in the same writes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from newsletter.sending.providers import Outcome, OutcomeStatus, Outgoing

log = logging.getLogger("newsletter.send")
# Refusals, held back until the sender has judged whose fault they are.
HELD = (OutcomeStatus.FAILED, OutcomeStatus.DEFERRED)


class NotWritten(Exception):
    """A hand-over went with another thread's write, and that write failed."""


class Recorder:
    """Writes a provider's outcomes to the ledger, one write at a time, grouping what came
    meanwhile: outcomes reported from several threads at once (requests or connections in
    flight together) go in one transaction.

    `durable` (an API whose answer can be lost): a report returns once its outcomes are written,
    so a request's readers are in the ledger before its thread posts another request, and a crash
    leaves uncertain only what was in flight. Otherwise (SMTP, where a write per message would
    cost more than the message) a writer thread writes them within `seconds` (50 ms) or once
    `size` wait, or the next hand-over takes them along: a crash forgets at most that much of
    what was accepted, and those messages, handed over, are found uncertain, never sent again.
    `flush` writes what is left and raises what could not be written.

    Refusals (failed, deferred) are held back, not written: the sender first asks whether the
    provider, rather than the readers, is to blame (`held`), then writes them (`write_held`). A
    refused message was not sent, so holding it back can never cause a copy to go twice.

    `hand` is the gate: it returns once the ledger says which of these messages may go (their
    readers still subscribed), written for good together with whatever else waits (outcomes,
    other connections' hand-overs: `gate` writes both in one transaction). A message whose
    hand-over could not be written raises, and is never sent.
    """

    def __init__(
        self,
        write: Callable[[list[Outcome]], object],
        size: int = 200,
        seconds: float = 0.05,
        durable: bool = False,
        gate: Callable[[list[Outcome], list[int]], set[int]] | None = None,
        gather: float = 0.0,
    ) -> None:
        self.write = write
        self.gate = gate
        self.gather = gather
        self.durable = durable
        self.size = size
        self.seconds = seconds
        self.lock = threading.Lock()  # guards the lists below, never held while writing
        self.wake = threading.Condition(self.lock)
        self.decided = threading.Condition(self.lock)  # a hand-over written (or not)
        self.leading = False  # a thread is gathering hand-overs for the next write
        self.in_write: set[int] = set()  # hand-overs being written now
        self.writing = threading.Lock()  # one write at a time
        self.pending: list[Outcome] = []
        self.held: list[Outcome] = []
        self.seen: list[Outcome] = []
        self.asked: list[int] = []  # hand-overs waiting for the next write
        self.handed: set[int] = set()
        self.turned_away: set[int] = set()  # the reader left: suppressed by the gate, not sent
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
            except Exception as exc:  # the sender's own flush at the end of the batch will raise it
                log.warning(
                    "writing outcomes to the ledger failed (%s); the batch's end will try again",
                    type(exc).__name__,
                )
                return

    def hand(self, messages: Sequence[Outgoing]) -> set[int]:
        """The gate before the provider: which of these messages may go, once that is written.
        One thread at a time leads: it waits `gather` seconds for the other connections'
        hand-overs to join, then writes them all in one transaction; the others wait for it."""
        ids = [m.delivery_id for m in messages]
        if self.gate is None:
            return set(ids)
        with self.lock:
            self.handed.difference_update(ids)  # asked again (a request posted again): asked anew
            self.asked.extend(ids)
            while not self._decided(ids):
                waiting = any(i in self.asked for i in ids)
                if not waiting and not any(i in self.in_write for i in ids):  # its write failed
                    raise NotWritten("the ledger could not be written: not handed over")
                if waiting and not self.leading:
                    self.leading = True
                    break
                self.decided.wait()
            else:
                return {i for i in ids if i in self.handed}
        try:
            if self.gather:
                time.sleep(self.gather)
            self.flush()  # ours and those that joined
        finally:
            with self.lock:
                self.leading = False
                self.decided.notify_all()
        with self.lock:
            if not self._decided(ids):
                raise NotWritten("the ledger could not be written: not handed over")
            return {i for i in ids if i in self.handed}

    def _decided(self, ids: list[int]) -> bool:
        return all(i in self.handed or i in self.turned_away for i in ids)

    def flush(self) -> None:
        """Write what waits (never the held failures), with the hand-overs asked for; outcomes a
        failed write held are kept for the next try, its hand-overs are refused (not sent)."""
        with self.writing:
            with self.lock:
                batch, self.pending = self.pending, []
                asked, self.asked = self.asked, []
                self.in_write.update(asked)
            if not batch and not asked:
                return  # the writer took it
            handed: set[int] = set()
            try:
                if asked and self.gate is not None:
                    handed = self.gate(batch, asked)
                else:
                    self.write(batch)
            except Exception:
                with self.lock:
                    self.pending = batch + self.pending
                raise
            else:
                with self.lock:
                    self.handed.update(handed)
                    self.turned_away.update(i for i in asked if i not in handed)
            finally:
                if asked:
                    with self.lock:
                        self.in_write.difference_update(asked)
                        self.decided.notify_all()

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
        """The deliveries accounted for: by the provider, or by the gate (the reader left)."""
        with self.lock:
            return {o.delivery_id for o in self.seen} | self.turned_away

    def unsaved(self) -> list[Outcome]:
        """What could not be written, once the writing stopped: accepted messages as they are,
        refusals (never judged) as retries: a message refused was not sent, so it may go again."""
        with self.lock:
            left, self.pending = self.pending, []
            held, self.held = self.held, []
        return left + [Outcome(o.delivery_id, OutcomeStatus.RETRY, None, o.detail) for o in held]
