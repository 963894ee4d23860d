"""The pages as `newsletter serve` serves them, made in this process on a clock the test holds:
`create_app(runtime, clock)` driven through an in-process ASGI client (httpx's ASGITransport),
no socket and no server to start, and no page reading the wall clock. A request returns once
the app is done with it, the work it does after answering (the notices it mails) included, so
a test never waits for it. A test that needs a real socket (a browser) serves the app over
loopback from a thread instead; one about processes starts `newsletter serve` itself. Also what
the web tests share: the sample's readers, the site's settings file, a page's forms."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import anyio
import httpx
from fastapi import FastAPI
from sqlalchemy import select

from newsletter.settings import load_settings
from newsletter.store.models import Subscriber
from newsletter.store.runtime import Runtime, open_runtime
from newsletter.subscribers.links import Links
from newsletter.web import serving
from newsletter.web.app import create_app
from tests.conftest import SECTIONS, free_port
from tests.support.cli import Ran, newsletter
from tests.support.clock import FixedClock
from tests.support.schedule import mails
from tests.support.waiting import until

SECRET = "test-secret-key-0123456789"
PARTNER = "https://partner.example"
ANNA = "anna.keller@example.com"  # a German reader of the sample
MARC = "marc.dubois@example.org"  # takes the weekly and the daily


# The address a client in this process connects from (what the rate limits and the audit log see).
CLIENT = ("127.0.0.1", 50000)


class InProcess(httpx.BaseTransport):
    """A synchronous client's way to the app in this process (httpx's ASGITransport): each
    request runs the app to its end, the work it does after answering included, on an event
    loop of its own (several threads may ask at once)."""

    def __init__(self, app: FastAPI, raise_app_exceptions: bool = False) -> None:
        # By default a page that fails answers 500, as it would over a socket (`serve` fails the
        # test on its traceback); or its exception is raised in the test.
        self.asgi = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions, client=CLIENT)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        asked = httpx.Request(request.method, request.url, headers=request.headers, content=request.read())

        async def answer() -> tuple[int, httpx.Headers, bytes]:
            got = await self.asgi.handle_async_request(asked)
            return got.status_code, got.headers, await got.aread()

        status, headers, body = anyio.run(answer)
        return httpx.Response(status, headers=headers, content=body, request=request)


def in_process(app: FastAPI, url: str, raise_app_exceptions: bool = False, **options: object) -> httpx.Client:
    """A browser of its own (its cookies kept) talking to `app` in this process, at `url`."""
    transport = InProcess(app, raise_app_exceptions)
    return httpx.Client(base_url=url, transport=transport, **{"follow_redirects": False, **options})  # type: ignore[arg-type]


@dataclass
class Site:
    """The pages, the store behind them, and the clock they read: served by `app` in this process
    (`url` is then the public address they believe they have), or over loopback at `url`."""

    url: str
    runtime: Runtime
    config: Path
    clock: FixedClock
    app: FastAPI | None = None

    def client(self, **options: object) -> httpx.Client:
        """A browser of its own (its cookies kept between requests)."""
        if self.app is not None:
            return in_process(self.app, self.url, **options)
        return httpx.Client(base_url=self.url, timeout=30, follow_redirects=False, **options)  # type: ignore[arg-type]

    def get(self, path: str, **options: object) -> httpx.Response:
        """One GET with no cookie, as a mail client or a link scanner asks."""
        with self.client() as client:
            return client.get(path, **options)  # type: ignore[arg-type]

    def post(self, path: str, **options: object) -> httpx.Response:
        """One POST with no cookie, as a mail client's one-click or another site's form sends it."""
        with self.client() as client:
            return client.post(path, **options)  # type: ignore[arg-type]

    def cli(self, *args: str, stdin: str = "") -> Ran:
        """`newsletter ARGS... --config site.toml`, in this process, `stdin` on standard input."""
        return newsletter(
            *args, "--config", str(self.config), env=COMMAND_ENV, cwd=self.config.parent, input=stdin
        )

    def links(self) -> Links:
        return Links.from_settings(self.runtime.settings)

    def subscriber(self, address: str) -> Subscriber:
        with self.runtime.factory() as session:
            found = session.scalars(select(Subscriber).where(Subscriber.email == address)).one()
            _ = (found.newsletters, found.categories)  # loaded while the session is open
            return found

    def subscriptions(self, address: str) -> dict[str, str]:
        return {n.newsletter: n.status for n in self.subscriber(address).newsletters}

    def notices_for(self, address: str, count: int = 1) -> list[email.message.EmailMessage]:
        """The notices to `address`, `count` of them at least (a page sends them after answering:
        in this process, before its request returns; over a socket, a moment later)."""
        if self.app is None:
            until(lambda: len([m for m in self.notices() if m["To"] == address]) >= count, 20)
        found = [m for m in self.notices() if m["To"] == address]
        assert len(found) >= count, f"no notice to {address}"
        return found

    def notices(self) -> list[email.message.EmailMessage]:
        """Every notice the pages sent (outside the ledger), in the order they went."""
        return mails(self.runtime)


# What a command on the site's settings is given besides them: the key, and a wide terminal.
COMMAND_ENV = {"NEWSLETTER_SECRET_KEY": SECRET, "COLUMNS": "200"}


def environment() -> dict[str, str]:
    """A process's environment: the caller's without its NEWSLETTER_*, and COMMAND_ENV."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return {**base, **COMMAND_ENV}


