"""Engine, sessions and migrations; made by entry points, never at import time."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import IO, Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for SQLite (folder created, foreign keys and WAL on) or PostgreSQL (psycopg 3)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, open transactions: savepoints then work.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        # IMMEDIATE: a unit of work takes the write lock up front, so two writers wait rather than
        # deadlock; a read-only session (`reading`) begins DEFERRED and blocks nobody.
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


# Held while migrating on PostgreSQL: schedulers, senders and the web app started together
# after an upgrade migrate one at a time (SQLite's write lock does the same there).
MIGRATION_LOCK = 0x6E65_7773  # "news"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations; safe to call from every command (a no-op when up to date), and from
    several processes at once. On SQLite it queues with the units of work (see `Writer`): a
    command started while the pages write without pause is not starved of the store."""
    with _writer(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def reading(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A read-only session: on SQLite it takes no write lock, so readers never queue behind writers."""
    with factory() as session:
        session.connection(execution_options={"sqlite_begin": "DEFERRED"})
        yield session


class Writer:
    """One writer at a time on a SQLite database: a lock for this process's threads, and a lock
    file beside the database for other processes (several web workers, a sender).

    SQLite lets a waiting writer retry after sleeps of up to 100 ms, in no order: forty page
    threads wanting the lock at once made some wait seconds. Queued here they go in turn, each
    as soon as the last is done. The kernel drops the file lock of a process that dies.
    """

    def __init__(self, database: str | None) -> None:
        self.threads = threading.RLock()
        self.depth = 0
        self.path = Path(f"{database}-writer.lock") if database and database != ":memory:" else None
        self.file: IO[bytes] | None = None

    def __enter__(self) -> None:
        self.threads.acquire()
        self.depth += 1
        if self.depth == 1 and self.path is not None:
            try:
                self.file = self.file or self.path.open("ab")
                fcntl.flock(self.file, fcntl.LOCK_EX)
            except OSError:  # a read-only folder: SQLite's own lock still holds
                self.file = None

    def __exit__(self, *_exc: object) -> None:
        self.depth -= 1
        if self.depth == 0 and self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
        self.threads.release()


# One per database file in this process, however many engines open it.
_WRITERS: dict[str, Writer] = {}
_WRITERS_LOCK = threading.Lock()


def _writer(engine: object) -> AbstractContextManager[object]:
    if not isinstance(engine, Engine) or engine.dialect.name != "sqlite":
        return nullcontext()
    name = engine.url.database
    database = str(Path(name).resolve()) if name and name != ":memory:" else ":memory:"
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(database, Writer(database))


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One session per unit of work: commit on success, roll back on any error."""
    with _writer(factory.kw.get("bind")), factory() as session, session.begin():
        yield session
