"""Shared fixtures: a migrated database per test on SQLite and, when configured, PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from newsletter.ingest.run import fetch_feeds
from newsletter.settings import Settings
from newsletter.store.db import make_engine, unit_of_work, upgrade
from newsletter.store.models import Base
from newsletter.store.runtime import Runtime, open_runtime
from newsletter.subscribers.bulk import import_csv
from tests.feedserver import FeedServer, start
from tests.sendgrid_server import MailAPI
from tests.sendgrid_server import start as start_mail_api

# Fixtures every module may use, kept with the helpers they go with.
pytest_plugins = ["tests.support.browser"]

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "config" / "demo" / "feeds"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
POSTGRES_URL = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL")
SECTIONS = ["Politics", "Health", "Europe", "Business", "Technology", "Culture", "Human Rights"]
ZONE = ZoneInfo("Europe/Brussels")
WEEKLY_NOV_23 = datetime(2026, 11, 23, 7, 0, tzinfo=ZONE)


def pytest_configure(config: pytest.Config) -> None:
    """NEWSLETTER_TEST_WALL_CLOCK=ISO-TIME runs the suite as if the wall clock read that time
    (and ticked on): a test that depends on the day the suite runs fails on one of them. The
    commands a test runs as processes of their own keep the real clock."""
    moment = os.environ.get("NEWSLETTER_TEST_WALL_CLOCK")
    if moment:
        import time_machine

        time_machine.travel(datetime.fromisoformat(moment), tick=True).start()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their settings explicitly; the caller's NEWSLETTER_* must not leak in (the
    test database's URL was read at start: to the program it is an unknown variable)."""
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated once; each test copies the file."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database on the configured server, migrated once for the session."""
    name = f"newsletter_test_{uuid.uuid4().hex[:10]}"
    yield _migrated_database(name)
    _drop_database(name)


def _migrated_database(name: str) -> str:
    """A new database of that name on the configured server, migrated; its URL."""
    if not POSTGRES_URL:
        pytest.skip(
            "PostgreSQL tests need NEWSLETTER_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)"
        )
    with _admin() as admin:
        admin.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def _drop_database(name: str) -> None:
    with _admin() as admin:
        admin.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _truncate(url: str) -> None:
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


