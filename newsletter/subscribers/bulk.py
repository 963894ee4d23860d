"""Subscribers in bulk: CSV import (validated row by row) and export.

A bad row never stops the import and is never lost: it is reported with its line number and
written, with the reason, to a `.rejected.csv` beside the input (`readers.csv` gives
`readers.rejected.csv`; standard input, a new one under the home folder's `subscribers/`), to be
fixed and imported again.
A reason names the column and the problem, never the reader's data, the address included (it
reaches terminals and logs; the rejected file beside the input keeps the row). The checked
rows go to the store a chunk at a time (`merge`), a transaction per chunk from the command line.
"""

from __future__ import annotations

import csv
import gc
import io
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import BinaryIO, TextIO

from sqlalchemy import String, select, type_coerce
from sqlalchemy.orm import Session

from newsletter.settings import Settings, language_code
from newsletter.store.categories import configured_sections, slugify
from newsletter.store.models import Category, Subscriber, SubscriberNewsletter, subscriber_categories, utcnow
from newsletter.store.statuses import SubscriberStatus, SubscriptionStatus
from newsletter.subscribers import merge
from newsletter.subscribers.addresses import InvalidAddress, normalize_email
from newsletter.subscribers.merge import Outcome, Row
from newsletter.subscribers.zones import reader_zone
from newsletter.text import control_character

COLUMNS = ("email", "name", "language", "categories", "newsletters", "status", "timezone")
# A cell's list: `weekly,daily` (a quoted cell), `weekly;daily` or `weekly|daily`.
_LIST = re.compile(r"[,;|]")
SEPARATORS = "separate several with , ; or |"
# What csv itself will read of one cell; past it a row is unreadable, not the whole file.
FIELD_LIMIT = 16 * 1024 * 1024
MAX_CELL = 10_000
# Rows per lookup and per transaction (`import_chunks`): a stopped import loses at most these.
CHUNK = 2_000
# A spreadsheet runs a cell starting with = + - @ tab or CR as a formula (OWASP's list), also
# after quotes it did not write itself.
_GUARDED = re.compile(r"'*[=+\-@\t\r]")
_NOT_UTF8 = re.compile(r"[\udc80-\udcff]")  # the bytes surrogateescape kept of bad UTF-8
# A detail email-validator passes on from idna or ipaddress, which may quote part of the cell.
_QUOTING_DETAIL = re.compile(r" \([^()]*'[^()]*\)")