def settings_text(runtime: Runtime, url: str, readers: str, extra: str = "") -> str:
    settings = runtime.settings
    feeds = "".join(
        f'[[feeds]]\nurl = "{feed.url}"\n' + (f'language = "{feed.language}"\n' if feed.language else "")
        for feed in settings.feeds
    )
    return (
        f'database_url = "{settings.database_url}"\noutbox_dir = "{settings.outbox_dir}"\n'
        f'timezone = "{settings.timezone}"\npublic_url = "{url}"\n'
        f"[readers]\n{readers}\n{extra}"
        f'[site]\nurl = "{settings.site.url}"\ncategories = {json.dumps(SECTIONS)}\n'
        '[newsletters.weekly]\n[newsletters.weekly.translations.de]\ntitle = "Wochenüberblick"\n'
        '[newsletters.daily]\ntitle = "Daily briefing"\ndays = "*"\nat = "06:30"\nfirst_window_days = 1\n'
        f"{feeds}"
    )


def serve(
    runtime: Runtime,
    folder: Path,
    readers: str = "",
    env: dict[str, str] | None = None,
    extra: str = "",
    clock: FixedClock | None = None,
    listening: bool = False,
) -> Iterator[Site]:
    """The pages as `newsletter serve --config site.toml` serves them, on the test's clock: in
    this process (`listening`: over a loopback socket too, for a browser); a command the test
    runs reads the same settings file."""
    clock = clock or FixedClock()
    config = folder / "site.toml"

    def write(url: str) -> None:
        config.write_text(settings_text(runtime, url, readers or f'signup_origins = ["{PARTNER}"]', extra))

    with served(config, {**environment(), **(env or {})}, clock, write, listening) as (url, app):
        yield Site(url, runtime, config, clock, None if listening else app)


class Forms(HTMLParser):
    """Every form of a page: its action and its fields' values (hidden ones included)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.forms.append({"action": values.get("action"), "fields": {}})
        elif tag in ("input", "button") and self.forms and values.get("name"):
            fields = self.forms[-1]["fields"]
            assert isinstance(fields, dict)
            fields.setdefault(values["name"], values.get("value") or "")

    def form(self, action: str) -> dict[str, str]:
        found = [f["fields"] for f in self.forms if str(f["action"]).split("?")[0] == action]
        assert found, (action, [f["action"] for f in self.forms])
        fields = found[0]
        assert isinstance(fields, dict)
        return fields


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


class Tracebacks(logging.Handler):
    """Every record logged with a traceback while the server ran: a page that failed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.found.append(self.format(record))


@contextmanager
def variables(values: dict[str, str]) -> Iterator[None]:
    """These environment variables while the settings are read, then the environment as it was."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def served(
    config: Path, env: dict[str, str], clock: FixedClock, write: Callable[[str], None], listening: bool
) -> Iterator[tuple[str, FastAPI]]:
    """The app of `newsletter serve --config CONFIG` (`write` makes the settings file once its
    address is known), and that address: a loopback one nothing listens on, or (`listening`) a
    free port it is served on from a thread. A page that failed with a traceback fails the test."""
    sock = serving.listen("127.0.0.1", 0) if listening else None
    url = serving.address(sock) if sock else f"http://127.0.0.1:{free_port()}"
    write(url)
    with variables(env):
        runtime = open_runtime(load_settings(config))
    app = create_app(runtime, clock)
    failures = Tracebacks()
    logging.getLogger().addHandler(failures)
    server = serving.server(app) if sock else None
    thread = (
        threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="web", daemon=True)
        if server
        else None
    )
    if thread and server:
        thread.start()
        until(lambda: server.started or not thread.is_alive(), 30)
        assert server.started, "the server did not start"
    try:
        yield url, app
    finally:
        if thread and server and sock:
            server.should_exit = True
            thread.join(timeout=30)
            sock.close()
        logging.getLogger().removeHandler(failures)
        runtime.close()
    assert not failures.found, failures.found[0]


@contextmanager
def process(runtime: Runtime, folder: Path, *command: str) -> Iterator[str]:
    """`newsletter COMMAND... --port P --config site.toml` as a process of its own, for the
    properties that are about processes (worker processes, the scheduled job's pages); its URL
    once it answers. Stopped with SIGTERM, it must exit 0 without a traceback."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = folder / "site.toml"
    config.write_text(settings_text(runtime, url, f'signup_origins = ["{PARTNER}"]'))
    running = subprocess.Popen(
        [sys.executable, "-m", "newsletter", *command, "--port", str(port), "--config", str(config)],
        env=environment(),
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def answers() -> bool:
        assert running.poll() is None, running.communicate()
        try:
            return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        until(answers, 60)
        yield url
    finally:
        running.send_signal(signal.SIGTERM)
        out, err = running.communicate(timeout=60)
    assert running.returncode == 0, err
    assert "Traceback" not in err, err
    assert "serving the readers' pages on http://127.0.0.1" in out and "stopped" in out
