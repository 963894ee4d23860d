"""Breaking-news alerts: one article opened as an edition of an alert newsletter, prepared and
handed to the provider at once (or when its quiet hours end), by the editors' button, `newsletter
alert`, or a fetch storing an article in a trigger category. The CLI, the pages and the scheduler
call these."""

from __future__ import annotations

import logging
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.editions.alert import (
    AlertMessages,
    alert_slot,
    prepare_alert,
    quiet_until,
    subject_override,
    the_original,
)
from newsletter.editions.checks import Check
from newsletter.editions.edition import EditionError, EditionHeld, EditionInfo
from newsletter.editions.slots import wall_clock
from newsletter.errors import InputError, NewsletterError
from newsletter.sending.pace import Pace
from newsletter.sending.providers import Provider, make_provider
from newsletter.sending.report import SendReport
from newsletter.sending.sender import Sender
from newsletter.services import audit
from newsletter.services.sending import syndicate
from newsletter.settings import Settings
from newsletter.store import ledger
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Article, Category, Edition, Variant, article_categories
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import DeliveryStatus, EditionStatus
from newsletter.text import printable, slugify

log = logging.getLogger("newsletter.alerts")
# An editor's subject: what fits a subject line (Gmail shows about 70 characters).
MAX_SUBJECT = 300


class NotAnAlertNewsletter(EditionError):
    """The newsletter named is a digest: alerts go to a newsletter of kind "alert"."""


@dataclass(frozen=True)
class Opened:
    """An alert as opening it left it: new, or the one the article already had."""

    edition: EditionInfo
    article_id: int
    title: str
    created: bool
    not_before: datetime | None  # held by the quiet hours until then


@dataclass
class Rehearsal:
    """What an alert would do, found in a transaction rolled back: who gets it, who is skipped
    or suppressed, and each language's message as sent."""

    newsletter: str
    article_id: int
    title: str
    counts: dict[DeliveryStatus, int]
    # (language, subject, html, text) as a reader gets it, links to nobody's account
    messages: list[tuple[str, str, str, str]]
    already: EditionInfo | None  # the article was alerted (or opened) before: nothing new goes
    not_before: datetime | None
    # The digests' checks that need no network: images' text, Gmail's size, List-Unsubscribe.
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def alert_newsletter(settings: Settings, newsletter: str | None) -> str:
    """The alert newsletter named, or the site's only one."""
    alerts = settings.alerts()
    if newsletter is None:
        if len(alerts) == 1:
            return alerts[0]
        raise NotAnAlertNewsletter(
            "name the alert newsletter (-n): " + (", ".join(alerts) if alerts else 'none has kind = "alert"')
        )
    if not settings.newsletter(newsletter).is_alert:
        raise NotAnAlertNewsletter(
            f"{newsletter} is a digest, not an alert newsletter "
            f"(alert newsletters: {', '.join(alerts) or 'none'})"
        )
    return newsletter


def check_subject(subject: str | None) -> None:
    """An editor's subject goes into a header as written: refused when it could not."""
    if subject is None:
        return
    if len(subject) > MAX_SUBJECT:
        raise InputError("--subject", f"at most {MAX_SUBJECT} characters ({len(subject)} given)")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") and c not in "\t\n" for c in subject):
        raise InputError("--subject", "it holds a control character")


def find_article(session: Session, reference: str) -> Article:
    """An article by its number (as `editions` and the pages show it), its link or its key."""
    reference = reference.strip()
    found = None
    if reference.isdigit() and len(reference) < 12:
        found = session.get(Article, int(reference))
    if found is None and reference:
        found = session.scalars(
            select(Article)
            .where(or_(Article.url == reference, Article.key == reference))
            .order_by(Article.id)
        ).first()
    if found is None:
        raise EditionError(
            f"no article {printable(reference[:200])!r} in the store (its number, link or guid)"
        )
    return found