BOTH = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A store test runs on SQLite; one marked `both_databases` (the ledger, claims and races,
    migrations, a service's own SQL) runs on PostgreSQL as well. A test that names its
    databases itself (`parametrize("database_url", ..., indirect=True)`) keeps its choice."""
    if "database_url" not in metafunc.fixturenames:
        return
    if any("database_url" in mark.args[0] for mark in metafunc.definition.iter_markers("parametrize")):
        return
    both = metafunc.definition.get_closest_marker("both_databases") is not None
    metafunc.parametrize("database_url", BOTH if both else ["sqlite"], indirect=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated store of the test's own, holding the sample newsroom if the test asks for it:
    on SQLite a copy of a file built once per session; on PostgreSQL the session's database
    emptied, or a database made from the newsroom's template."""
    newsroom = "newsroom" in request.fixturenames
    if request.param == "sqlite":
        path = tmp_path / "newsletter.db"
        shutil.copy(request.getfixturevalue("newsroom_file" if newsroom else "sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_database")
    if not newsroom:
        _truncate(url)
        yield url
        return
    template = request.getfixturevalue("newsroom_database")
    name = f"{template}_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield make_url(url).set(database=name).render_as_string(hide_password=False)
    _drop_database(name)


@pytest.fixture
def make_runtime(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Runtime]]:
    """Build a runtime from settings overrides; closed after the test."""
    made: list[Runtime] = []

    def build(**overrides: object) -> Runtime:
        values: dict[str, object] = {
            "database_url": database_url,
            "outbox_dir": tmp_path / "outbox",
            "secret_key": "test-secret-key-0123456789",
            "fetch": {"allow_private": True},  # the test servers are on loopback
        }
        values.update(overrides)
        runtime = open_runtime(Settings(**values))
        made.append(runtime)
        return runtime

    yield build
    for runtime in made:
        runtime.close()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    state, server = start()
    yield state
    server.shutdown()
    server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SMTPSink:
    """An aiosmtpd handler that keeps what it accepts; it can refuse addresses or drop connections."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.senders: list[str] = []  # each accepted message's envelope sender (MAIL FROM)
        self.refuse: dict[str, str] = {}
        self.drop_at: set[int] = set()  # RCPT commands (1, 2, ...) at which the connection drops
        self.rcpt_commands = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpt_commands += 1
        if self.rcpt_commands in self.drop_at:
            server.transport.close()  # the connection drops before the message is sent
            return "421 closing"
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        self.senders.append(envelope.mail_from)
        return "250 Message accepted for delivery"

    def recipients(self) -> list[str]:
        return [to for tos, _data in self.messages for to in tos]


@pytest.fixture
def smtp_sink() -> Iterator[tuple[SMTPSink, int]]:
    """A real SMTP server on loopback (it answers '500 Line too long' past 1,000 octets)."""
    from aiosmtpd.controller import Controller

    handler = SMTPSink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def mail_api() -> Iterator[MailAPI]:
    api, server = start_mail_api()
    yield api
    server.shutdown()
    server.server_close()


NEWSROOM: dict[str, object] = {
    "feeds": [
        {"url": str(SAMPLE / "site.xml")},
        {"url": str(SAMPLE / "trending.xml"), "trending": True},
        {"url": str(SAMPLE / "site-de.xml"), "language": "de"},
    ],
    "site": {"categories": SECTIONS, "url": "https://www.europeantimes.example"},
    "timezone": "Europe/Brussels",
}


def fill_newsroom(url: str, outbox: Path) -> None:
    """The sample site's feeds fetched and its readers imported (confirmed) into the store at `url`."""
    runtime = open_runtime(
        Settings(database_url=url, outbox_dir=outbox, secret_key="test-secret-key-0123456789", **NEWSROOM)
    )
    try:
        fetch_feeds(runtime.settings, runtime.factory)
        with unit_of_work(runtime.factory) as session:
            report = import_csv(
                session, runtime.settings, ROOT / "subscribers" / "demo-subscribers.csv", confirmed=True
            )
        assert not report.rejected
    finally:
        runtime.close()


@pytest.fixture(scope="session")
def newsroom_file(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The newsroom on SQLite, built once per session; each test copies the file."""
    folder = tmp_path_factory.mktemp("newsroom")
    path = folder / "newsroom.db"
    shutil.copy(sqlite_template, path)
    fill_newsroom(f"sqlite:///{path}", folder / "outbox")
    return path


@pytest.fixture(scope="session")
def newsroom_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The newsroom on PostgreSQL, built once per session as a template database; each test gets
    a database made from it (`CREATE DATABASE ... TEMPLATE`)."""
    name = f"newsletter_newsroom_{uuid.uuid4().hex[:10]}"
    url = _migrated_database(name)
    fill_newsroom(url, tmp_path_factory.mktemp("newsroom-pg") / "outbox")
    yield name
    _drop_database(name)


@contextmanager
def _admin() -> Iterator[Connection]:
    """A connection to the configured PostgreSQL server for CREATE and DROP DATABASE."""
    assert POSTGRES_URL
    engine = create_engine(
        make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


@pytest.fixture
def newsroom(make_runtime: Callable[..., Runtime]) -> Runtime:
    """The sample site's articles and readers, already in the test's store (see `database_url`)."""
    return make_runtime(**NEWSROOM)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """An e2e test says in its docstring what only real processes or programs can prove; one
    that does not is refused before anything runs."""
    silent = sorted(
        {
            item.nodeid.split("[")[0]
            for item in items
            if item.get_closest_marker("e2e")
            and not getattr(getattr(item, "function", None), "__doc__", None)
        }
    )
    if silent:
        raise pytest.UsageError("e2e tests without a docstring saying what they prove:\n" + "\n".join(silent))
