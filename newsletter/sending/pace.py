"""How hard a sender pushes: a messages-per-second cap, the retry schedule, the lease on a batch."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from newsletter.settings import SendingSettings


@dataclass(frozen=True)
class Pace:
    rate: float | None = None
    max_retries: int = 8
    base_delay: float = 1.0
    max_delay: float = 60.0
    lease: timedelta = timedelta(minutes=1)
    # A mailbox refusing for now is tried this often in all, `retry_delay` seconds apart at first.
    max_attempts: int = 5
    retry_delay: float = 30.0

    @classmethod
    def from_settings(cls, sending: SendingSettings, rate: float | None = None) -> Pace:
        return cls(
            rate=rate or sending.rate,
            max_retries=sending.max_retries,
            max_delay=sending.max_backoff_seconds,
            lease=timedelta(minutes=sending.lease_minutes),
            max_attempts=sending.max_attempts,
            retry_delay=sending.retry_delay_seconds,
        )

    def backoff(self, streak: int, told: float | None) -> float:
        """Capped exponential backoff with jitter; a provider's own Retry-After wins if longer."""
        delay = min(self.max_delay, self.base_delay * 2 ** max(streak - 1, 0))
        delay = random.uniform(delay / 2, delay)
        return max(delay, told) if told is not None else delay

    def deferral(self, attempts: int) -> timedelta:
        """How long a mailbox that refused for now (after `attempts` tries) is left alone:
        doubling, at most an hour."""
        return timedelta(seconds=min(self.retry_delay * 2 ** max(attempts - 1, 0), 3600.0))

    def ahead(self, done: int, elapsed: float) -> float:
        """Seconds to wait so that `done` messages in `elapsed` seconds keep under the rate."""
        return done / self.rate - elapsed if self.rate else 0.0
