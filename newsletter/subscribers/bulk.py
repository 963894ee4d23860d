"""Subscribers in bulk: CSV import (validated row by row) and export.

A bad row never stops the import and is never lost: it is reported with its line number and
written, with the reason, to a `.rejected.csv` beside the input, to be fixed and imported again.
Someone who unsubscribed, bounced or complained is never reactivated by an import.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.settings import Settings
from newsletter.store.categories import slugify
from newsletter.store.models import Category, Subscriber, SubscriberNewsletter, utcnow
from newsletter.store.statuses import ENDED, SubscriberStatus
from newsletter.subscribers.addresses import normalize_email

COLUMNS = ("email", "name", "language", "categories", "newsletters", "status")
_EMAIL = re.compile(r"^[^@\s<>,;\"]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_LIST = re.compile(r"[;|]")


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    kept: int = 0
    rejected: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    rejects_file: Path | None = None


@dataclass(frozen=True)
class Row:
    email: str
    name: str | None
    language: str
    categories: tuple[str, ...]
    newsletters: tuple[str, ...]
    status: SubscriberStatus


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in _LIST.split(value or "") if part.strip()]


def parse_row(raw: dict[str, str], sections: dict[str, str], settings: Settings) -> Row:
    """A CSV row checked and normalized; ValueError says what is wrong with it."""
    email = normalize_email(raw.get("email") or "")
    if not _EMAIL.match(email) or len(email) > 320:
        raise ValueError(f"not an email address: {raw.get('email')!r}")
    name = " ".join((raw.get("name") or "").split()) or None
    if name and len(name) > 300:
        raise ValueError("name longer than 300 characters")
    language = (raw.get("language") or settings.site.language).strip().lower()
    if not re.fullmatch(r"[a-z]{2,3}", language):
        raise ValueError(f"language must be a code like 'en' or 'de', not {language!r}")
    categories = []
    for item in _split(raw.get("categories")):
        slug = slugify(item)
        if slug not in sections:
            known = ", ".join(sorted(sections)) or "none yet: run `newsletter fetch` first"
            raise ValueError(f"unknown category {item!r} (known: {known})")
        categories.append(slug)
    newsletters = _split(raw.get("newsletters")) or ["weekly"]
    for item in newsletters:
        if item not in settings.newsletters:
            configured = ", ".join(settings.newsletters)
            raise ValueError(f"unknown newsletter {item!r} (configured: {configured})")
    try:
        status = SubscriberStatus((raw.get("status") or SubscriberStatus.ACTIVE).strip().lower())
    except ValueError:
        raise ValueError(f"status must be one of {', '.join(SubscriberStatus)}") from None
    return Row(email, name, language, tuple(dict.fromkeys(categories)), tuple(newsletters), status)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "email" not in [f.strip().lower() for f in reader.fieldnames]:
            raise ValueError(f"{path}: the first line must name the columns, 'email' among them")
        for raw in reader:
            cleaned = {(k or "").strip().lower(): (v or "") for k, v in raw.items() if k}
            yield reader.line_num, cleaned


def import_csv(session: Session, settings: Settings, path: Path) -> ImportReport:
    """Add new subscribers, update the preferences of known ones, report the rest."""
    report = ImportReport()
    categories = {c.slug: c for c in session.scalars(select(Category).where(Category.is_section))}
    sections = {slug: c.name for slug, c in categories.items()}
    seen: set[str] = set()
    for line, raw in _rows(path):
        try:
            row = parse_row(raw, sections, settings)
            if row.email in seen:
                raise ValueError("the same address appears earlier in the file")
        except ValueError as exc:
            report.rejected.append((line, raw, str(exc)))
            continue
        seen.add(row.email)
        subscriber = session.scalars(select(Subscriber).where(Subscriber.email == row.email)).one_or_none()
        if subscriber is not None and subscriber.status in ENDED:
            report.kept += 1  # consent withdrawn: an import never overrides it
            continue
        if subscriber is None:
            subscriber = Subscriber(email=row.email, created_at=utcnow())
            session.add(subscriber)
            report.added += 1
        else:
            report.updated += 1
        subscriber.name = row.name or subscriber.name
        subscriber.language = row.language
        subscriber.status = row.status
        if row.status == SubscriberStatus.ACTIVE and subscriber.confirmed_at is None:
            subscriber.confirmed_at = utcnow()
        subscriber.categories = [categories[slug] for slug in row.categories]
        have = {n.newsletter: n for n in subscriber.newsletters}
        subscriber.newsletters = [have.get(n) or SubscriberNewsletter(newsletter=n) for n in row.newsletters]
        session.flush()
    if report.rejected:
        report.rejects_file = path.with_suffix(".rejected.csv")
        with open(report.rejects_file, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow([*COLUMNS, "line", "error"])
            for line, raw, error in report.rejected:
                writer.writerow([*(raw.get(c, "") for c in COLUMNS), line, error])
    return report


def export_csv(session: Session, path: Path) -> int:
    """Every subscriber, in the import format (status included), streamed."""
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        query = select(Subscriber).order_by(Subscriber.id).execution_options(yield_per=1000)
        for subscriber in session.scalars(query):
            writer.writerow(
                [
                    subscriber.email,
                    subscriber.name or "",
                    subscriber.language,
                    ";".join(c.slug for c in subscriber.categories),
                    ";".join(n.newsletter for n in subscriber.newsletters),
                    subscriber.status,
                ]
            )
            count += 1
    return count
