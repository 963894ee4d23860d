"""The public archive: a sent edition published (never delaying or failing its send), withdrawn,
everything rendered again, a page or feed as the web app serves it, the WebSub hubs told, and
the whole written out as static files."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from newsletter.editions.edition import EditionError
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Document, Edition, Publication
from newsletter.store.runtime import Runtime
from newsletter.syndication import documents, hubs, publish
from newsletter.syndication.export import ExportReport
from newsletter.syndication.export import export as write_files
from newsletter.syndication.hubs import PushReport, enqueue

log = logging.getLogger("newsletter.archive")
# The PostgreSQL advisory lock archive writers share ("arch"): not the migrations' own, which
# every command takes as it starts and must never wait for a long rebuild.
ARCHIVE_LOCK = 0x6172_6368


@dataclass(frozen=True)
class Served:
    """A stored page or feed: what the web app answers with."""

    path: str
    media_type: str
    body: bytes
    etag: str
    updated_at: datetime
    gone: bool


def _one_at_a_time(session: Session) -> None:
    """Archive writers take turns: two senders finishing the same edition on PostgreSQL would
    otherwise both add its publication and its new documents. (SQLite's writers queue anyway.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ARCHIVE_LOCK})


def archive_edition(runtime: Runtime, edition_id: int, now: datetime) -> list[str]:
    """Publish a sent edition and tell the hubs which feeds changed; a failure is logged and
    leaves the send as it was (`newsletter archive rebuild` publishes it later)."""
    try:
        with unit_of_work(runtime.factory) as session:
            _one_at_a_time(session)
            edition = session.get(Edition, edition_id)
            if edition is None:
                return []
            changed = publish.archive(session, runtime.settings, edition, now)
            enqueue(session, runtime.settings, changed, now)
    except Exception:
        log.exception(
            "edition %d could not be archived; `newsletter archive rebuild` tries again", edition_id
        )
        return []
    if changed:
        log.info("edition %d archived: %d archive feeds rewritten", edition_id, len(changed))
    return changed


def withdraw(runtime: Runtime, edition_id: int, now: datetime) -> list[str]:
    """Take an edition out of the archive and every feed; the feeds that changed."""
    with unit_of_work(runtime.factory) as session:
        _one_at_a_time(session)
        if session.get(Edition, edition_id) is None:
            raise EditionError(f"no edition {edition_id}")
        changed = publish.withdraw(session, runtime.settings, edition_id, now)
        enqueue(session, runtime.settings, changed, now)
        return changed


@dataclass(frozen=True)
class Rebuilt:
    published: list[int]  # editions sent but not yet in the archive, now published
    changed: list[str]  # feeds whose bytes changed


def rebuild(runtime: Runtime, now: datetime) -> Rebuilt:
    """Publish every sent edition not yet in the archive, then render every page and feed again
    (after a template changed); what did not change is left as it was."""
    settings = runtime.settings
    added: list[int] = []
    changed: list[str] = []
    with unit_of_work(runtime.factory) as session:
        _one_at_a_time(session)
        missing = session.scalars(
            select(Edition)
            .outerjoin(Publication, Publication.edition_id == Edition.id)
            .where(Edition.status.in_(publish.SENT), Publication.edition_id.is_(None))
            .order_by(Edition.window_end)
        ).all()
        added = [edition.id for edition in missing if publish.keep(session, settings, edition, now)]
        for newsletter in sorted(settings.newsletters):
            changed += publish.render(session, settings, newsletter, now)
        enqueue(session, settings, changed, now)
    return Rebuilt(added, sorted(set(changed)))


def document(runtime: Runtime, path: str) -> Served | None:
    """The stored page or feed at `path`, if any."""
    with reading(runtime.factory) as session:
        found = documents.find(session, path)
        if found is None:
            return None
        return Served(
            found.path, found.media_type, found.body.encode(), found.etag, found.updated_at, found.gone
        )


def push(runtime: Runtime, now: datetime) -> PushReport:
    """Tell the WebSub hubs of every changed feed whose push is due."""
    return hubs.push_due(runtime.factory, runtime.settings, now)


def export(runtime: Runtime, folder: Path) -> ExportReport:
    """Write every live page and feed, the sitemap and robots.txt into `folder` as static files;
    only what changed is rewritten, and what was withdrawn or dropped is removed."""
    with reading(runtime.factory) as session:
        found = [
            (path, body)
            for path, body in session.execute(
                select(Document.path, Document.body).where(Document.gone.is_(False)).order_by(Document.path)
            )
        ]
    return write_files(folder, found)
