"""Sending: the due edition prepared once and sent (or resumed), by one sender or several."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

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


def retry_failed(runtime: Runtime, edition_id: int) -> int:
    """Put an edition's failed deliveries back to pending, for senders to try again; how many."""
    with unit_of_work(runtime.factory) as session:
        return ledger.retry_failed(session, edition_id)


def progress(runtime: Runtime, edition_id: int) -> tuple[int, int]:
    """(done, total) deliveries of an edition, whoever is sending it."""
    with reading(runtime.factory) as session:
        tally = ledger.counts(session, edition_id)
    return sum(n for status, n in tally.items() if status not in OPEN), sum(tally.values())


def report(runtime: Runtime, edition_id: int) -> SendReport:
    """An edition's state as a send report, read from the ledger (after other processes sent it)."""
    summary = edition(runtime, edition_id)
    return SendReport(
        edition_id,
        summary.edition.status,
        summary.counts.get(DeliveryStatus.SENT, 0),
        summary.counts.get(DeliveryStatus.FAILED, 0),
        counts=summary.counts,
    )
