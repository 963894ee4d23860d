"""`newsletter run`: the scheduled job, until SIGTERM or SIGINT stops it cleanly."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from newsletter import logs
from newsletter.cli import output
from newsletter.cli.output import out
from newsletter.cli.serve import HostOption, PortOption, bound
from newsletter.cli.state import state
from newsletter.scheduler.runner import Runner, wall_clock
from newsletter.services import schedule
from newsletter.web import serving
from newsletter.web.app import create_app

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
    """Run the scheduled job: fetch the feeds every few minutes, send each newsletter's edition at
    its slot (or once, late, within the grace), keep the store tidy. SIGTERM or Ctrl-C stop it
    within seconds: the messages on the wire finish and are recorded, the rest of the batch is
    given back, a feed being read is cut short."""
    # First: a signal during start-up (settings, store, scheduler) stops it cleanly too.
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    settings = state(ctx).settings
    logs.configure(state(ctx).verbose, interactive=False, json_lines=log_json)
    runtime = state(ctx).runtime()
    runner = Runner(runtime)
    pages = serving.Background(create_app(runtime), bound(host, port)) if with_web else None
    runner.start()
    if pages is not None:
        pages.start()
        out.print(
            f"serving the readers' pages on {serving.address(pages.sock)}", markup=False, soft_wrap=True
        )
    for job in schedule.jobs(runtime, wall_clock()):
        out.print(
            f"{job.job_id}: next {output.local(job.next_run, settings.zone)}", markup=False, soft_wrap=True
        )
    out.print(READY, markup=False)
    stopping.wait()
    out.print("stopping: what is on the wire is finished and recorded, the rest given back", markup=False)
    runner.stop.set()  # before the pages stop: a send or a fetch starts ending at once
    if pages is not None:
        pages.stop()
    runner.shutdown()
    out.print("stopped", markup=False)
