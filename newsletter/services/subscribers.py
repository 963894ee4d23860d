"""Subscribers: CSV import and export, and how many readers stand where."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select

from newsletter.errors import NewsletterError
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Subscriber
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import SubscriberStatus
from newsletter.subscribers.bulk import ImportReport, export_csv, import_csv


def import_file(runtime: Runtime, source: Path | BinaryIO, *, confirmed: bool = False) -> ImportReport:
    """Add or update subscribers from a CSV file or a byte stream (standard input: `-` on the
    command line); bad rows are reported and kept aside, never lost.

    `confirmed`: the readers opted in elsewhere, so rows may make them active."""
    name = str(source) if isinstance(source, Path) else "standard input"
    if isinstance(source, Path) and not source.is_file():
        raise NewsletterError(f"no such file: {source}")
    try:
        with unit_of_work(runtime.factory) as session:
            return import_csv(session, runtime.settings, source, confirmed=confirmed)
    except ValueError as exc:
        raise NewsletterError(f"cannot import {name}: {exc}") from None


def export_file(runtime: Runtime, path: Path) -> int:
    """Every subscriber to a CSV in the import format; how many."""
    with reading(runtime.factory) as session:
        return export_csv(session, path)


def counts(runtime: Runtime) -> dict[SubscriberStatus, int]:
    """Subscribers per status."""
    with reading(runtime.factory) as session:
        rows = session.execute(
            select(Subscriber.status, func.count()).group_by(Subscriber.status).order_by(Subscriber.status)
        )
        return {status: count for status, count in rows}
