"""Editors' work on the next edition: what is trending, the issue as a reader gets it, picks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter import notes
from newsletter.editions.compose import Composer
from newsletter.editions.edition import EditionError, EditionInfo, draft, next_slot, open_edition
from newsletter.editions.offer import edition_notes as edition_notes_of
from newsletter.editions.offer import trending_signals
from newsletter.editions.picks import find_article, move, pick, picks, unpick
from newsletter.editions.prepare import prepare, reopen
from newsletter.editions.preview import Preview
from newsletter.editions.preview import preview as make_preview
from newsletter.editions.ranking import Score, rank
from newsletter.editions.variants import overrides
from newsletter.errors import InputError
from newsletter.services import audit, checks
from newsletter.services.audit import COMMAND_LINE
from newsletter.services.editions import grace
from newsletter.settings import language_code
from newsletter.store.categories import slugify
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Article, Category, Edition, EditionNote
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import EditionStatus, PickAction
from newsletter.text import printable

# A category's name and slug hold at most 200 characters in the store.
MAX_CATEGORY = 200
# An editor's subject or preheader: mail clients show far less, and headers fold past this.
MAX_LINE = 300


class _Unchanged(Exception):
    """An editor's change that changes nothing: its unit of work is rolled back."""


@dataclass(frozen=True)
class Trending:
    article_id: int
    title: str
    sections: list[str]
    score: Score


@dataclass(frozen=True)
class Picked:
    article_id: int
    title: str
    action: PickAction
    edition: EditionInfo


def trending(runtime: Runtime, now: datetime, category: str | None = None, days: int = 7) -> list[Trending]:
    """Recent articles in the site's language, highest score first, each with its signals."""
    settings = runtime.settings
    with reading(runtime.factory) as session:
        query = select(Article).where(
            Article.language == settings.site.language,
            Article.published_at >= now - timedelta(days=days),
            Article.published_at <= now,
        )
        if category:
            query = query.where(Article.categories.any(Category.slug == slugify(category)))
        articles = {a.id: a for a in session.scalars(query)}
        signals = trending_signals(session, list(articles.values()))
        return [
            Trending(
                score.article_id,
                articles[score.article_id].title,
                [c.name for c in articles[score.article_id].categories if c.is_section],
                score,
            )
            for score in rank(signals, settings.ranking, now)
        ]


def preview(
    runtime: Runtime,
    newsletter: str,
    now: datetime,
    categories: list[str] | None = None,
    language: str | None = None,
    email: str | None = None,
) -> Preview:
    """Exactly what such a reader (or that subscriber) gets in the next edition; writes nothing."""
    for name in categories or []:
        if not name.strip() or len(name) > MAX_CATEGORY:
            shown = name if len(name) <= MAX_CATEGORY else f"{name[:40]}… ({len(name)} characters)"
            raise InputError("category", f"a category's name or slug, not {shown!r}")
    settings = runtime.settings
    composer = Composer(settings.templates_path())
    with reading(runtime.factory) as session:
        slot = next_slot(session, settings, newsletter, now, grace(settings))
        return make_preview(session, settings, composer, newsletter, slot, categories, language, email)


@contextmanager
def _changing(
    runtime: Runtime, newsletter: str, now: datetime, editor: str, action: str, detail: dict[str, object]
) -> Iterator[tuple[Session, Edition]]:
    """An editor's change to the next edition, in one unit of work: a prepared edition no
    sender has begun is reopened and, once changed, prepared again (so the preview, the checks
    and the send all see the change); an approval given before the change is withdrawn, and
    with `hold_on_failed_checks` it is held and checked again, as when first prepared. Each
    change is in the audit log."""
    settings = runtime.settings
    config = settings.newsletter(newsletter)
    with unit_of_work(runtime.factory) as session:
        edition = open_edition(
            session, settings, newsletter, next_slot(session, settings, newsletter, now, grace(settings))
        )
        if edition.status not in UNDECIDED:
            raise EditionError(
                f"the {newsletter} edition of {edition.slot} is {edition.status}: too late to change it"
            )
        prepared = reopen(session, edition)
        yield session, edition
        if prepared:
            prepare(session, settings, edition, Composer(settings.templates_path()))
        if edition.approved_at is not None and config.approval == "required":
            edition.approved_at = edition.approved_by = None
            detail = {**detail, "approval": "withdrawn: changed after it was approved"}
        checking = prepared and config.hold_on_failed_checks
        if checking:
            checks.hold(edition, now)
        audit.record(session, action, now, editor, f"{newsletter} {edition.slot}", detail)
        edition_id = edition.id
    if checking:
        checks.settle(runtime, newsletter, edition_id, now)


