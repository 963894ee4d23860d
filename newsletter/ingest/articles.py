"""Storing parsed entries as articles: once per (key, language), whichever feeds list them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.ingest.parse import ParsedEntry
from newsletter.store.categories import slugify
from newsletter.store.models import Article, Category

# Clocks differ: a date this far ahead is still taken as given.
FUTURE_TOLERANCE = timedelta(minutes=15)
_CHUNK = 500


@dataclass
class Stored:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    article_ids: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Placement:
    """Where a feed's entries go: their language, the feed's category, the site's sections."""

    language: str
    category: tuple[str, str] | None  # (slug, display name) of a category feed
    sections: dict[str, str]  # slug -> name; empty means every term is a section


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _existing(
    session: Session, entries: Sequence[ParsedEntry], language: str
) -> tuple[dict[str, Article], dict[str, Article]]:
    by_key: dict[str, Article] = {}
    by_url: dict[str, Article] = {}
    for keys in _chunks([e.key for e in entries]):
        query = select(Article).where(Article.language == language, Article.key.in_(keys))
        by_key.update((a.key, a) for a in session.scalars(query))
    missing = [e.url for e in entries if e.key not in by_key]
    for urls in _chunks(missing):
        query = select(Article).where(Article.language == language, Article.url.in_(urls))
        by_url.update((a.url, a) for a in session.scalars(query))
    return by_key, by_url


def _categories(
    session: Session, entries: Sequence[ParsedEntry], placement: Placement
) -> dict[str, Category]:
    """Every category the entries name, created or promoted to a section as needed."""
    wanted: dict[str, tuple[str, bool]] = {}
    for entry in entries:
        for term in entry.terms:
            slug = slugify(term)
            section = not placement.sections or slug in placement.sections
            wanted.setdefault(slug, (placement.sections.get(slug, term), section))
    if placement.category:
        slug, name = placement.category
        wanted[slug] = (name, True)
    found: dict[str, Category] = {}
    for slugs in _chunks(list(wanted)):
        found.update((c.slug, c) for c in session.scalars(select(Category).where(Category.slug.in_(slugs))))
    for slug, (name, section) in wanted.items():
        category = found.get(slug)
        if category is None:
            category = found[slug] = Category(slug=slug, name=name, is_section=section)
            session.add(category)
        elif section and not category.is_section:
            category.is_section = True
    return found


def store_entries(
    session: Session, entries: Sequence[ParsedEntry], placement: Placement, now: datetime
) -> Stored:
    """Insert new articles, update changed ones, never duplicate; reports odd entries."""
    result = Stored()
    by_key, by_url = _existing(session, entries, placement.language)
    categories = _categories(session, entries, placement)
    own = categories[placement.category[0]] if placement.category else None
    for entry in entries:
        article = by_key.get(entry.key)
        if article is None and (article := by_url.get(entry.url)) is not None:
            result.warnings.append(
                f"{entry.url}: guid changed from {article.key!r} to {entry.key!r}; same article kept"
            )
            article.key = entry.key
            by_key[entry.key] = article
        published = entry.published_at
        if published is None:
            published = article.published_at if article else now
            if article is None:
                result.warnings.append(f"{entry.url}: no date; dated when first seen")
        elif published > now + FUTURE_TOLERANCE:
            result.warnings.append(
                f"{entry.url}: dated in the future ({published:%Y-%m-%d %H:%M} UTC); dated now"
            )
            published = article.published_at if article else now
        names = [categories[slugify(t)] for t in entry.terms]
        if own is not None:
            names.append(own)
        values = {
            "url": entry.url,
            "title": entry.title,
            "author": entry.author,
            "published_at": published,
            "updated_at": entry.updated_at,
            "summary_html": entry.summary_html,
            "content_html": entry.content_html or (article.content_html if article else ""),
            "image_url": entry.image_url,
            "comment_count": (
                entry.comment_count
                if entry.comment_count is not None or article is None
                else article.comment_count
            ),
        }
        if article is None:
            article = Article(
                key=entry.key,
                language=placement.language,
                first_seen_at=now,
                last_seen_at=now,
                categories=list(dict.fromkeys(names)),
                **values,
            )
            session.add(article)
            by_key[entry.key] = article
            result.new += 1
        else:
            changed = {k: v for k, v in values.items() if getattr(article, k) != v}
            added = [c for c in dict.fromkeys(names) if c not in article.categories]
            for name, value in changed.items():
                setattr(article, name, value)
            article.categories.extend(added)
            article.last_seen_at = now
            if changed or added:
                result.updated += 1
            else:
                result.unchanged += 1
    session.flush()
    result.article_ids = [by_key[e.key].id for e in entries]
    return result


def mark_trending(session: Session, article_ids: Sequence[int]) -> None:
    """The Trending feed's order becomes each article's rank; articles it dropped lose theirs."""
    session.execute(
        update(Article)
        .where(Article.trending_rank.is_not(None), Article.id.not_in(article_ids))
        .values(trending_rank=None)
    )
    for rank, article_id in enumerate(article_ids, start=1):
        session.execute(update(Article).where(Article.id == article_id).values(trending_rank=rank))
