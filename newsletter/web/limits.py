"""Rate limits in this process's memory: a sliding window of recent requests per key.

Per process by design: behind several workers or machines each counts its own, which is still a
bound, and the service's own throttle (one notice an hour per address) holds across them all.
"""

from __future__ import annotations

import threading
from collections import deque

# Beyond this many keys, those with nothing recent are dropped; a flood of new keys cannot grow
# the process without bound (the oldest half goes when nothing is stale).
MAX_KEYS = 100_000


class Limit:
    """At most `allowed` requests per key within `window` seconds."""

    def __init__(self, allowed: int, window: float) -> None:
        self.allowed = allowed
        self.window = window
        self._recent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> bool:
        """Count one request for `key`; False when it is over the limit (it is not counted)."""
        with self._lock:
            recent = self._recent.get(key)
            if recent is None:
                if len(self._recent) >= MAX_KEYS:
                    self._prune(now)
                recent = self._recent[key] = deque()
            if recent and now < recent[-1]:  # the clock went back (NTP, a resumed machine): start again
                recent.clear()
            while recent and now - recent[0] >= self.window:
                recent.popleft()
            if len(recent) >= self.allowed:
                return False
            recent.append(now)
            return True

    def _prune(self, now: float) -> None:
        stale = [key for key, recent in self._recent.items() if not recent or now - recent[-1] >= self.window]
        for key in stale:
            del self._recent[key]
        if len(self._recent) >= MAX_KEYS:
            for key in list(self._recent)[: MAX_KEYS // 2]:
                del self._recent[key]