def pick_article(
    runtime: Runtime,
    newsletter: str,
    reference: str,
    action: PickAction,
    now: datetime,
    editor: str = COMMAND_LINE,
) -> Picked:
    """Pin an article to (or exclude it from) the next edition, named by id or URL."""
    with unit_of_work(runtime.factory) as session:
        article = find_article(session, reference)
        article_id, title = article.id, article.title
    with _changing(runtime, newsletter, now, editor, f"edition {action}", {"article": article_id}) as (
        session,
        edition,
    ):
        pick(session, edition, session.get_one(Article, article_id), action)
    return Picked(article_id, title, action, EditionInfo.of(edition))


def unpick_article(
    runtime: Runtime, newsletter: str, reference: str, now: datetime, editor: str = COMMAND_LINE
) -> Picked | None:
    """Undo a pin or an exclusion on the next edition; None when the article had none."""
    settings = runtime.settings
    with reading(runtime.factory) as session:
        article = find_article(session, reference)
        article_id, title = article.id, article.title
        edition = draft(
            session, settings, newsletter, next_slot(session, settings, newsletter, now, grace(settings))
        )
        had = {a.id: action for a, action in picks(session, edition)}.get(article_id)
    if had is None:
        return None
    with _changing(runtime, newsletter, now, editor, "edition unpick", {"article": article_id}) as (
        session,
        edition,
    ):
        unpick(session, edition, session.get_one(Article, article_id))
    return Picked(article_id, title, had, EditionInfo.of(edition))


def move_article(
    runtime: Runtime, newsletter: str, reference: str, step: int, now: datetime, editor: str = COMMAND_LINE
) -> bool:
    """Move a pinned article up (-1) or down (+1) in its section; False when it cannot go further."""
    with reading(runtime.factory) as session:
        article_id = find_article(session, reference).id
    try:
        with _changing(
            runtime, newsletter, now, editor, "edition move", {"article": article_id, "step": step}
        ) as (session, edition):
            if not move(session, edition, session.get_one(Article, article_id), step):
                raise _Unchanged  # nothing to prepare again, nothing to log
    except _Unchanged:
        return False
    return True


def override(
    runtime: Runtime,
    newsletter: str,
    language: str,
    subject: str | None,
    preheader: str | None,
    now: datetime,
    editor: str = COMMAND_LINE,
) -> EditionInfo:
    """Set (or, with None or blank, drop) the subject and preheader of the next edition's
    readers of `language`: plain text, one line, used as written."""
    try:
        language = language_code(language)
    except ValueError as exc:
        raise InputError("language", str(exc)) from None
    texts = {
        key: printable(value)
        for key, value in (("subject", subject), ("preheader", preheader))
        if value and printable(value)
    }
    for key, value in texts.items():
        if len(value) > MAX_LINE:
            raise InputError(key, f"at most {MAX_LINE} characters, not {len(value)}")
    with _changing(runtime, newsletter, now, editor, "edition override", {"language": language, **texts}) as (
        _session,
        edition,
    ):
        found = overrides(edition)
        if texts:
            found[language] = texts
        else:
            found.pop(language, None)
        edition.overrides = json.dumps(found, ensure_ascii=False, sort_keys=True) if found else None
    return EditionInfo.of(edition)


