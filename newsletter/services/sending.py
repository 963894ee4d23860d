"""Sending: the due edition prepared once and sent (or resumed), by one sender or several."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path

from newsletter.sending.pace import Pace
from newsletter.sending.providers import Provider, make_provider
from newsletter.sending.report import SendReport
from newsletter.sending.sender import Sender
from newsletter.services.editions import edition, prepare_due
from newsletter.store import ledger
from newsletter.store.db import reading, unit_of_work
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import OPEN, DeliveryStatus


def publish(
    runtime: Runtime,
    provider: Provider,
    newsletter: str,
    now: datetime,
    edition_id: int | None = None,
    retry_failed: bool = False,
    pace: Pace | None = None,
    on_progress: Callable[[SendReport], None] = lambda _r: None,
) -> SendReport:
    """The operator's job: open the due edition, prepare it once, and send it (or resume it)."""
    settings = runtime.settings
    warnings: list[str] = []
    if edition_id is None:
        edition_id, warnings = prepare_due(runtime, newsletter, now)
    else:
        settings.signing_key()  # refuse a missing or placeholder key before any work
    pace = pace or Pace.from_settings(settings.sending)
    report = Sender(settings, runtime.factory, provider, pace, on_progress).send(edition_id, retry_failed)
    report.warnings = warnings
    return report


def send(
    runtime: Runtime,
    newsletter: str,
    now: datetime,
    edition_id: int | None = None,
    retry_failed: bool = False,
    rate: float | None = None,
    on_progress: Callable[[SendReport], None] = lambda _r: None,
) -> SendReport:
    """`publish` through the configured provider, closed afterwards."""
    provider = make_provider(runtime.settings)
    try:
        pace = Pace.from_settings(runtime.settings.sending, rate)
        return publish(runtime, provider, newsletter, now, edition_id, retry_failed, pace, on_progress)
    finally:
        provider.close()


def send_with_workers(
    runtime: Runtime,
    config: Path | None,
    newsletter: str,
    now: datetime,
    workers: int,
    edition_id: int | None = None,
    retry_failed: bool = False,
    rate: float | None = None,
    on_tick: Callable[[int, int], None] = lambda _done, _total: None,
) -> tuple[SendReport, list[str]]:
    """Prepare here, then let `workers` sender processes share the edition through the ledger.

    `on_tick(done, total)` follows their joint progress, read from the ledger; returns the
    edition's report and the last lines of every sender that failed.
    """
    warnings: list[str] = []
    if edition_id is None:
        edition_id, warnings = prepare_due(runtime, newsletter, now)
    if retry_failed:
        with unit_of_work(runtime.factory) as session:
            ledger.retry_failed(session, edition_id)
    command = [sys.executable, "-m", "newsletter"]
    if config is not None:
        command += ["--config", str(config)]
    command += ["send", "--edition", str(edition_id)]
    if rate:
        command += ["--rate", str(rate / workers)]
    problems = []
    with ExitStack() as files:
        # Logs go to files: a full pipe would stall a sender.
        logs = [files.enter_context(tempfile.TemporaryFile("w+")) for _ in range(workers)]
        children = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log) for log in logs]
        while any(child.poll() is None for child in children):
            with reading(runtime.factory) as session:
                tally = ledger.counts(session, edition_id)
            on_tick(sum(n for s, n in tally.items() if s not in OPEN), sum(tally.values()))
            time.sleep(0.5)
        for child, log in zip(children, logs, strict=True):
            if child.returncode != 0:
                log.seek(0)
                problems.append("\n".join(log.read().strip().splitlines()[-5:]))
    summary = edition(runtime, edition_id)
    report = SendReport(
        edition_id,
        summary.edition.status,
        summary.counts.get(DeliveryStatus.SENT, 0),
        summary.counts.get(DeliveryStatus.FAILED, 0),
        counts=summary.counts,
        warnings=warnings,
    )
    return report, problems
