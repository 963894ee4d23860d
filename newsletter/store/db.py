"""Engine, sessions and migrations; made by entry points, never at import time."""

from __future__ import annotations

import fcntl
import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Connection,
    Engine,
    Text,
    TypeDecorator,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    literal_column,
    select,
    text,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from newsletter.store.availability import StoreBusy

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration: a store already there is not handed to alembic, whose import and scripts
# cost a command that only reads the store more than its own work (tests/test_store.py keeps it so).
HEAD_REVISION = "0018"
# How long a SQLite writer waits for the database's lock unless told otherwise (`write_wait`).
BUSY_SECONDS = 30.0
# The longest sleep between two tries for another process's write lock.
FLOCK_PAUSE = 0.001
# A session factory's `info` key: the seconds a unit of work may wait for the write lock.
WRITE_WAIT = "write_wait"
# Seconds to open a PostgreSQL connection, unless the URL says (`?connect_timeout=`).
CONNECT_SECONDS = 10


def make_engine(url: str) -> Engine:
    """An engine for SQLite (folder created, foreign keys and WAL on) or PostgreSQL (psycopg 3)."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        # A server that takes the connection and never answers (stalled, or a half-open link)
        # is given up on after CONNECT_SECONDS, not libpq's minutes: a scrape or a health check
        # says the store is down while a monitor still waits. The URL's own value wins.
        timeout = {} if "connect_timeout" in parsed.query else {"connect_timeout": CONNECT_SECONDS}
        return create_engine(parsed, pool_pre_ping=True, hide_parameters=True, connect_args=timeout)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"timeout": BUSY_SECONDS}, hide_parameters=True)

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
        options = connection.get_execution_options()
        # A writer outside our lock file (another program) is waited for only this long.
        busy = int(options.get("sqlite_wait", BUSY_SECONDS) * 1000)
        pooled = connection.connection.info
        if pooled.get("busy_ms", int(BUSY_SECONDS * 1000)) != busy:
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {busy}")
            pooled["busy_ms"] = busy
        # A commit that must survive a power cut (an unsubscribe) syncs the log; SQLite reads
        # the setting at BEGIN, so it is set here, and set back for the connection's next user.
        synchronous = options.get("sqlite_synchronous", "NORMAL")
        if pooled.get("synchronous", "NORMAL") != synchronous:
            connection.exec_driver_sql(f"PRAGMA synchronous = {synchronous}")
            pooled["synchronous"] = synchronous
        connection.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', 'IMMEDIATE')}")

    return engine


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


class MigrationError(Exception):
    """alembic could not bring the store up to date (a store newer than this code, say)."""


# Held while migrating on PostgreSQL: schedulers, senders and the web app started together
# after an upgrade migrate one at a time (SQLite's write lock does the same there).
MIGRATION_LOCK = 0x6E65_7773  # "news"


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations; safe to call from every command (a no-op when up to date), and from
    several processes at once. On SQLite it queues with the units of work (see `Writer`): a
    command started while the pages write without pause is not starved of the store."""
    with _writer(engine) or nullcontext(), engine.begin() as connection:
        if revision == "head" and revisions(connection) == [HEAD_REVISION]:
            return
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        from alembic import command  # only with a migration to run (see HEAD_REVISION)
        from alembic.util.exc import CommandError

        config = alembic_config()
        config.attributes["connection"] = connection
        try:
            command.upgrade(config, revision)
        except CommandError as exc:
            raise MigrationError(str(exc)) from exc


def revisions(connection: Connection) -> list[str]:
    """The migrations the store says it is at (one, unless it is empty)."""
    if not inspect(connection).has_table("alembic_version"):
        return []
    return list(connection.scalars(text("SELECT version_num FROM alembic_version")))


def session_factory(engine: Engine, write_wait: float | None = None) -> sessionmaker[Session]:
    """Sessions on `engine`; with `write_wait`, a unit of work waits at most that many seconds
    for the write lock and raises StoreBusy (a page answering, never hanging)."""
    return sessionmaker(engine, expire_on_commit=False, info={WRITE_WAIT: write_wait})


