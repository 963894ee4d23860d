"""What an edition can offer: its candidate articles, their scores, translations and sections,
loaded once so that every reader's plan draws on the same data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.editions.plan import Candidate, Rules
from newsletter.editions.ranking import Score, Signals, rank
from newsletter.settings import Settings
from newsletter.store.categories import slugify
from newsletter.store.models import Article, Category, Click, Edition, EditionNote, EditionPick
from newsletter.store.statuses import PickAction


@dataclass(frozen=True)
class Story:
    """An article's content as a card needs it."""

    id: int
    key: str
    language: str
    url: str
    title: str
    author: str | None
    published_at: datetime
    summary_html: str
    image_url: str | None
    comment_count: int | None
    sections: tuple[str, ...]


@dataclass
class Offer:
    """Everything the edition can offer, loaded once: every reader's plan draws on it."""

    edition: Edition
    rules: Rules
    candidates: list[Candidate]
    scores: dict[int, Score]
    stories: dict[int, Story]
    translations: dict[tuple[str, str], Story]
    names: dict[str, str]
    section_order: list[str]
    # The editors' notes for this edition, by language (Markdown source).
    notes: dict[str, str] = field(default_factory=dict)

    def reader_sections(self, slugs: list[str]) -> list[str]:
        """A reader's sections in the site's order; no choice means every section."""
        chosen = set(slugs) & set(self.section_order)
        return [s for s in self.section_order if s in chosen] if chosen else list(self.section_order)


def trending_signals(
    session: Session, articles: Sequence[Article], edition_id: int | None = None
) -> list[Signals]:
    """The ranking's inputs for these articles: what they carry, plus clicks from earlier
    editions; never those in `edition_id` itself, whose readers' clicks must not reshape it
    (as its archive page ranks it, after its send) once it went out."""
    query = select(Click.article_id, func.count()).where(Click.article_id.in_([a.id for a in articles]))
    if edition_id is not None:
        query = query.where(Click.edition_id.is_distinct_from(edition_id))
    clicks = dict(session.execute(query.group_by(Click.article_id)).all())
    return [
        Signals(a.id, a.published_at, a.trending_rank, a.comment_count, clicks.get(a.id, 0)) for a in articles
    ]


def _story(article: Article, sections: set[str]) -> Story:
    return Story(
        id=article.id,
        key=article.key,
        language=article.language,
        url=article.url,
        title=article.title,
        author=article.author,
        published_at=article.published_at,
        summary_html=article.summary_html,
        image_url=article.image_url,
        comment_count=article.comment_count,
        sections=tuple(c.slug for c in article.categories if c.slug in sections),
    )


def load_offer(session: Session, settings: Settings, edition: Edition) -> Offer:
    """Candidates (with a look back as far again as the window, for explanations), scores,
    translations and section names."""
    config = settings.newsletter(edition.newsletter)
    rows = (
        session.scalars(select(EditionPick).where(EditionPick.edition_id == edition.id)).all()
        if edition.id is not None
        else []
    )
    picks = {p.article_id: p.action for p in rows}
    span = edition.window_end - edition.window_start
    section_rows = session.scalars(select(Category).where(Category.is_section)).all()
    names = {c.slug: c.name for c in section_rows}
    configured = [slugify(name) for name in settings.site.categories]
    order = [s for s in configured if s in names] + sorted(set(names) - set(configured))
    articles = session.scalars(
        select(Article).where(
            Article.language == settings.site.language,
            (
                (Article.published_at >= edition.window_start - span)
                & (Article.published_at < edition.window_end)
            )
            | Article.id.in_(list(picks)),
        )
    ).all()
    stories = {a.id: _story(a, set(names)) for a in articles}
    stories = {i: s for i, s in stories.items() if s.sections}
    signals = trending_signals(session, [a for a in articles if a.id in stories], edition.id)
    scores = {s.article_id: s for s in rank(signals, settings.ranking, edition.window_end)}
    translations = {
        (t.key, t.language): _story(t, set(names))
        for t in session.scalars(
            select(Article).where(
                Article.language != settings.site.language,
                Article.key.in_([s.key for s in stories.values()]),
            )
        )
    }
    rules = Rules(
        window_start=edition.window_start,
        window_end=edition.window_end,
        per_category=config.per_category,
        trending=config.trending,
        pinned=frozenset(i for i, action in picks.items() if action == PickAction.PIN),
        excluded=frozenset(i for i, action in picks.items() if action == PickAction.EXCLUDE),
        zone=settings.zone,
        pin_rank={p.article_id: p.position for p in rows if p.position is not None},
    )
    candidates = [Candidate(s.id, s.title, s.published_at, frozenset(s.sections)) for s in stories.values()]
    return Offer(
        edition,
        rules,
        candidates,
        scores,
        stories,
        translations,
        names,
        order,
        edition_notes(session, edition),
    )


def edition_notes(session: Session, edition: Edition) -> dict[str, str]:
    """The edition's own notes by language ({} for one not yet created)."""
    if edition.id is None:
        return {}
    rows = session.execute(
        select(EditionNote.language, EditionNote.text).where(EditionNote.edition_id == edition.id)
    )
    return {language: text for language, text in rows}
