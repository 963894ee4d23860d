"""What an entry point builds once and passes down: settings, engine and session factory."""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.errors import SettingsError, StoreError
from newsletter.settings import Settings, url_secrets
from newsletter.store.db import MigrationError, make_engine, session_factory, upgrade, write_wait

# Ids are INTEGER columns: 32-bit on PostgreSQL, so no row has a larger one. Entry points check
# ids against it before a query (SQLite overflows past 64 bits).
MAX_ID = 2**31 - 1


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]

    def close(self) -> None:
        self.engine.dispose()

    def waiting_at_most(self, seconds: float) -> Runtime:
        """This runtime with sessions whose units of work wait at most `seconds` for the write
        lock, then raise StoreBusy: what a page answering, never hanging, works with."""
        return replace(self, factory=session_factory(self.engine, write_wait=seconds))

    @property
    def write_wait(self) -> float | None:
        """How long its units of work wait for the write lock (None: as long as it takes)."""
        return write_wait(self.factory)


def open_runtime(settings: Settings, migrate: bool = True) -> Runtime:
    """Connect and bring the schema up to date, as every command that touches the store does.

    A store that cannot be opened is a StoreError naming it, password masked: the one line an
    operator reads instead of the driver's traceback.
    """
    settings = settings.resolved()  # idempotent: however the settings were built, no path follows the cwd
    try:
        engine = make_engine(settings.database_url)
    except (ArgumentError, ValueError):
        raise SettingsError("database_url", f"not a database URL: {settings.database_label()}") from None
    except OSError as exc:  # SQLite's folder cannot be made
        raise _unusable(settings, exc) from None
    try:
        if migrate:
            upgrade(engine)
    except (DBAPIError, MigrationError, OSError) as exc:
        engine.dispose()
        raise _unusable(settings, exc) from None
    return Runtime(settings, engine, session_factory(engine))


def _unusable(settings: Settings, exc: Exception) -> StoreError:
    return StoreError(settings.database_label(), driver_words(settings, exc))


def driver_words(settings: Settings, exc: Exception) -> str:
    """The driver's own words, first line only, never with the password even if it echoes one."""
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    line = next(iter(str(cause).strip().splitlines()), type(cause).__name__)
    for secret in url_secrets(settings.database_url):
        line = line.replace(secret, "***")
    return line