@dataclass
class ImportReport:
    """What an import did; each rejected row as (line, its cells, the reason).

    `updated` counts readers whose stored values changed, `unchanged` those the row already
    described, `kept` those an import may not change (unsubscribed, bounced, suppressed);
    `pending` names (by id) the file's readers left waiting for their confirmation; `activated`
    counts known readers who had not confirmed and are active now (`confirmed`: counted among
    `updated` too, and told apart because no link of theirs was followed)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: int = 0
    rejected: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    rejects_file: Path | None = None
    pending: list[int] = field(default_factory=list)
    activated: int = 0
    moved: list[int] = field(default_factory=list)  # known readers whose time zone changed

    def merge(self, part: ImportReport) -> None:
        """A chunk's report added to the import's."""
        self.added += part.added
        self.updated += part.updated
        self.unchanged += part.unchanged
        self.kept += part.kept
        self.rejected += part.rejected
        self.pending += part.pending
        self.activated += part.activated
        self.moved += part.moved


def to_cell(value: str) -> str:
    """A value as a spreadsheet shows but never runs it: a quote before a formula character.

    Quotes already there count too (`'=x` becomes `''=x`), so `from_cell` gives every value back.
    """
    return "'" + value if _GUARDED.match(value) else value


def from_cell(cell: str) -> str:
    """The value `to_cell` wrote: one quote before a formula character is taken off."""
    return cell[1:] if cell.startswith("'") and _GUARDED.match(cell, 1) else cell


def default_newsletters(settings: Settings) -> list[str]:
    """What a new reader takes when no newsletter is named (an import's empty cell, `subscribers
    add` without --newsletters): every digest the site sends, the only one on a site of one. An
    alert newsletter is taken only when named: readers opt in to alerts."""
    return [name for name, config in settings.newsletters.items() if not config.is_alert]


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in _LIST.split(value or "") if part.strip()]


@lru_cache(maxsize=1024)
def _slugs(cell: str) -> tuple[str, ...]:
    """The slugs a categories cell names: a list's few spellings recur on most of its rows."""
    return tuple(slugify(item) for item in _split(cell))


def _check_cell(column: str, value: str) -> None:
    """Refuse what no column may hold; the value itself is not echoed."""
    if len(value) > MAX_CELL:
        raise ValueError(f"column {column} is longer than {MAX_CELL:,} characters")
    if _NOT_UTF8.search(value):
        raise ValueError(f"column {column} is not UTF-8")
    if control := control_character(value):
        raise ValueError(f"column {column} holds a control character ({control})")


def parse_row(raw: dict[str, str], sections: dict[str, str], settings: Settings) -> Row:
    """A CSV row checked and normalized; ValueError says what is wrong with it."""
    for column in COLUMNS:
        _check_cell(column, raw.get(column) or "")
    try:
        email = normalize_email(raw.get("email") or "")
    except InvalidAddress as exc:
        reason = _QUOTING_DETAIL.sub("", exc.reason)
        if "display name" in reason:  # 'Jack Doe <jack@…>': the name has a column of its own
            reason += " Put the address alone in the email column and the name in the name column."
        raise ValueError(f"column email is not an email address: {reason}") from None
    name = " ".join((raw.get("name") or "").split()) or None
    if name and len(name) > 300:
        raise ValueError("name longer than 300 characters")
    try:
        language = language_code(raw.get("language") or settings.site.language)
    except ValueError:
        raise ValueError("language must be a known language code like 'en' or 'de'") from None
    categories = []
    for slug in _slugs(raw.get("categories") or ""):
        if slug not in sections:
            known = ", ".join(sorted(sections)) or "none yet: run `newsletter fetch` first"
            # A slug never holds a separator; a section's name may ('Health, Science').
            split = any(_LIST.search(name) for name in sections.values())
            by_slug = "; a section whose name holds one is named as listed here" if split else ""
            raise ValueError(f"unknown category in column categories (known: {known}; {SEPARATORS}{by_slug})")
        categories.append(slug)
    newsletters = _split(raw.get("newsletters"))
    for item in newsletters:
        if item not in settings.newsletters:
            configured = ", ".join(settings.newsletters)  # none holds a separator: settings refuse it
            raise ValueError(
                f"unknown newsletter in column newsletters (configured: {configured}; {SEPARATORS})"
            )
    status = None
    if given := (raw.get("status") or "").strip().lower():
        try:
            status = SubscriberStatus(given)
        except ValueError:
            raise ValueError(f"status must be one of {', '.join(SubscriberStatus)}") from None
    return Row(
        email,
        name,
        language,
        tuple(dict.fromkeys(categories)),
        tuple(dict.fromkeys(newsletters)),
        status,
        _zone(raw.get("timezone")),
    )


@lru_cache(maxsize=1024)
def _zone(cell: str | None) -> str | None:
    """A timezone cell's zone (None: empty, a known reader keeps theirs); a list holds few zones."""
    try:
        return reader_zone(cell)
    except ValueError:
        raise ValueError("column timezone is not an IANA time zone like 'Europe/Lisbon'") from None


@contextmanager
def _text(source: Path | BinaryIO) -> Iterator[TextIO]:
    """A file or a byte stream (standard input) read as UTF-8, with or without a BOM."""
    # surrogateescape: a row with bytes that are not UTF-8 is refused alone (see `_check_cell`).
    if isinstance(source, Path):
        with open(source, newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
            yield handle
        return
    wrapper = io.TextIOWrapper(source, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield wrapper
    finally:
        wrapper.detach()  # the caller's stream is the caller's to close


def _rows(source: Path | BinaryIO) -> Iterator[tuple[int, dict[str, str], str | None]]:
    """(line, cells by column, why the row cannot be read or None) for every record."""
    csv.field_size_limit(max(csv.field_size_limit(), FIELD_LIMIT))  # only ever raised
    with _text(source) as handle:
        reader = csv.reader(handle, strict=True)  # strict: a broken quote is an error, not a guess
        try:
            columns = [name.strip().lower() for name in next(reader, [])]
        except csv.Error:
            columns = []
        if "email" not in columns:
            raise ValueError("the first line must name the columns, 'email' among them")
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield reader.line_num, {}, f"unreadable CSV: {exc}"
                continue
            if not cells:
                continue
            raw = {name: from_cell(cell) for name, cell in zip(columns, cells, strict=False) if name}
            shifted = any(cell.strip() for cell in cells[len(columns) :])
            yield reader.line_num, raw, "more cells than the first line names" if shifted else None


def _checked(
    source: Path | BinaryIO, sections: dict[str, str], settings: Settings
) -> Iterator[tuple[int, dict[str, str], Row | str]]:
    """(line, cells, the parsed row or why it is refused) for every record of the file."""
    seen: set[str] = set()
    for line, raw, unreadable in _rows(source):
        try:
            if unreadable:
                raise ValueError(unreadable)
            row = parse_row(raw, sections, settings)
            if row.email in seen:
                raise ValueError("the same address appears earlier in the file")
        except ValueError as exc:
            yield line, raw, str(exc)
            continue
        seen.add(row.email)
        yield line, raw, row


class ImportStopped(Exception):
    """The store failed during an import made a chunk per transaction: `report` counts what the
    chunks committed before it hold, up to `line`; the rest of the file was not imported."""

    def __init__(self, report: ImportReport, line: int) -> None:
        super().__init__(f"stopped after line {line}")
        self.report = report
        self.line = line


def import_csv(
    session: Session,
    settings: Settings,
    source: Path | BinaryIO,
    *,
    confirmed: bool = False,
    newsletters: list[str] | None = None,
) -> ImportReport:
    """`import_chunks` in the caller's transaction: all of it is kept, or none."""
    return _import(
        lambda: nullcontext(session), settings, source, confirmed=confirmed, newsletters=newsletters
    )


def import_chunks(
    unit: Callable[[], AbstractContextManager[Session]],
    settings: Settings,
    source: Path | BinaryIO,
    *,
    confirmed: bool = False,
    newsletters: list[str] | None = None,
) -> ImportReport:
    """Add new subscribers, update the preferences of known ones, report the rest: `CHUNK` rows
    per unit of work (`unit()`, committed as it closes), so a failure of the store loses at
    most the chunk under way, and raises `ImportStopped`, which says what was kept.

    `source` is a CSV file, or a byte stream such as standard input (`sys.stdin.buffer`): bytes,
    so that a row that is not UTF-8 is refused alone. `confirmed` says the readers opted in: only
    then may a reader become active, and a new or pending reader with no status is active.
    `newsletters`: what a new reader whose row names none takes (else `default_newsletters`).
    Imported again, the same file changes nothing: a run stopped half-way is finished that way.
    """
    return _import(unit, settings, source, confirmed=confirmed, newsletters=newsletters, stops=True)


def _import(
    unit: Callable[[], AbstractContextManager[Session]],
    settings: Settings,
    source: Path | BinaryIO,
    *,
    confirmed: bool,
    newsletters: list[str] | None,
    stops: bool = False,
) -> ImportReport:
    report = ImportReport()
    # The configured sections count before any fetch stored them, and a stored tag they name.
    configured = configured_sections(settings)
    with unit() as session:
        forgotten = merge.any_forgotten(session)
        stored = session.execute(select(Category.slug, Category.name).where(Category.is_section))
        sections = {slug: name for slug, name in stored} | configured
    # Forgotten readers are known by a hash keyed with the secret key: needed only once there are some.
    key = settings.signing_key() if forgotten else None
    default = tuple(newsletters or default_newsletters(settings))
    records = _checked(source, sections, settings)
    done = 0  # the last line of the last chunk kept
    while True:
        with _uncollected():
            if not (chunk := list(islice(records, CHUNK))):
                break
            part = ImportReport()
            try:
                with unit() as session:
                    _import_chunk(session, chunk, part, key, configured, confirmed, default)
            except Exception as exc:
                if stops and done:
                    raise ImportStopped(report, done) from exc
                raise
        report.merge(part)
        done = chunk[-1][0]
    if report.rejected:
        report.rejected.sort(key=lambda rejected: rejected[0])
        report.rejects_file = _rejects_file(source, settings)
        # surrogateescape: bytes that were not UTF-8 go back as they came, to be fixed there.
        with open(report.rejects_file, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
            writer = csv.writer(handle)
            writer.writerow([*COLUMNS, "line", "error"])
            for line, raw, error in report.rejected:
                writer.writerow([*(to_cell(raw.get(c, "")) for c in COLUMNS), line, to_cell(error)])
    return report


@contextmanager
def _uncollected() -> Iterator[None]:
    """No cyclic garbage collection during a chunk: its rows make no cycles, and the collector's
    passes over every object of the process took a fifth of an import's time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _import_chunk(
    session: Session,
    chunk: list[tuple[int, dict[str, str], Row | str]],
    report: ImportReport,
    key: bytes | None,
    configured: dict[str, str],
    confirmed: bool,
    default: tuple[str, ...],
) -> None:
    """One chunk's rows into the store and `report`: their readers looked up in a few queries,
    then written in a few statements."""
    rows: dict[str, tuple[int, dict[str, str], Row]] = {}
    for line, raw, checked in chunk:
        if isinstance(checked, Row):
            rows[checked.email] = (line, raw, checked)
        else:
            report.rejected.append((line, raw, checked))
    categories = merge.category_ids(
        session, (s for _l, _r, row in rows.values() for s in row.categories), configured
    )
    stored = merge.known(session, list(rows), key)
    now = utcnow()
    changes = []
    for email, (line, raw, row) in rows.items():
        try:
            change = merge.decide(
                row,
                stored.readers.get(email),
                email in stored.suppressed,
                categories,
                confirmed,
                default,
                now,
            )
        except ValueError as exc:
            report.rejected.append((line, raw, str(exc)))
            continue
        if change is None:
            report.kept += 1
        else:
            changes.append(change)
    for change, refused in merge.write(session, changes, now):
        if refused:
            line, raw, _row = rows[change.after.email]
            report.rejected.append((line, raw, refused))
            continue
        outcome = change.outcome
        if change.before is not None and change.before.timezone != change.after.timezone:
            report.moved.append(change.after.id)
        report.added += outcome is Outcome.ADDED
        report.updated += outcome is Outcome.UPDATED
        report.unchanged += outcome is Outcome.UNCHANGED
        if change.after.status == SubscriberStatus.PENDING:
            report.pending.append(change.after.id)
        if change.before is not None and change.before.status == SubscriberStatus.PENDING:
            report.activated += change.after.status == SubscriberStatus.ACTIVE
    session.expire_all()  # the caller's session may hold these readers: read them again


def _rejects_file(source: Path | BinaryIO, settings: Settings) -> Path:
    """Beside a file, `readers.csv` -> `readers.rejected.csv`, replacing an earlier one; for
    standard input a new file under the home folder, never where the command happened to start."""
    if isinstance(source, Path):
        return source.with_suffix(".rejected.csv")
    folder = settings.home_folder() / "subscribers"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = f"stdin-{utcnow():%Y%m%dT%H%M%SZ}"
    attempt = 1
    while True:
        path = folder / (f"{stamp}.rejected.csv" if attempt == 1 else f"{stamp}-{attempt}.rejected.csv")
        try:
            path.touch(exist_ok=False)  # claims the name: an import in the same second takes the next
            return path
        except FileExistsError:
            attempt += 1


def export_csv(session: Session, path: Path) -> int:
    """Every subscriber, in the import format (status included), `CHUNK` readers a query with
    their categories and newsletters a query each; no cell is a formula. Lists are in name
    order. A forgotten reader is no one to export (their row keeps only a hash, no import would take)."""
    slugs = {id_: slug for id_, slug in session.execute(select(Category.id, Category.slug))}
    chosen, taken = subscriber_categories.c, SubscriberNewsletter
    count = last = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        while readers := session.execute(
            select(
                Subscriber.id,
                Subscriber.email,
                Subscriber.name,
                Subscriber.language,
                type_coerce(Subscriber.status, String),
                Subscriber.timezone,
            )
            .where(~Subscriber.email.startswith("sha256:"), Subscriber.id > last)
            .order_by(Subscriber.id)
            .limit(CHUNK)
        ).all():
            first, last = readers[0][0], readers[-1][0]
            categories: dict[int, list[str]] = {}
            for subscriber_id, category_id in session.execute(
                select(chosen.subscriber_id, chosen.category_id).where(
                    chosen.subscriber_id.between(first, last)
                )
            ):
                categories.setdefault(subscriber_id, []).append(slugs[category_id])
            newsletters: dict[int, list[str]] = {}
            for subscriber_id, newsletter in session.execute(
                select(taken.subscriber_id, taken.newsletter)
                .where(taken.subscriber_id.between(first, last), taken.status == SubscriptionStatus.ACTIVE)
                .order_by(taken.subscriber_id, taken.newsletter)
            ):
                newsletters.setdefault(subscriber_id, []).append(newsletter)
            for id_, email, name, language, status, zone in readers:
                cells = (
                    email,
                    name or "",
                    language,
                    ";".join(sorted(categories.get(id_, ()))),
                    ";".join(newsletters.get(id_, ())),
                    status,
                    zone or "",
                )
                writer.writerow([to_cell(cell) for cell in cells])
            count += len(readers)
    return count