def set_note(
    runtime: Runtime,
    newsletter: str,
    language: str | None,
    source: str | None,
    now: datetime,
    editor: str = COMMAND_LINE,
) -> EditionInfo:
    """Set the editor's note of the next edition for readers of `language` (the site's by
    default), or with None or blank text remove it (the standing note, if any, is theirs
    again). A prepared edition is prepared again; each change is in the audit log."""
    settings = runtime.settings
    try:
        language = language_code(language) if language else settings.site.language
    except ValueError as exc:
        raise InputError("language", str(exc)) from None
    offered = settings.languages()
    if language not in offered:
        raise InputError(
            "language", f"the site has no readers in {language!r} (it offers {', '.join(offered)})"
        )
    try:
        text = notes.cleaned(source or "")
    except notes.NoteProblem as exc:
        raise InputError("note", str(exc)) from None
    detail: dict[str, object] = {"language": language}
    detail.update({"note": text} if text else {"note": None, "removed": True})
    try:
        with _changing(runtime, newsletter, now, editor, "edition note", detail) as (session, edition):
            found = session.get(EditionNote, (edition.id, language))
            if (found.text if found is not None else None) == text:
                unchanged = EditionInfo.of(edition)
                raise _Unchanged  # nothing to prepare again, nothing to log
            if text is None:
                session.delete(found)
            elif found is None:
                session.add(EditionNote(edition_id=edition.id, language=language, text=text))
            else:
                found.text = text
    except _Unchanged:
        return unchanged
    return EditionInfo.of(edition)


def edition_notes(runtime: Runtime, newsletter: str, now: datetime) -> dict[str, str]:
    """The next edition's own notes by language."""
    settings = runtime.settings
    with reading(runtime.factory) as session:
        edition = draft(
            session, settings, newsletter, next_slot(session, settings, newsletter, now, grace(settings))
        )
        return edition_notes_of(session, edition)


def edition_picks(runtime: Runtime, newsletter: str, now: datetime) -> tuple[EditionInfo, list[Picked]]:
    """The next edition and its editors' picks."""
    settings = runtime.settings
    with reading(runtime.factory) as session:
        edition = draft(
            session, settings, newsletter, next_slot(session, settings, newsletter, now, grace(settings))
        )
        info = EditionInfo.of(edition)
        return info, [Picked(a.id, a.title, action, info) for a, action in picks(session, edition)]


@dataclass(frozen=True)
class Decision:
    """An editor's hold, release or approval, and where it leaves the edition."""

    edition: EditionInfo
    action: str
    waiting: str | None  # why it still may not go, if so


# What an editor may still decide on: an edition not yet sending.
UNDECIDED = (EditionStatus.DRAFT, EditionStatus.READY)


def decide(runtime: Runtime, newsletter: str, action: str, now: datetime, editor: str) -> Decision:
    """Hold, release or approve the next edition (`action`), recorded in the audit log. A hold
    keeps it from going until released; a release lets it go (at once when its slot has come,
    whatever the grace: `send` or the scheduled job's next refresh takes it); an approval is what
    `approval = "required"` waits for."""
    settings = runtime.settings
    approval = settings.newsletter(newsletter).approval
    with unit_of_work(runtime.factory) as session:
        edition = open_edition(
            session, settings, newsletter, next_slot(session, settings, newsletter, now, grace(settings))
        )
        session.refresh(edition, with_for_update=True)  # a sender starting waits, or is seen
        if edition.status not in UNDECIDED:
            raise EditionError(
                f"the {newsletter} edition of {edition.slot} is {edition.status}: too late to {action} it"
            )
        if action == "hold":
            edition.held_at, edition.held_by = now, editor
        elif action == "release":
            if not (edition.waiting(approval) or "").startswith("held"):
                raise EditionError(f"the {newsletter} edition of {edition.slot} is not held")
            edition.released_at = now
        elif action == "approve":
            edition.approved_at, edition.approved_by = now, editor
        else:
            raise InputError("action", f"hold, release or approve, not {action!r}")
        audit.record(session, f"edition {action}", now, editor, f"{newsletter} {edition.slot}")
        session.flush()
        return Decision(EditionInfo.of(edition), action, edition.waiting(approval))