def open_alert(
    session: Session,
    settings: Settings,
    newsletter: str,
    article: Article,
    now: datetime,
    subject: str | None = None,
    urgent: bool = False,
) -> tuple[Edition, bool]:
    """The alert of this article (its original, whichever translation was named) for the
    newsletter: created now, or the one it has. Safe when several processes race to create it."""
    original = the_original(session, article)
    existing = _existing(session, newsletter, original.id)
    if existing is not None:
        return existing, False
    config = settings.newsletter(newsletter)
    edition = Edition(
        newsletter=newsletter,
        slot=alert_slot(now, settings.zone, original.id),
        window_start=now,
        window_end=now,
        status=EditionStatus.DRAFT,
        article_id=original.id,
        not_before=None if urgent else quiet_until(config.quiet_hours, settings.zone, now),
        overrides=subject_override(subject),
    )
    try:
        with session.begin_nested():
            session.add(edition)
    except IntegrityError:
        found = _existing(session, newsletter, original.id)
        if found is None:
            raise
        return found, False
    return edition, True


def _existing(session: Session, newsletter: str, article_id: int) -> Edition | None:
    return session.scalars(
        select(Edition).where(Edition.newsletter == newsletter, Edition.article_id == article_id)
    ).one_or_none()


def open_by_editor(
    runtime: Runtime,
    newsletter: str | None,
    reference: str,
    now: datetime,
    subject: str | None = None,
    urgent: bool = False,
    editor: str | None = None,
    client: str | None = "command line",
) -> Opened:
    """An editor's alert opened (once per article), in the audit log. Pressed again before it
    was prepared (held by the quiet hours), "urgent" releases it and a subject replaces the
    first: the editor's second word on the same story, not a second alert."""
    settings = runtime.settings
    name = alert_newsletter(settings, newsletter)
    check_subject(subject)
    with unit_of_work(runtime.factory) as session:
        article = find_article(session, reference)
        edition, created = open_alert(session, settings, name, article, now, subject, urgent)
        changed = False
        if not created and edition.status == EditionStatus.DRAFT:
            session.refresh(edition, with_for_update=True)  # a sender preparing it goes first
            if edition.status == EditionStatus.DRAFT:
                if urgent and edition.not_before is not None:
                    edition.not_before, changed = None, True
                if subject is not None:
                    edition.overrides, changed = subject_override(subject), True
        if created or changed:
            detail = {"article": edition.article_id, "subject": subject, "urgent": urgent}
            audit.record(session, "alert", now, editor, f"{name} {edition.slot}", detail, client)
        title = session.get_one(Article, edition.article_id).title if edition.article_id else article.title
        return Opened(
            EditionInfo.of(edition), edition.article_id or article.id, title, created, edition.not_before
        )


def send_alert(
    runtime: Runtime,
    edition_id: int,
    now: datetime,
    provider: Provider | None = None,
    stop: threading.Event | None = None,
) -> SendReport:
    """Prepare the alert (once) and hand it to the provider now, or resume it; refused while
    its quiet hours hold it (the scheduled job sends it when they end)."""
    from newsletter.editions.compose import Composer

    settings = runtime.settings
    settings.signing_key()  # refuse a missing or placeholder key before any work
    with unit_of_work(runtime.factory) as session:
        edition = session.get(Edition, edition_id, with_for_update=True)
        if edition is None or edition.article_id is None:
            raise EditionError(f"no alert {edition_id}")
        if edition.status == EditionStatus.DRAFT:
            if edition.not_before is not None and now < edition.not_before:
                raise EditionHeld(
                    f"the {edition.newsletter} alert waits for the end of the quiet hours "
                    f"({wall_clock(edition.not_before, settings.zone)}); --urgent sends one at once"
                )
            prepared = prepare_alert(session, settings, edition, Composer(settings.templates_path()), now)
            log.info(
                "the %s alert of article %d prepared: %d recipients, %d skipped, %d suppressed",
                edition.newsletter,
                edition.article_id,
                prepared.recipients,
                prepared.skipped,
                prepared.suppressed,
            )
    with unit_of_work(runtime.factory) as session:
        ledger.analyze(session)
    own = provider is None
    provider = provider or make_provider(settings, stop)
    try:
        report = Sender(
            settings, runtime.factory, provider, Pace.from_settings(settings.sending), stop=stop
        ).send(edition_id)
    finally:
        if own:
            provider.close()
    syndicate(runtime, edition_id, report.status, now)  # archived and in the feeds, once sent
    return report