def write_wait(factory: sessionmaker[Session]) -> float | None:
    """How long this factory's units of work wait for the write lock (None: as long as it takes)."""
    wait: float | None = factory.kw.get("info", {}).get(WRITE_WAIT)
    return wait


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
        self.database = database or ":memory:"
        self.threads = threading.RLock()
        self.depth = 0
        self.path = Path(f"{database}-writer.lock") if database and database != ":memory:" else None
        self.file: IO[bytes] | None = None

    def __enter__(self) -> None:
        self.hold(None)

    def __exit__(self, *_exc: object) -> None:
        self.depth -= 1
        if self.depth == 0 and self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
        self.threads.release()

    def hold(self, wait: float | None) -> None:
        """Take the lock, or raise StoreBusy once `wait` seconds have passed (None: wait on)."""
        deadline = time.monotonic() + (wait or 0.0)
        if not self.threads.acquire(timeout=-1 if wait is None else wait):
            raise StoreBusy(self.database, wait or 0.0)
        self.depth += 1
        if self.depth > 1 or self.path is None:
            return
        try:
            self.file = self.file or self.path.open("ab")
            if wait is None:
                fcntl.flock(self.file, fcntl.LOCK_EX)
            elif not _flock_by(self.file, deadline):
                self.__exit__()
                raise StoreBusy(self.database, wait)
        except OSError:  # a read-only folder: SQLite's own lock still holds
            self.file = None

    @contextmanager
    def waiting(self, wait: float | None) -> Iterator[None]:
        self.hold(wait)
        try:
            yield
        finally:
            self.__exit__()


def _flock_by(file: IO[bytes], deadline: float) -> bool:
    """flock has no timeout: try, sleeping a little between tries, until the deadline. The
    sleeps stay short: a process that writes group after group (the one-clicks of a web worker)
    takes the lock again within a millisecond of releasing it, and a waiter asleep for longer
    than that missed every chance (two web workers' one-clicks waited 0.7 s for each other)."""
    pause = 0.0002
    while True:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            pause = min(pause * 2, FLOCK_PAUSE)


# One per database file in this process, however many engines open it.
_WRITERS: dict[str, Writer] = {}
_WRITERS_LOCK = threading.Lock()


def _writer(engine: object) -> Writer | None:
    if not isinstance(engine, Engine) or engine.dialect.name != "sqlite":
        return None
    name = engine.url.database
    database = str(Path(name).resolve()) if name and name != ":memory:" else ":memory:"
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(database, Writer(database))


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One session per unit of work: commit on success, roll back on any error. A factory made
    with `write_wait` gives up with StoreBusy when the store stays locked that long."""
    wait = write_wait(factory)
    engine = factory.kw.get("bind")
    writer = _writer(engine)
    deadline = time.monotonic() + (wait or 0.0)
    with writer.waiting(wait) if writer else nullcontext(), factory() as session, session.begin():
        if wait is not None:
            _bound_lock_waits(session, max(deadline - time.monotonic(), 0.05))
        yield session


def _bound_lock_waits(session: Session, seconds: float) -> None:
    """Whatever our lock does not cover (another program on SQLite, a row lock on PostgreSQL)
    is waited for at most `seconds`: then the driver raises, and the page answers 503."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection(execution_options={"sqlite_wait": seconds})
    else:
        session.execute(text(f"SET LOCAL lock_timeout = {int(seconds * 1000)}"))


class _Listed(TypeDecorator[Sequence[Any]]):
    """A list of values bound as one JSON array, read back by SQLite's `json_each`."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Sequence[Any] | None, dialect: Dialect) -> str | None:
        return None if value is None else json.dumps(list(value))


def among(
    column: ColumnElement[Any] | InstrumentedAttribute[Any],
    postgresql: bool,
    values: Sequence[Any] | None = None,
) -> ColumnElement[bool]:
    """`column IN values` (None: the statement's `ids` parameter, given when it runs), the values
    bound as one: an array (`= ANY`) on PostgreSQL, a JSON array read by `json_each` on SQLite.
    A sender's batch or an import's chunk of thousands as as many parameters, rendered by
    SQLAlchemy and parsed again by the driver for each statement, cost more CPU than the work."""
    listed = None if values is None else list(values)
    unique = values is not None
    if postgresql:
        return column == any_(bindparam("ids", listed, type_=ARRAY(column.type), unique=unique))
    rows = func.json_each(bindparam("ids", listed, type_=_Listed(), unique=unique))
    return column.in_(select(literal_column("value", column.type)).select_from(rows))
