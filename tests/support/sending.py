"""What the sending tests share: readers and an edition prepared for them, the ledger read back,
settings pointing at the test sink or API, a reader leaving as the one-click page does, a store
that stops taking writes mid-send, SMTP servers that answer from a script, and `newsletter send`
as a process of its own for the properties about processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime

from aiosmtpd.controller import Controller
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url

from newsletter.editions.compose import Composer
from newsletter.editions.edition import open_edition
from newsletter.editions.prepare import prepare
from newsletter.sending.pace import Pace
from newsletter.sending.providers import make_provider
from newsletter.sending.providers.sendgrid import SendGridProvider
from newsletter.sending.providers.smtp import SMTPProvider
from newsletter.sending.report import SendReport
from newsletter.sending.sender import Sender
from newsletter.services import readers
from newsletter.settings import Settings
from newsletter.store.db import unit_of_work
from newsletter.store.models import Delivery, Subscriber, SubscriberNewsletter
from newsletter.store.runtime import Runtime, open_runtime
from newsletter.subscribers.links import Links
from tests.conftest import POSTGRES_URL, ROOT, WEEKLY_NOV_23, free_port
from tests.sendgrid_server import API_KEY, MailAPI
from tests.support.cli import Ran, newsletter


def add_readers(runtime: Runtime, count: int, first: int = 0) -> list[str]:
    """`count` active English readers of the weekly (reader000@example.com, "Reader 0", ...,
    numbered from `first`); their addresses."""
    numbers = range(first, first + count)
    with unit_of_work(runtime.factory) as session:
        for i in numbers:
            subscriber = Subscriber(
                email=f"reader{i:03d}@example.com", name=f"Reader {i}", status="active", language="en"
            )
            subscriber.newsletters = [SubscriberNewsletter(newsletter="weekly")]
            session.add(subscriber)
    return [f"reader{i:03d}@example.com" for i in numbers]


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


def recipients_of(runtime: Runtime, edition_id: int) -> list[str]:
    """The addresses the edition is to mail (pending) or mailed (sent), sorted."""
    with runtime.factory() as session:
        return sorted(
            session.scalars(
                select(Subscriber.email)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.edition_id == edition_id, Delivery.status.in_(("pending", "sent")))
            )
        )


def failures(runtime: Runtime, edition_id: int) -> dict[str, str]:
    """The readers failed or uncertain, with the ledger's words, by address."""
    with runtime.factory() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.detail)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.edition_id == edition_id, Delivery.status.in_(("failed", "uncertain")))
        ).all()
    return {address: detail for address, detail in rows}


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


class ScriptedSink:
    """An aiosmtpd handler answering RCPT from a script per address: a list of answers given
    one per try (then 250), or one answer for every try."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []
        self.tries: dict[str, list[str]] = {}
        self.always: dict[str, str] = {}
        self.everyone: str | None = None
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            if self.everyone:
                return self.everyone
            if address in self.always:
                return self.always[address]
            if self.tries.get(address):
                return self.tries[address].pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def recipients(self) -> list[str]:
        return [to for tos, _data in self.messages for to in tos]


def scripted(smtputf8: bool) -> Iterator[tuple[ScriptedSink, int]]:
    """A ScriptedSink served on loopback, with or without SMTPUTF8; it and its port."""
    handler = ScriptedSink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=smtputf8)
    controller.start()
    yield handler, port
    controller.stop()


def cli_env(runtime: Runtime, **extra: str) -> dict[str, str]:
    """The environment of a `newsletter` process on the runtime's store (the caller's
    NEWSLETTER_* left out), with `extra` settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return {
        **base,
        "NEWSLETTER_DATABASE_URL": runtime.settings.database_url,
        "NEWSLETTER_SECRET_KEY": "test-secret-key-0123456789",
        "NEWSLETTER_TIMEZONE": "Europe/Brussels",
        "NEWSLETTER_CONFIG": str(ROOT / "config" / "demo.toml"),
        "NEWSLETTER_DEMO": "false",
        **extra,
    }


