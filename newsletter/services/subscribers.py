"""Subscribers: CSV import and export, and how many readers stand where."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from newsletter.errors import NewsletterError
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Subscriber
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import SubscriberStatus
from newsletter.subscribers.bulk import ImportReport, export_csv, import_csv


def import_file(runtime: Runtime, path: Path, *, confirmed: bool = False) -> ImportReport:
    """Add or update subscribers from a CSV; bad rows are reported and kept aside, never lost.

    `confirmed`: the readers opted in elsewhere, so rows may make them active."""
    if not path.is_file():
        raise NewsletterError(f"no such file: {path}")
    try:
        with unit_of_work(runtime.factory) as session:
            return import_csv(session, runtime.settings, path, confirmed=confirmed)
    except ValueError as exc:
        raise NewsletterError(f"cannot import {path}: {exc}") from None


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
