"""`newsletter serve`: the readers' pages (sign-up, confirmation, preferences, unsubscribing)."""

from __future__ import annotations

from typing import Annotated

import typer

from newsletter import logs
from newsletter.cli.options import HostOption, PortOption
from newsletter.cli.output import out
from newsletter.cli.state import state
from newsletter.errors import InputError
from newsletter.metrics import exposition
from newsletter.web import serving
from newsletter.web.app import create_app


def bound(host: str, port: int) -> serving.socket.socket:
    """The listening socket, or one clear error naming the address."""
    try:
        return serving.listen(host, port)
    except OSError as exc:
        raise InputError("--port", f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(
    ctx: typer.Context,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
    log_json: Annotated[
        bool, typer.Option("--log-json", help="Log JSON lines, for a log collector.")
    ] = False,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=32, help="Processes serving the pages (one per core).")
    ] = 1,
) -> None:
    """Serve the readers' pages until SIGTERM or Ctrl-C; the links in every email lead here, so
    `public_url` in the settings is where a reverse proxy makes this reachable."""
    logs.configure(state(ctx).verbose, interactive=False, json_lines=log_json, zone=state(ctx).settings.zone)
    app = create_app(state(ctx).runtime())  # checks the settings and migrates, once
    sock = bound(host, port)
    out.print(f"serving the readers' pages on {serving.address(sock)}", markup=False, soft_wrap=True)
    if workers > 1:
        with exposition.shared_counters():  # the workers' counters, summed by /metrics
            serving.serve_workers(state(ctx).config, sock, workers, state(ctx).settings.web)
    else:
        serving.serve(app, sock)
    out.print("stopped", markup=False)
