"""The pages served in this process over a real loopback socket, on a clock the test holds: real
HTTP without a server process to start per test, and no page reading the wall clock. Also what
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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import httpx
from sqlalchemy import select

from newsletter.settings import load_settings
from newsletter.store.models import Subscriber
from newsletter.store.runtime import Runtime, open_runtime
from newsletter.subscribers.links import Links
from newsletter.web import serving
from newsletter.web.app import create_app
from tests.conftest import SECTIONS, free_port
from tests.support.cli import run_cli
from tests.support.clock import FixedClock

SECRET = "test-secret-key-0123456789"
PARTNER = "https://partner.example"
ANNA = "anna.keller@example.com"  # a German reader of the sample
MARC = "marc.dubois@example.org"  # takes the weekly and the daily


@dataclass
class Site:
    """The pages served on loopback, the store behind them, and the clock they read."""

    url: str
    runtime: Runtime
    config: Path
    clock: FixedClock

    def client(self, **options: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, follow_redirects=False, **options)  # type: ignore[arg-type]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return run_cli(*args, "--config", str(self.config), env=environment(), cwd=self.config.parent)

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
        """The notices to `address`, once `count` have come (a page sends them after answering)."""
        deadline = time.monotonic() + 20
        while len(found := [m for m in self.notices() if m["To"] == address]) < count:
            assert time.monotonic() < deadline, f"no notice to {address}"
            time.sleep(0.05)
        return found

    def notices(self) -> list[email.message.EmailMessage]:
        folder = self.runtime.settings.outbox_dir / "outside-ledger"
        paths = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in paths]


def environment() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return {**base, "NEWSLETTER_SECRET_KEY": SECRET, "COLUMNS": "200"}


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
) -> Iterator[Site]:
    """The pages as `newsletter serve --config site.toml` serves them, in this process and on
    the test's clock; a command the test runs reads the same settings file."""
    clock = clock or FixedClock()
    config = folder / "site.toml"

    def write(url: str) -> None:
        config.write_text(settings_text(runtime, url, readers or f'signup_origins = ["{PARTNER}"]', extra))

    with served(config, {**environment(), **(env or {})}, clock, write) as url:
        yield Site(url, runtime, config, clock)


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
    config: Path, env: dict[str, str], clock: FixedClock, write: Callable[[str], None]
) -> Iterator[str]:
    """`newsletter serve --config CONFIG` in a thread on a free port (`write` makes the settings
    file once the address is known); its URL. A page that failed with a traceback fails the test."""
    sock = serving.listen("127.0.0.1", 0)
    url = serving.address(sock)
    write(url)
    with variables(env):
        runtime = open_runtime(load_settings(config))
    server = serving.server(create_app(runtime, clock))
    failures = Tracebacks()
    logging.getLogger().addHandler(failures)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        logging.getLogger().removeHandler(failures)
        sock.close()
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
    deadline = time.monotonic() + 60
    try:
        while True:
            assert running.poll() is None, running.communicate()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield url
    finally:
        running.send_signal(signal.SIGTERM)
        out, err = running.communicate(timeout=60)
    assert running.returncode == 0, err
    assert "Traceback" not in err, err
    assert "serving the readers' pages on http://127.0.0.1" in out and "stopped" in out
