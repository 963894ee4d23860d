"""The editors' picks: an article pinned to, or excluded from, an edition not yet prepared;
listed, and undone."""

from __future__ import annotations

from sqlalchemy import func, select
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
        existing = EditionPick(edition_id=edition.id, article_id=article.id, action=action)
        session.add(existing)
    elif existing.action == action:
        return
    existing.action = action
    existing.position = None
    if action == PickAction.PIN:  # a new pin goes after those already ordered
        last = session.scalar(
            select(func.max(EditionPick.position)).where(EditionPick.edition_id == edition.id)
        )
        existing.position = 0 if last is None else last + 1


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


def move(session: Session, edition: Edition, article: Article, step: int) -> bool:
    """Move a pinned article up (step -1) or down (+1) among the pins of its sections: it
    changes places with the nearest pin that shares a section with it. False when there is
    none that way (or the article is not pinned)."""
    if edition.status != EditionStatus.DRAFT:
        raise EditionError(f"edition {edition.newsletter} {edition.slot} is {edition.status}: too late")
    order = pin_order(session, edition)
    mine = next((p for p, _a in order if p.article_id == article.id), None)
    if mine is None:
        return False
    for index, (pin, _article) in enumerate(order):  # number them 0..n-1 as they stand
        pin.position = index
    sections = {c.id for c in article.categories if c.is_section}
    at = next(i for i, (p, _a) in enumerate(order) if p is mine)
    others = range(at - 1, -1, -1) if step < 0 else range(at + 1, len(order))
    for index in others:
        pin, other = order[index]
        if sections & {c.id for c in other.categories if c.is_section}:
            mine.position, pin.position = pin.position, mine.position
            return True
    return False


def pin_order(session: Session, edition: Edition) -> list[tuple[EditionPick, Article]]:
    """The edition's pins in the order they take in their sections: ordered ones first, then
    the newest."""
    if edition.id is None:
        return []
    rows = session.execute(
        select(EditionPick, Article)
        .join(Article, Article.id == EditionPick.article_id)
        .where(EditionPick.edition_id == edition.id, EditionPick.action == PickAction.PIN)
    ).all()
    ranked = sorted(
        rows,
        key=lambda r: (r[0].position is None, r[0].position or 0, -r[1].published_at.timestamp(), r[1].id),
    )
    return [(pin, article) for pin, article in ranked]
