"""uvicorn, as `newsletter serve` and `newsletter run --with-web` start it.

The socket is bound here, before uvicorn starts, so a port in use is one clear error line.
uvicorn's own proxy headers are off: the client address comes only from the proxies the settings
trust (`newsletter.web.client`). Access logs are off too: token pages' URLs carry a reader's
token, and a log is no place for one.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

# Requests in flight get this long to finish when the server is stopped.
GRACE_SECONDS = 5


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


def config(app: FastAPI | str, workers: int = 1) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        factory=isinstance(app, str),
        workers=workers,
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
        lifespan="off",
        backlog=2048,
        timeout_graceful_shutdown=GRACE_SECONDS,
    )


def server(app: FastAPI) -> uvicorn.Server:
    return uvicorn.Server(config(app))


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Serve until SIGTERM or SIGINT. uvicorn handles them in the main thread, then raises the
    signal again once it has stopped, to the handlers it found: these ones, which let the
    command end normally (exit 0, its last line printed) instead of dying of the signal."""
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _stopped)
    server(app).run(sockets=[sock])


def _stopped(_signum: int, _frame: FrameType | None) -> None:
    """The signal uvicorn already acted on: nothing more to do."""


# The settings file the worker processes read (they are started afresh, not forked).
CONFIG_VARIABLE = "NEWSLETTER_CONFIG"


def serve_workers(settings_file: Path | None, sock: socket.socket, workers: int) -> None:
    """Serve from `workers` processes sharing the socket (one per core): each opens the store
    itself; uvicorn restarts one that dies, and stops them all on SIGTERM or SIGINT."""
    if settings_file is not None:
        os.environ[CONFIG_VARIABLE] = str(settings_file.resolve())
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _stopped)
    made = config("newsletter.web.serving:worker_app", workers)
    Multiprocess(made, sockets=[sock]).run()


def worker_app() -> FastAPI:
    """A worker process's app, from the same settings as the command that started it."""
    from newsletter import logs
    from newsletter.settings import load_settings
    from newsletter.store.runtime import open_runtime
    from newsletter.web.app import create_app

    settings = load_settings(None)
    logs.configure(False, interactive=False, zone=settings.zone)
    return create_app(open_runtime(settings))


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
