"""uvicorn, as `newsletter serve` and `newsletter run --with-web` start it.

The socket is bound here, before uvicorn starts, so a port in use is one clear error line.
uvicorn's own proxy headers are off: the client address comes only from the proxies the settings
trust (`newsletter.web.client`). Access logs are off too: token pages' URLs carry a reader's
token, and a log is no place for one.

The HTTP/1.1 parser is h11, whatever else is installed: it buffers at most `[web] header_bytes`
of a request's line and headers (httptools, which uvicorn prefers when present, takes headers
of any size, and uvicorn cannot cap them). uvicorn gives the headers no deadline: `Limited` adds
one, so a client trickling them holds its connection `header_seconds` at most.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from types import FrameType
from typing import cast

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess

from newsletter.settings import WebSettings

# Requests in flight get this long to finish when the server is stopped.
GRACE_SECONDS = 5
log = logging.getLogger("newsletter.web")


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one); OSError if it cannot be had."""
    family, kind, protocol, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, protocol)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class Config(uvicorn.Config):
    """uvicorn's settings, with the limits a connection is held to (worker processes get them
    pickled with the rest)."""

    def __init__(self, app: FastAPI | str, limits: WebSettings, workers: int = 1) -> None:
        super().__init__(
            app,
            factory=isinstance(app, str),
            workers=workers,
            http=Limited,
            h11_max_incomplete_event_size=limits.header_bytes,
            limit_concurrency=limits.max_connections,
            timeout_keep_alive=limits.keep_alive_seconds,
            proxy_headers=False,
            server_header=False,
            access_log=False,
            log_config=None,
            lifespan="off",
            backlog=2048,
            timeout_graceful_shutdown=GRACE_SECONDS,
        )
        self.limits = limits


class Limited(H11Protocol):
    """uvicorn's h11 connection, with a deadline for each request's line and headers, from the
    connection's start or the request's first byte (an idle kept-alive connection is uvicorn's
    `timeout_keep_alive`'s), and for the rest of a body already answered (a 403 or 413 sent
    before it was read). Past it the connection is closed. A body the app reads has its own
    deadline (`newsletter.web.security.BodyLimit`)."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, object],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_seconds = cast(Config, config).limits.header_seconds
        self.header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._owed():
            self._await_headers()
        else:
            self._cancel_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _owed(self) -> bool:
        """Bytes the client owes that no page waits for: headers not all there, or the rest of
        a body already answered."""
        answered = self.cycle is None or self.cycle.response_complete
        sending = self.conn.their_state in (h11.IDLE, h11.SEND_BODY)
        return answered and sending and not self.transport.is_closing()

    def _await_headers(self) -> None:
        if self.header_deadline is None:
            self.header_deadline = self.loop.call_later(self.header_seconds, self._headers_too_slow)

    def _cancel_deadline(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _headers_too_slow(self) -> None:
        self.header_deadline = None
        if self._owed():
            log.info("a client sent no whole request in %g s: its connection is closed", self.header_seconds)
            self.transport.close()


def limits_of(app: FastAPI) -> WebSettings:
    """The limits in the settings the app was made from."""
    limits: WebSettings = app.state.web.runtime.settings.web
    return limits


def server(app: FastAPI) -> uvicorn.Server:
    return uvicorn.Server(Config(app, limits_of(app)))


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Serve until SIGTERM or SIGINT. uvicorn handles them in the main thread, then raises the
    signal again once it has stopped, to the handlers it found: these ones, which let the
    command end normally (exit 0, its last line printed) instead of dying of the signal."""
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _stopped)
    settled()
    server(app).run(sockets=[sock])


def _stopped(_signum: int, _frame: FrameType | None) -> None:
    """The signal uvicorn already acted on: nothing more to do."""


# The settings file the worker processes read (they are started afresh, not forked).
CONFIG_VARIABLE = "NEWSLETTER_CONFIG"


def serve_workers(settings_file: Path | None, sock: socket.socket, workers: int, limits: WebSettings) -> None:
    """Serve from `workers` processes sharing the socket (one per core): each opens the store
    itself; uvicorn restarts one that dies, and stops them all on SIGTERM or SIGINT."""
    if settings_file is not None:
        os.environ[CONFIG_VARIABLE] = str(settings_file.resolve())
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _stopped)
    made = Config("newsletter.web.serving:worker_app", limits, workers)
    Multiprocess(made, sockets=[sock]).run()


def worker_app() -> FastAPI:
    """A worker process's app, from the same settings as the command that started it."""
    from newsletter import logs
    from newsletter.settings import load_settings
    from newsletter.store.runtime import open_runtime
    from newsletter.web.app import create_app

    settings = load_settings(None)
    logs.configure(False, interactive=False, zone=settings.zone)
    app = create_app(open_runtime(settings))
    settled()
    return app


def settled() -> None:
    """What the process holds once its app is made (modules, settings, templates) is set aside
    from the collector: a full collection then walks only what requests left, in milliseconds,
    instead of the whole heap in hundreds, during which no page is answered."""
    gc.collect()
    gc.freeze()


class Background:
    """The pages served from a thread of another process (the scheduler's, or a test's)."""

    def __init__(self, app: FastAPI, sock: socket.socket) -> None:
        self.sock = sock
        self.server = server(app)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name="newsletter-web", daemon=True
        )

    @property
    def address(self) -> str:
        return address(self.sock)

    def start(self) -> Background:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(GRACE_SECONDS + 5)
        self.sock.close()
