"""What the sending tests share: readers and an edition prepared for them, the ledger read back,
settings pointing at the test sink or API, a reader leaving as the one-click page does, and a
store that stops taking writes mid-send."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url

from newsletter.editions.compose import Composer
from newsletter.editions.edition import open_edition
from newsletter.editions.prepare import prepare
from newsletter.sending.pace import Pace
from newsletter.sending.providers.smtp import SMTPProvider
from newsletter.sending.report import SendReport
from newsletter.sending.sender import Sender
from newsletter.services import readers
from newsletter.settings import Settings
from newsletter.store.db import unit_of_work
from newsletter.store.models import Delivery, Subscriber, SubscriberNewsletter
from newsletter.store.runtime import Runtime
from newsletter.subscribers.links import Links
from tests.conftest import POSTGRES_URL, ROOT, WEEKLY_NOV_23, free_port
from tests.sendgrid_server import API_KEY, MailAPI


def add_readers(runtime: Runtime, count: int) -> list[str]:
    """`count` active readers of the weekly; their addresses."""
    emails = [f"gate{i:03d}@example.com" for i in range(count)]
    with unit_of_work(runtime.factory) as session:
        for address in emails:
            subscriber = Subscriber(email=address, name=None, status="active", language="en")
            subscriber.newsletters = [SubscriberNewsletter(newsletter="weekly")]
            session.add(subscriber)
    return emails


def prepared(runtime: Runtime) -> int:
    """The weekly edition of 23 November, prepared: one delivery per reader."""
    with unit_of_work(runtime.factory) as session:
        edition = open_edition(session, runtime.settings, "weekly", WEEKLY_NOV_23)
        prepare(session, runtime.settings, edition, Composer(runtime.settings.templates_path()))
        return edition.id


def deliveries(runtime: Runtime, edition_id: int) -> dict[str, tuple[str, str | None]]:
    """Each reader's delivery: (status, detail), by address."""
    with runtime.factory() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status, Delivery.detail)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.edition_id == edition_id)
        ).all()
    return {address: (status, detail) for address, status, detail in rows}


def statuses(runtime: Runtime, edition_id: int) -> dict[str, int]:
    with runtime.factory() as session:
        rows = session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.edition_id == edition_id)
            .group_by(Delivery.status)
        ).all()
    return {status: count for status, count in rows}


def with_settings(runtime: Runtime, **changes: object) -> Settings:
    return Settings(**{**runtime.settings.model_dump(), **changes})


def smtp_settings(runtime: Runtime, port: int, **sending: object) -> Settings:
    return with_settings(
        runtime,
        provider="smtp",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_tls="none",
        sending={**runtime.settings.sending.model_dump(), **sending},
    )


def sendgrid_settings(runtime: Runtime, api: MailAPI, **sending: object) -> Settings:
    return with_settings(
        runtime,
        provider="sendgrid",
        sendgrid_api_key=API_KEY,
        sendgrid_host=api.host,
        sending={**runtime.settings.sending.model_dump(), **sending},
    )


def one_click(runtime: Runtime, address: str, now: datetime) -> None:
    """The reader's one-click POST for the weekly, through the service the page calls."""
    with runtime.factory() as session:
        subscriber_id = session.scalars(select(Subscriber.id).where(Subscriber.email == address)).one()
    token = Links.from_settings(runtime.settings).unsubscribe(subscriber_id, "weekly").rsplit("/", 1)[-1]
    readers.unsubscribe(runtime, token, "one-click", now)


class Outage:
    """The store stops taking writes (and, on PostgreSQL, connections) until `end`: SQLite's
    connections are made again read-only, PostgreSQL's are cut and refused."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.url = make_url(runtime.settings.database_url)
        self.on = False

    def _read_only(self, dbapi_connection: object, _record: object) -> None:
        cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
        cursor.execute("PRAGMA query_only = 1")
        cursor.close()

    def begin(self) -> None:
        self.on = True
        if self.url.get_backend_name() == "sqlite":
            event.listen(self.runtime.engine, "connect", self._read_only)
            self.runtime.engine.dispose()  # the pool's connections are made again, read-only
            return
        self._admin(
            f'ALTER DATABASE "{self.url.database}" WITH ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{self.url.database}' AND pid <> pg_backend_pid()",
        )

    def end(self) -> None:
        if not self.on:
            return
        self.on = False
        if self.url.get_backend_name() == "sqlite":
            event.remove(self.runtime.engine, "connect", self._read_only)
        else:
            self._admin(f'ALTER DATABASE "{self.url.database}" WITH ALLOW_CONNECTIONS true')
        self.runtime.engine.dispose()

    def _admin(self, *statements: str) -> None:
        assert POSTGRES_URL is not None
        admin = create_engine(
            make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
        )
        try:
            with admin.connect() as connection:
                for statement in statements:
                    connection.execute(text(statement))
        finally:
            admin.dispose()


class Sink:
    """An SMTP server's handler that keeps each message's recipients, and first calls
    `on_data(n, recipients)` (n = 1, 2, ...) once a message's DATA is in, before it answers:
    what happens there happens while that message is on the wire."""

    def __init__(self, on_data: Callable[[int, list[str]], None] | None = None) -> None:
        self.recipients: list[str] = []
        self.on_data = on_data
        self.lock = threading.Lock()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        tos = list(envelope.rcpt_tos)  # type: ignore[attr-defined]
        with self.lock:
            self.recipients.extend(tos)
            number = len(self.recipients)
        if self.on_data is not None:
            self.on_data(number, tos)
        return "250 OK"


@contextmanager
def smtp_server(handler: object) -> Iterator[int]:
    """A real SMTP server (aiosmtpd) on loopback with this handler; its port."""
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def send_process(runtime: Runtime, edition_id: int, port: int, **env: str) -> subprocess.Popen[str]:
    """`newsletter send --edition ID` in a process of its own, over SMTP to this port."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", "--edition", str(edition_id)],
        env={
            **base,
            "NEWSLETTER_DATABASE_URL": runtime.settings.database_url,
            "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789",
            "NEWSLETTER_TIMEZONE": "Europe/Brussels",
            "NEWSLETTER_CONFIG": str(ROOT / "config" / "demo.toml"),
            "NEWSLETTER_DEMO": "false",
            "NEWSLETTER_PROVIDER": "smtp",
            "NEWSLETTER_SMTP_HOST": "127.0.0.1",
            "NEWSLETTER_SMTP_PORT": str(port),
            "NEWSLETTER_SMTP_TLS": "none",
            **env,
        },
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# Retries and backoff in hundredths of a second: a test waits for nothing.
FAST = Pace(retry_delay=0.05, max_delay=0.05, base_delay=0.01)


def smtp_send(runtime: Runtime, port: int, edition_id: int, sleep=None, **sending: object) -> SendReport:
    """The edition over SMTP to the server on `port`, by one sender in this process."""
    settings = smtp_settings(runtime, port, **sending)
    provider = SMTPProvider(settings)
    try:
        return Sender(settings, runtime.factory, provider, FAST, sleep=sleep).send(edition_id)
    finally:
        provider.close()
