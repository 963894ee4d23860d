"""The editors' picks: an article pinned to, or excluded from, an edition not yet prepared;
listed, and undone."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.editions.edition import EditionError
from newsletter.errors import InputError
from newsletter.store.models import Article, Edition, EditionPick
from newsletter.store.runtime import MAX_ID
from newsletter.store.statuses import EditionStatus, PickAction


def find_article(session: Session, reference: str) -> Article:
    """An article by id or URL, as an editor would name it."""
    query = select(Article)
    if reference.isascii() and reference.isdigit():  # '²' is a digit to str.isdigit, not to int()
        if int(reference) > MAX_ID:  # SQLite overflows past 64 bits; PostgreSQL ids stop at 32
            raise InputError("article", f"no article can have the id {reference} (ids go up to {MAX_ID})")
        query = query.where(Article.id == int(reference))
    else:
        query = query.where(Article.url == reference)
    article = session.scalars(query.order_by(Article.id)).first()
    if article is None:
        raise EditionError(f"no article {reference!r} (give its id or its URL)")
    return article


def pick(session: Session, edition: Edition, article: Article, action: PickAction) -> None:
    """Pin or exclude an article for an edition that has not been prepared yet."""
    if edition.status != EditionStatus.DRAFT:
        raise EditionError(f"edition {edition.newsletter} {edition.slot} is {edition.status}: too late")
    existing = session.get(EditionPick, (edition.id, article.id))
    if existing is None:
        session.add(EditionPick(edition_id=edition.id, article_id=article.id, action=action))
    else:
        existing.action = action


def unpick(session: Session, edition: Edition, article: Article) -> bool:
    """Undo an editor's pin or exclusion; False when there was none."""
    if edition.status != EditionStatus.DRAFT:
        raise EditionError(f"edition {edition.newsletter} {edition.slot} is {edition.status}: too late")
    existing = session.get(EditionPick, (edition.id, article.id)) if edition.id is not None else None
    if existing is None:
        return False
    session.delete(existing)
    return True


def picks(session: Session, edition: Edition) -> list[tuple[Article, PickAction]]:
    """The edition's picks, pins first, each with its article."""
    if edition.id is None:
        return []
    rows = session.execute(
        select(Article, EditionPick.action)
        .join(EditionPick, EditionPick.article_id == Article.id)
        .where(EditionPick.edition_id == edition.id)
        .order_by(EditionPick.action.desc(), Article.id)
    ).all()
    return [(article, PickAction(action)) for article, action in rows]
