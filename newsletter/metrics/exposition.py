"""Answering a scrape: the registry a process exposes, who may read it, and the small server
`newsletter run` answers on when it serves no pages.

One process (`serve`, `run`, `run --with-web`) exposes its own counters. `serve --workers N`
runs N processes: the command makes a private folder for their counters' files
(PROMETHEUS_MULTIPROC_DIR, set before the workers start, removed when it stops), and whichever
worker answers a scrape sums them all. The store's figures are read by the one answering.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from newsletter.metrics.counters import counters
from newsletter.metrics.gauges import Clock, StoreCollector
from newsletter.settings import Settings
from newsletter.store.runtime import Runtime

log = logging.getLogger("newsletter.metrics")
# prometheus_client's own switch to multiprocess mode, read when it is first imported.
MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Headers by which a proxy says whom it forwards for: with them, the connection's own address is
# the proxy's, not the client's.
FORWARDING = ("x-forwarded-for", "forwarded", "x-real-ip")
# The workers' counters' folder, in the temporary folder: this prefix, the command's pid, a dash.
FOLDER_PREFIX = "newsletter-metrics-"
# A scrape's client gets this long to send its request, and to read the answer.
SCRAPE_SECONDS = 10.0
# Connections `[metrics] port` serves at once: a monitor needs one or two; a few hundred idle
# ones cost a few MB, thousands would cost hundreds.
MAX_SCRAPES = 256


def registry(runtime: Runtime, clock: Clock) -> CollectorRegistry:
    """What `/metrics` answers in this process: its counters (or, with several workers, all of
    theirs) and the store's figures."""
    made = CollectorRegistry(auto_describe=False)
    folder = os.environ.get(MULTIPROCESS_VARIABLE)
    if folder:
        MultiProcessCollector(made, folder)
    else:
        for collector in counters().collectors():
            made.register(collector)
        ProcessCollector(registry=made)  # this process's CPU, memory and open files
    made.register(StoreCollector(runtime, clock))
    return made


def scrape(made: CollectorRegistry) -> bytes:
    return generate_latest(made)


def forwarded(headers: dict[str, list[str]]) -> bool:
    """Whether a proxy says it forwards the request for someone (`headers`: lower-case names)."""
    return any(headers.get(name) for name in FORWARDING)


def allowed(settings: Settings, client: str, stranger: bool, headers: dict[str, list[str]]) -> bool:
    """Whether a scrape may be answered: with the bearer token (NEWSLETTER_METRICS_TOKEN), from
    anywhere; without one, from a `client` address of `[metrics] allow`, unless a proxy not
    trusted forwarded it (`stranger`: the client is then unknown, whatever the connection's
    address). A wrong token is refused whatever the address. `headers`: lower-case names, each
    header's lines."""
    authorization = headers.get("authorization", [])
    if authorization:
        token = settings.metrics_token
        scheme, _, given = authorization[-1].strip().partition(" ")
        if token is None or len(authorization) > 1 or scheme.lower() != "bearer":
            return False
        # As bytes: a header may hold any character, and compare_digest takes ASCII text only.
        return hmac.compare_digest(given.strip().encode(errors="replace"), token.get_secret_value().encode())
    if stranger:
        return False
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.metrics.allow)


@contextmanager
def shared_counters() -> Iterator[Path]:
    """A private, empty folder for the counters of the worker processes about to start (set in
    the environment they inherit), removed with everything in it when they have stopped; the
    folders of commands that were killed before they could remove theirs go first."""
    temp = Path(tempfile.gettempdir())
    _remove_stale(temp)
    folder = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))  # mode 0700, new
    previous = os.environ.get(MULTIPROCESS_VARIABLE)
    os.environ[MULTIPROCESS_VARIABLE] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop(MULTIPROCESS_VARIABLE, None)
        else:
            os.environ[MULTIPROCESS_VARIABLE] = previous
        shutil.rmtree(folder, ignore_errors=True)


def _remove_stale(temp: Path) -> None:
    """Our own folders (this user's) whose command is no longer running."""
    for folder in temp.glob(f"{FOLDER_PREFIX}*"):
        pid = folder.name.removeprefix(FOLDER_PREFIX).split("-", 1)[0]
        try:
            found = folder.lstat()
        except OSError:
            continue
        if not pid.isdigit() or not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
            continue
        if not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: running
        return True
    return True


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most MAX_SCRAPES at once: more are closed unanswered, so idle
    connections cannot pile up threads; a client gone early is a debug line, not a traceback on
    standard error."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slots = threading.BoundedSemaphore(MAX_SCRAPES)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("metrics: a scrape from %s ended early", client_address[0], exc_info=True)


class MetricsServer:
    """`/metrics` on its own port (`[metrics] port`), from a thread of `newsletter run`."""

    def __init__(self, settings: Settings, made: CollectorRegistry, sock: socket.socket) -> None:
        self.sock = sock
        handler = type("Handler", (_Scrape,), {"settings": settings, "made": made})
        self.server = _Server(sock.getsockname()[:2], handler, bind_and_activate=False)
        self.server.socket.close()
        self.server.socket = sock
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="newsletter-metrics", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}/metrics" if ":" in host else f"http://{host}:{port}/metrics"

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(SCRAPE_SECONDS)
        self.server.server_close()


class _Scrape(BaseHTTPRequestHandler):
    settings: Settings
    made: CollectorRegistry
    timeout = SCRAPE_SECONDS  # a client trickling its request loses the connection
    server_version = "newsletter"
    sys_version = ""

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._plain(404, b"not found: the metrics are at /metrics\n", body)
            return
        headers: dict[str, list[str]] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        # No proxy is believed here: a forwarded request is a stranger's (the token still opens it).
        if not allowed(self.settings, self.client_address[0], forwarded(headers), headers):
            self._plain(403, b"forbidden: not an allowed address, and no valid bearer token\n", body)
            return
        try:
            answer = scrape(self.made)
        except Exception:  # the store's trouble is answered as a gauge: this is a bug
            log.exception("metrics: the scrape failed")
            self._plain(500, b"the scrape failed: see the log\n", body)
            return
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if body:
            self.wfile.write(answer)

    def _plain(self, status: int, text: bytes, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        if body:
            self.wfile.write(text)

    def log_message(self, format: str, *args: object) -> None:
        """No access log (an Authorization header is never echoed either way)."""
