"""Rendered pages and feeds, kept: a document is rewritten only when its bytes change, so its
ETag and Last-Modified hold until then, and an export leaves its file as it was. Its
Last-Modified only moves forward: new bytes always carry a later second than the old ones, so a
client's If-Modified-Since never answers 304 for bytes it has not seen."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from newsletter.store.models import Document


@dataclass(frozen=True)
class Rendered:
    """A document as a renderer made it: where it lives, what it is, its text."""

    path: str
    media_type: str
    body: str


def etag(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def put(session: Session, rendered: Rendered, now: datetime) -> bool:
    """Store a document; True when it is new or its bytes changed (False leaves it untouched)."""
    tag = etag(rendered.body)
    existing = session.get(Document, rendered.path)
    if existing is None:
        session.add(
            Document(
                path=rendered.path,
                media_type=rendered.media_type,
                body=rendered.body,
                etag=tag,
                updated_at=now,
                gone=False,
            )
        )
        return True
    if existing.etag == tag and existing.media_type == rendered.media_type and not existing.gone:
        return False
    existing.media_type, existing.body, existing.etag = rendered.media_type, rendered.body, tag
    existing.updated_at, existing.gone = _after(existing.updated_at, now), False
    return True


def gone(session: Session, path: str, body: str, now: datetime) -> None:
    """A withdrawn page: answered 410 with `body`, left out of the export."""
    existing = session.get(Document, path)
    if existing is None:
        session.add(
            Document(
                path=path,
                media_type="text/html; charset=utf-8",
                body=body,
                etag=etag(body),
                updated_at=now,
                gone=True,
            )
        )
    elif not existing.gone:
        existing.body, existing.etag, existing.gone = body, etag(body), True
        existing.updated_at = _after(existing.updated_at, now)


def _after(before: datetime, now: datetime) -> datetime:
    """When new bytes were written: `now`, or the second after the old ones' when `now` is not
    later (a send or rebuild run for an earlier moment)."""
    return max(now, before.replace(microsecond=0) + timedelta(seconds=1))


def drop_missing(session: Session, prefix: str, kept: set[str]) -> list[str]:
    """Documents under `prefix` no renderer made this time (a feed of a category gone): deleted."""
    stale = [
        d
        for d in session.scalars(select(Document).where(Document.path.startswith(prefix, autoescape=True)))
        if d.path not in kept and not d.gone
    ]
    for document in stale:
        session.delete(document)
    return [d.path for d in stale]


def drop_newsletter(session: Session, newsletter: str) -> None:
    """Every page and feed of a newsletter that keeps no archive (any more): deleted."""
    index = f"/archive/{newsletter}"
    session.execute(
        delete(Document).where(
            or_(
                Document.path == index,
                Document.path.startswith(f"{index}/", autoescape=True),
                Document.path.startswith(f"/feeds/{newsletter}/", autoescape=True),
            )
        )
    )


def find(session: Session, path: str) -> Document | None:
    return session.get(Document, path)
