"""Waiting for a condition another thread or process brings about, with a deadline, never a
fixed sleep."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from sqlalchemy import text

from newsletter.store.runtime import Runtime


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


def at_the_store(thread: threading.Thread, runtime: Runtime) -> bool:
    """Whether `thread` is done, or waits for a lock another transaction holds on the store: a
    row lock on PostgreSQL (as the server tells), our writers' lock on SQLite (as its stack shows)."""
    if not thread.is_alive():
        return True
    if runtime.engine.dialect.name == "postgresql":
        with runtime.engine.connect() as connection:
            waiting = connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        return bool(waiting)
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "hold" and code.co_filename.endswith("store/db.py"):
            return True
        frame = frame.f_back
    return False
