"""Collecting a provider's outcomes and writing them to the ledger in small groups."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from newsletter.sending.providers import Outcome


class Recorder:
    """Writes outcomes at once for a whole request, and within 50 ms for message-at-a-time
    providers (SMTP), where a write per message would cost more than the message. A crash can
    thus forget at most the last 50 ms of marks. Providers may report from several threads."""

    def __init__(
        self, write: Callable[[list[Outcome]], None], size: int = 200, seconds: float = 0.05
    ) -> None:
        self.write = write
        self.size = size
        self.seconds = seconds
        self.lock = threading.Lock()
        self.pending: list[Outcome] = []
        self.since = 0.0
        self.seen: list[Outcome] = []

    def __call__(self, outcomes: list[Outcome]) -> None:
        with self.lock:
            if not self.pending:
                self.since = time.monotonic()
            self.pending.extend(outcomes)
            self.seen.extend(outcomes)
            if len(self.pending) >= self.size or time.monotonic() - self.since >= self.seconds:
                self._flush()

    def flush(self) -> None:
        with self.lock:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.write(self.pending)
            self.pending = []

    def done(self) -> set[int]:
        """The deliveries the provider has accounted for."""
        with self.lock:
            return {o.delivery_id for o in self.seen}
