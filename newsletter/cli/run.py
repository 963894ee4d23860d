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
    its slot (or once, late, within the grace), keep the store tidy. SIGTERM or Ctrl-C finish the
    batch in flight and stop."""
    settings = state(ctx).settings
    logs.configure(state(ctx).verbose, interactive=False, json_lines=log_json)
    runtime = state(ctx).runtime()
    runner = Runner(runtime)
    pages = serving.Background(create_app(runtime), bound(host, port)) if with_web else None
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
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
    while not stopping.wait(1):
        pass
    out.print("stopping: the batch in flight is finished and recorded", markup=False)
    if pages is not None:
        pages.stop()
    runner.shutdown()
    out.print("stopped", markup=False)
