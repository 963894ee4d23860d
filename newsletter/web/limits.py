"""The pages' rate limits, counted in the store: every worker process of `serve --workers N`
counts in the same place, so a limit is the same whatever the number of processes.

The count runs in a worker thread, as every other store call of a page does: a request waiting
for the store's lock holds up no other request.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from starlette.concurrency import run_in_threadpool

from newsletter.store import limits
from newsletter.store.runtime import Runtime

# How often a process also drops the hits whose window has passed (the daily maintenance does
# too): a store served without the scheduler keeps no more than the last windows' hits.
PRUNE_EVERY = timedelta(minutes=10)


class Limit:
    """At most `allowed` requests per key within `window` seconds; `name` keeps each limit's
    counts apart from the others'."""

    def __init__(self, runtime: Runtime, name: str, allowed: int, window: float) -> None:
        self.runtime = runtime
        self.name = name
        self.allowed = allowed
        self.window = window
        self._pruned: datetime | None = None

    async def take(self, key: str, now: datetime) -> bool:
        """Count one request for `key`; False when it is over the limit (it is not counted)."""
        prune_too = self._pruned is None or not timedelta(0) <= now - self._pruned < PRUNE_EVERY
        if prune_too:
            self._pruned = now
        return await run_in_threadpool(
            limits.take, self.runtime.factory, self.name, key, self.allowed, self.window, now, prune_too
        )
