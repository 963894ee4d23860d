"""Archiving a sent edition and keeping the newsletter's pages and feeds up to date: the
edition's generic digest is kept once, then its pages, the indexes, every feed, the sitemap and
robots.txt are rendered and stored where their bytes changed."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import published
from newsletter.editions.edition import EditionError
from newsletter.settings import Settings
from newsletter.store.models import Edition, Publication
from newsletter.store.statuses import EditionStatus
from newsletter.syndication import documents
from newsletter.syndication.content import Published, digests
from newsletter.syndication.feeds import feeds
from newsletter.syndication.pages import (
    Renderer,
    edition_pages,
    gone_pages,
    index_pages,
    robots,
    sitemap,
    stylesheet,
)

log = logging.getLogger("newsletter.archive")
# An edition that went out, to everyone or to most: it is published.
SENT = (EditionStatus.COMPLETE, EditionStatus.PARTIAL)


def archive(session: Session, settings: Settings, edition: Edition, now: datetime) -> list[str]:
    """Publish a sent edition (once) and render what changed; the absolute URLs of the feeds
    whose bytes changed (what WebSub hubs are told)."""
    if not keep(session, settings, edition, now):
        return []
    # Written once its last delivery went, however long after the moment its send began.
    written = max(now, edition.finished_at or now)
    return render(session, settings, edition.newsletter, written, {edition.id})


def keep(session: Session, settings: Settings, edition: Edition, now: datetime) -> bool:
    """Keep a sent edition's generic digest as its publication (once); False for a newsletter
    that keeps no archive, an edition not sent, one with no article, or a second one the same
    day (logged)."""
    if edition.newsletter not in settings.newsletters or not settings.newsletter(edition.newsletter).archive:
        return False
    if edition.status not in SENT:
        return False
    if session.get(Publication, edition.id) is None:
        slug = published.slug(edition.slot)
        taken = select(Publication.edition_id).where(
            Publication.newsletter == edition.newsletter, Publication.slug == slug
        )
        if session.scalar(taken) is not None:
            # Its send time moved after the day's edition went: a page of its own would need
            # another address than the one its emails link to.
            log.warning(
                "edition %d is not archived: the %s archive already has the edition of %s",
                edition.id,
                edition.newsletter,
                slug,
            )
            return False
        found = digests(session, settings, edition)
        if not found:
            return False
        session.add(
            Publication(
                edition_id=edition.id,
                newsletter=edition.newsletter,
                slug=slug,
                published_at=edition.finished_at or edition.started_at or now,
                content=json.dumps(
                    {language: digest.to_json() for language, digest in found.items()},
                    ensure_ascii=False,
                    sort_keys=True,
                ),
            )
        )
        session.flush()
    return True


def withdraw(session: Session, settings: Settings, edition_id: int, now: datetime) -> list[str]:
    """Take a published edition out: its pages answer 410 Gone, it leaves the indexes, feeds and
    sitemap; the changed feeds' URLs."""
    row = session.get(Publication, edition_id)
    if row is None:
        raise EditionError(f"edition {edition_id} is not in the archive")
    if row.withdrawn_at is None:
        row.withdrawn_at = now
        session.flush()
    return render(session, settings, row.newsletter, now, {edition_id})


def publications(session: Session, settings: Settings, newsletter: str) -> list[Published]:
    """The newsletter's publications, newest first, withdrawn ones included, in the languages
    the site offers now: a language it no longer offers leaves the archive at the next render."""
    rows = session.execute(
        select(Publication, Edition.slot)
        .join(Edition, Edition.id == Publication.edition_id)
        .where(Publication.newsletter == newsletter)
        .order_by(Publication.published_at.desc(), Publication.edition_id.desc())
    ).all()
    return [Published.of(row, slot, settings.languages()) for row, slot in rows]


def render(
    session: Session, settings: Settings, newsletter: str, now: datetime, editions: set[int] | None = None
) -> list[str]:
    """Render the newsletter's indexes, feeds and the sitemap, and the pages of `editions` (all
    of them when None); store what changed, drop what is no longer made (everything, for a
    newsletter that keeps no archive). The URLs of the feeds whose bytes changed."""
    renderer = Renderer(settings)
    if settings.newsletter(newsletter).archive:
        changed = _render_newsletter(session, settings, renderer, newsletter, now, editions)
    else:
        documents.drop_newsletter(session, newsletter)
        changed = []
    archived = [name for name, config in settings.newsletters.items() if config.archive]
    everyone = {name: publications(session, settings, name) for name in archived}
    documents.put(session, sitemap(renderer, everyone), now)
    documents.put(session, robots(renderer), now)
    documents.put(session, stylesheet(renderer), now)
    return changed


def _render_newsletter(
    session: Session,
    settings: Settings,
    renderer: Renderer,
    newsletter: str,
    now: datetime,
    editions: set[int] | None,
) -> list[str]:
    """The newsletter's own pages and feeds (see `render`); the URLs of the feeds that changed."""
    site_language = settings.site.language
    everything = publications(session, settings, newsletter)
    live = [p for p in everything if not p.withdrawn]
    languages = sorted(
        {code for p in live for code in p.digests} | {site_language}, key=lambda c: (c != site_language, c)
    )
    made = []
    kept: set[str] = set()
    for publication in everything:
        paths = [
            published.edition_path(newsletter, publication.slot, code, site_language)
            for code in publication.digests
        ]
        kept.update(paths)
        if editions is not None and publication.edition_id not in editions:
            continue
        if publication.withdrawn:
            for path, body in gone_pages(renderer, publication):
                documents.gone(session, path, body, now)
        else:
            made += edition_pages(renderer, publication)
    made += index_pages(renderer, newsletter, live, languages)
    limit = settings.syndication.feed_entries
    for language in languages:
        mine = [p for p in live if language in p.digests]
        made += feeds(settings, newsletter, language, mine[:limit])
        # A section's feed stays while any edition carries the section: its readers, and the
        # pages linking it, never meet a 404 because the newest editions had none of it.
        for slug in sorted({s.slug for p in mine for s in p.digests[language].sections}):
            carrying = [p for p in mine if p.digests[language].section(slug) is not None]
            made += feeds(settings, newsletter, language, carrying[:limit], slug)
    changed = []
    for document in made:
        kept.add(document.path)
        if documents.put(session, document, now) and document.path.startswith("/feeds/"):
            changed.append(published.url(str(settings.public_url), document.path))
    documents.drop_missing(session, f"/archive/{newsletter}/", kept)
    documents.drop_missing(session, f"/feeds/{newsletter}/", kept)
    return changed
