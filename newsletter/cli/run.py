"""`newsletter run`: the scheduled job, until SIGTERM or SIGINT stops it cleanly."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from newsletter import logs
from newsletter.cli import output
from newsletter.cli.options import HostOption, PortOption
from newsletter.cli.output import out
from newsletter.cli.state import state
from newsletter.errors import InputError
from newsletter.scheduler.runner import Runner, wall_clock
from newsletter.services import timetable

if TYPE_CHECKING:
    from newsletter.metrics.exposition import MetricsServer
    from newsletter.store.runtime import Runtime
    from newsletter.web.serving import Background

# Printed once the job is scheduled: what a supervisor (or a test) waits for.
READY = "running: SIGTERM or Ctrl-C stops it"


def run(
    ctx: typer.Context,
    log_json: Annotated[
        bool, typer.Option("--log-json", help="Log JSON lines, for a log collector.")
    ] = False,
    with_web: Annotated[
        bool, typer.Option("--with-web", help="Serve the readers' pages from this process too.")
    ] = False,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
) -> None:
    """Run the scheduled job until SIGTERM or Ctrl-C: feeds, editions at their slots, upkeep.

    It fetches the feeds every few minutes, sends each newsletter's edition at its slot (or once,
    late, within the grace) and keeps the store tidy. SIGTERM or Ctrl-C stop it within seconds:
    the messages on the wire finish and are recorded, the rest of the batch is given back, a feed
    being read is cut short."""
    # First: a signal during start-up (settings, store, scheduler) stops it cleanly too.
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    settings = state(ctx).settings
    logs.configure(state(ctx).verbose, interactive=False, json_lines=log_json, zone=settings.zone)
    runtime = state(ctx).runtime()
    runner = Runner(runtime)
    pages = readers_pages(runtime, host, port) if with_web else None
    scrapes = metrics_port(runtime) if settings.metrics.port is not None else None
    runner.start()
    if pages is not None:
        pages.start()
        out.print(f"serving the readers' pages on {pages.address}", markup=False, soft_wrap=True)
    if scrapes is not None:
        scrapes.start()
        out.print(f"metrics for Prometheus on {scrapes.address}", markup=False, soft_wrap=True)
    for job in timetable.jobs(runtime, wall_clock()):
        out.print(
            f"{job.job_id}: next {output.local(job.next_run, settings.zone)}", markup=False, soft_wrap=True
        )
    out.print(READY, markup=False)
    stopping.wait()
    out.print("stopping: what is on the wire is finished and recorded, the rest given back", markup=False)
    runner.stop.set()  # before the pages stop: a send or a fetch starts ending at once
    if pages is not None:
        pages.stop()
    if scrapes is not None:
        scrapes.stop()
    runner.shutdown()
    out.print("stopped", markup=False)


def metrics_port(runtime: Runtime) -> MetricsServer:
    """`/metrics` on `[metrics] port`, bound now so a port in use is one clear error."""
    from newsletter.cli.serve import bound
    from newsletter.metrics.exposition import MetricsServer, registry

    metrics = runtime.settings.metrics
    assert metrics.port is not None
    try:
        sock = bound(metrics.host, metrics.port)
    except InputError as exc:
        raise InputError("metrics.port", exc.problem) from None
    return MetricsServer(runtime.settings, registry(runtime, wall_clock), sock)


def readers_pages(runtime: Runtime, host: str, port: int) -> Background:
    """The readers' pages to serve from this process (`--with-web`): only then is the web app
    imported."""
    from newsletter.cli.serve import bound
    from newsletter.web import serving
    from newsletter.web.app import create_app

    return serving.Background(create_app(runtime), bound(host, port))