def rehearse(
    runtime: Runtime,
    newsletter: str | None,
    reference: str,
    now: datetime,
    subject: str | None = None,
    urgent: bool = False,
) -> Rehearsal:
    """What the alert would do now, nothing written (the transaction is rolled back)."""
    from newsletter.editions import checks
    from newsletter.editions.compose import Composed, Composer, Markers
    from newsletter.editions.preview import fill, reader_for
    from newsletter.services.checks import variant_copies

    settings = runtime.settings
    name = alert_newsletter(settings, newsletter)
    check_subject(subject)
    with runtime.factory() as session, session.begin() as transaction:
        try:
            article = find_article(session, reference)
            edition, created = open_alert(session, settings, name, article, now, subject, urgent)
            already = None if created else EditionInfo.of(edition)
            not_before = edition.not_before if edition.status == EditionStatus.DRAFT else None
            composer = Composer(settings.templates_path())
            warnings: list[str] = []
            if edition.status == EditionStatus.DRAFT:
                warnings = prepare_alert(session, settings, edition, composer, now).warnings
            counts = ledger.counts(session, edition.id)
            rows = session.scalars(
                select(Variant).where(Variant.edition_id == edition.id).order_by(Variant.language)
            ).all()
            if not rows:  # nobody to get it: the message all the same, in the site's language
                composed = (
                    AlertMessages(session, settings, edition, composer).build(settings.site.language).composed
                )
                rows = [
                    Variant(
                        language=settings.site.language,
                        subject=composed.subject,
                        html=composed.html,
                        text=composed.text,
                        marker=composed.markers.nonce,
                    )
                ]
            shown = []
            for row in rows:
                stored = Composed(row.subject, row.preheader, row.html, row.text, Markers(row.marker))
                html, text_part = fill(stored, reader_for(settings, None, name, row.language))
                shown.append((row.language, row.subject, html, text_part))
            title = (
                session.get_one(Article, edition.article_id).title if edition.article_id else article.title
            )
            article_id = edition.article_id or article.id
            copies, _messages = variant_copies(session, settings, edition)
            pictured = int(session.get_one(Article, article_id).image_url is not None)
            checked = [checks.images(copies, pictured), checks.size(copies), checks.unsubscribe(copies)]
        finally:
            transaction.rollback()
    return Rehearsal(
        name,
        article_id,
        title,
        counts,
        shown,
        already,
        not_before,
        checked,
        warnings,
    )


def trigger(runtime: Runtime, now: datetime) -> list[int]:
    """Alerts opened for articles the feeds stored in an alert newsletter's trigger categories,
    published at most `trigger_max_age_minutes` before `now`: each article once (an editor's
    alert of it, or another scheduler's, is the one it has). The new alerts' ids."""
    settings = runtime.settings
    opened: list[int] = []
    for name in settings.alerts():
        config = settings.newsletter(name)
        if not config.trigger_categories:
            continue
        slugs = sorted({slugify(category) for category in config.trigger_categories})
        since = now - timedelta(minutes=config.trigger_max_age_minutes)
        alerted = select(Edition.id).where(Edition.newsletter == name, Edition.article_id == Article.id)
        with unit_of_work(runtime.factory) as session:
            found = session.execute(
                select(Article, Category.slug)
                .join(article_categories, article_categories.c.article_id == Article.id)
                .join(Category, Category.id == article_categories.c.category_id)
                .where(
                    Category.slug.in_(slugs),
                    Article.published_at >= since,
                    Article.published_at <= now,
                    ~alerted.exists(),
                )
                .order_by(Article.published_at, Article.id)
            ).all()
            for article, slug in found:
                edition, created = open_alert(session, settings, name, article, now)
                if created:
                    session.flush()
                    opened.append(edition.id)
                    detail = {"article": edition.article_id, "trigger": slug}
                    audit.record(
                        session, "alert", now, None, f"{name} {edition.slot}", detail, "feed trigger"
                    )
                    log.info("article %d (%s) opened a %s alert", edition.article_id, slug, name)
    return opened