def smtp_env(port: int, **extra: str) -> dict[str, str]:
    """The settings that point a `newsletter` process at the SMTP server on `port`."""
    return {
        "NEWSLETTER_PROVIDER": "smtp",
        "NEWSLETTER_SMTP_HOST": "127.0.0.1",
        "NEWSLETTER_SMTP_PORT": str(port),
        "NEWSLETTER_SMTP_TLS": "none",
        **extra,
    }


def sendgrid_env(api: MailAPI, **extra: str) -> dict[str, str]:
    """The settings that point a `newsletter` process at the local v3 server."""
    return {
        "NEWSLETTER_PROVIDER": "sendgrid",
        "NEWSLETTER_SENDGRID_API_KEY": API_KEY,
        "NEWSLETTER_SENDGRID_HOST": api.host,
        **extra,
    }


def send_process(runtime: Runtime, edition_id: int, *options: str, **env: str) -> subprocess.Popen[str]:
    """`newsletter send --edition ID OPTIONS...` in a process of its own, with `env` settings
    (`smtp_env`, `sendgrid_env`): for the properties about processes (a kill -9, two of them)."""
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "send", "--edition", str(edition_id), *options],
        env=cli_env(runtime, **env),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def newsletter_on(runtime: Runtime, *args: str, **env: str) -> Ran:
    """`newsletter ARGS...` in this process on the runtime's store, with `env` settings (as
    `send_process` runs it in a process of its own)."""
    return newsletter(
        *args, env={k: v for k, v in cli_env(runtime, **env).items() if k.startswith("NEWSLETTER_")}
    )


# Retries and backoff in hundredths of a second: a test waits for nothing.
FAST = Pace(retry_delay=0.05, max_delay=0.05, base_delay=0.01)


def fast(settings: Settings) -> Pace:
    """The settings' pace (attempts, rate, lease), its retries and backoff made FAST."""
    return replace(Pace.from_settings(settings.sending), retry_delay=0.05, max_delay=0.05, base_delay=0.01)


class Sleeps(list):
    """A sender's sleeps, recorded instead of slept."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def smtp_send(runtime: Runtime, port: int, edition_id: int, sleep=None, **sending: object) -> SendReport:
    """The edition over SMTP to the server on `port`, by one sender in this process."""
    settings = smtp_settings(runtime, port, **sending)
    provider = SMTPProvider(settings)
    try:
        return Sender(settings, runtime.factory, provider, fast(settings), sleep=sleep).send(edition_id)
    finally:
        provider.close()


def sender_of_its_own(settings: Settings, edition_id: int, sleep=None) -> SendReport:
    """The edition sent at the settings' pace by a sender with a store connection and a provider
    of its own, as a process of its own has them: several in threads are rival senders."""
    runtime = open_runtime(settings, migrate=False)
    provider = make_provider(settings)
    try:
        return Sender(settings, runtime.factory, provider, fast(settings), sleep=sleep).send(edition_id)
    finally:
        provider.close()
        runtime.close()


def hurried(seconds: float) -> None:
    """A sender's wait cut to 50 ms at most (for another sender's batches, for a busy provider):
    it looks again sooner, nothing else changes. Not for a rate's pacing."""
    time.sleep(min(seconds, 0.05))


def senders_at_once(*settings: Settings, edition_id: int, sleep=hurried) -> list[SendReport]:
    """One `sender_of_its_own` per settings, each in a thread of its own, all started together."""
    with ThreadPoolExecutor(len(settings)) as pool:
        started = [pool.submit(sender_of_its_own, each, edition_id, sleep) for each in settings]
        return [future.result(timeout=120) for future in started]


def send_with_sendgrid(
    runtime: Runtime, api: MailAPI, edition_id: int, sleeps=None, **sending: object
) -> SendReport:
    """The edition through the local v3 server, by one sender in this process at the settings'
    pace; its sleeps recorded, not slept (`Sleeps`)."""
    settings = sendgrid_settings(runtime, api, **sending)
    return Sender(
        settings,
        runtime.factory,
        SendGridProvider(settings),
        Pace.from_settings(settings.sending),
        sleep=sleeps if sleeps is not None else Sleeps(),
    ).send(edition_id)
