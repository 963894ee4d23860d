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
from newsletter.cli.state import state
from newsletter.scheduler.runner import Runner, wall_clock
from newsletter.services import schedule


def run(
    ctx: typer.Context,
    log_json: Annotated[
        bool, typer.Option("--log-json", help="Log JSON lines, for a log collector.")
    ] = False,
) -> None:
    """Run the scheduled job: fetch the feeds every few minutes, send each newsletter's edition at
    its slot (or once, late, within the grace), keep the store tidy. SIGTERM or Ctrl-C finish the
    batch in flight and stop."""
    settings = state(ctx).settings
    logs.configure(state(ctx).verbose, interactive=False, json_lines=log_json)
    runtime = state(ctx).runtime()
    runner = Runner(runtime)
    stopping = threading.Event()

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runner.start()
    for job in schedule.jobs(runtime, wall_clock()):
        out.print(
            f"{job.job_id}: next {output.local(job.next_run, settings.zone)}", markup=False, soft_wrap=True
        )
    while not stopping.wait(1):
        pass
    out.print("stopping: the batch in flight is finished and recorded", markup=False)
    runner.shutdown()
    out.print("stopped", markup=False)