def due(runtime: Runtime, now: datetime) -> list[int]:
    """Alerts to send now: opened and not held by quiet hours past `now`, or begun and not done."""
    names = runtime.settings.alerts()
    if not names:
        return []
    with reading(runtime.factory) as session:
        return list(
            session.scalars(
                select(Edition.id)
                .where(
                    Edition.newsletter.in_(names),
                    Edition.article_id.is_not(None),
                    (
                        (Edition.status == EditionStatus.DRAFT)
                        & (Edition.not_before.is_(None) | (Edition.not_before <= now))
                    )
                    | Edition.status.in_((EditionStatus.READY, EditionStatus.SENDING)),
                    Edition.window_start >= now - timedelta(days=1),  # a stale alert is news no more
                )
                .order_by(Edition.id)
            )
        )


def send_due(runtime: Runtime, now: datetime, stop: threading.Event | None = None) -> list[SendReport]:
    """The scheduled job's part: every alert due is sent (or resumed), one after the other."""
    reports = []
    for edition_id in due(runtime, now):
        if stop is not None and stop.is_set():
            break
        try:
            reports.append(send_alert(runtime, edition_id, now, stop=stop))
        except NewsletterError as exc:  # one alert's trouble (a store hiccup) stops no other
            log.error("alert %d: %s", edition_id, exc)
    return reports


@dataclass(frozen=True)
class Candidate:
    """An article an editor may alert, as the alerts page lists it."""

    id: int
    title: str
    language: str
    published_at: datetime
    alerted: bool  # by this newsletter already


def candidates(runtime: Runtime, newsletter: str, limit: int = 30) -> list[Candidate]:
    """The newest articles in the site's language (else any), newest first, each marked when the
    newsletter alerted it already."""
    language = runtime.settings.site.language
    with reading(runtime.factory) as session:
        alerted = set(session.scalars(select(Edition.article_id).where(Edition.newsletter == newsletter)))
        rows = session.scalars(
            select(Article)
            .order_by((Article.language == language).desc(), Article.published_at.desc())
            .limit(limit)
        ).all()
        return [
            Candidate(
                a.id,
                a.title,
                a.language,
                a.published_at,
                a.id in alerted or _original_id(session, a) in alerted,
            )
            for a in rows
        ]


def _original_id(session: Session, article: Article) -> int:
    return the_original(session, article).id


@dataclass(frozen=True)
class PastAlert:
    edition: EditionInfo
    not_before: datetime | None
    counts: dict[DeliveryStatus, int]


def past(runtime: Runtime, newsletter: str, limit: int = 20) -> list[PastAlert]:
    """The newsletter's alerts, newest first, with their deliveries per status."""
    with reading(runtime.factory) as session:
        found = session.scalars(
            select(Edition)
            .where(Edition.newsletter == newsletter, Edition.article_id.is_not(None))
            .order_by(Edition.id.desc())
            .limit(limit)
        ).all()
        tallies = ledger.tallies(session, [e.id for e in found])
        return [PastAlert(EditionInfo.of(e), e.not_before, tallies.get(e.id, {})) for e in found]


def send_in_background(runtime: Runtime, edition_id: int, now: datetime) -> threading.Thread:
    """The alert sent by a thread of the caller's process (an editor's page answers at once and
    shows its progress); a crash of the process leaves it to the scheduled job, which resumes it."""

    def send() -> None:
        try:
            report = send_alert(runtime, edition_id, now)
            log.info("alert %d: %s, %d sent", edition_id, report.status, report.sent)
        except Exception:  # the page has answered: the log is where this goes
            log.exception("alert %d could not be sent", edition_id)

    thread = threading.Thread(target=send, name=f"alert-{edition_id}", daemon=True)
    thread.start()
    return thread
