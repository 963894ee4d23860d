"""When the store cannot be used now (down, unreadable, full, or busy past a deadline), as
opposed to a request it refuses: what an entry point tells apart to say "come back later"."""

from __future__ import annotations

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from newsletter.errors import StoreError


class StoreBusy(StoreError):
    """Another writer held the store past the deadline of a unit of work that cannot wait (a
    page): nothing was written; asking again later is the answer."""

    def __init__(self, database: str, seconds: float) -> None:
        super().__init__(database, f"busy: no write within {seconds:g} s")
        self.seconds = seconds


# What says the store cannot be used now (down, unreadable, full, busy past a deadline), as
# opposed to a request it refuses: a page answers 503 and asks to come back.
UNAVAILABLE: tuple[type[Exception], ...] = (StoreError, OperationalError, InterfaceError, PoolTimeout)
