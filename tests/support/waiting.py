"""Waiting for a condition another thread or process brings about, with a deadline, never a
fixed sleep."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(condition: Callable[[], object], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def within(condition: Callable[[], object], seconds: float) -> bool:
    """Wait for `condition` at most `seconds` (a slow answer that may let something happen
    first); whether it came."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True
