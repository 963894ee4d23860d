"""What an entry point builds once and passes down: settings, engine and session factory."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.settings import Settings
from newsletter.store.db import make_engine, session_factory, upgrade


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    factory: sessionmaker[Session]

    def close(self) -> None:
        self.engine.dispose()


def open_runtime(settings: Settings, migrate: bool = True) -> Runtime:
    """Connect and bring the schema up to date, as every command that touches the store does."""
    settings = settings.resolved()  # idempotent: however the settings were built, no path follows the cwd
    engine = make_engine(settings.database_url)
    if migrate:
        upgrade(engine)
    return Runtime(settings, engine, session_factory(engine))
