"""What readers do themselves, through the pages and the links in every email: join (double
opt-in), confirm, change what they receive, change their address, leave one newsletter or all,
come back. Nobody else can: every change needs a token signed for that reader, and no answer
tells a stranger whether an address is on the list."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial, wraps
from typing import ParamSpec, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from newsletter.editions.waves import follow
from newsletter.errors import InputError, NewsletterError
from newsletter.i18n import N_
from newsletter.metrics.counters import count_confirmation, count_signup
from newsletter.services.leaving import Leaving, Left
from newsletter.services.notices import send_notice
from newsletter.settings import Settings, language_code
from newsletter.store.categories import categories_for
from newsletter.store.db import reading, unit_of_work
from newsletter.store.models import Consent, Subscriber, SubscriberNewsletter, Suppression
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import ENDED, SubscriberStatus, SubscriptionStatus, SuppressionReason
from newsletter.subscribers.addresses import address_hash, normalize_email
from newsletter.subscribers.links import Links
from newsletter.subscribers.tokens import TokenError, read, unseal
from newsletter.subscribers.zones import reader_zone
from newsletter.text import printable

log = logging.getLogger("newsletter.readers")
# A reader is sent a confirmation or a fresh link at most this often, whatever is asked.
NOTICE_EVERY = timedelta(hours=1)
NAME_LENGTH = 300
RACE_TRIES = 3
Result = TypeVar("Result")
P = ParamSpec("P")
# How a notice is sent: now, or handed to a page to send after it has answered.
Later = Callable[[Callable[[], object]], None]


def at_once(notice: Callable[[], object]) -> None:
    notice()


MAX_PAUSE_WEEKS = 52


class ReaderError(NewsletterError):
    """A reader's request that cannot be done as asked (the page says why)."""


@dataclass(frozen=True)
class SignUp:
    """A sign-up form, as posted."""

    email: str
    newsletters: list[str]
    categories: list[str] = field(default_factory=list)
    language: str | None = None
    name: str | None = None
    source: str = "signup"  # the page it came from
    wording: str | None = None  # what the reader agreed to (default: the settings' wording)
    timezone: str | None = None  # an IANA name; None or empty: the site's


@dataclass(frozen=True)
class Subscription:
    newsletter: str
    title: str
    active: bool
    paused_until: datetime | None


@dataclass(frozen=True)
class ReaderView:
    """What a reader's own page shows them (they hold the token: it is theirs to see)."""

    subscriber_id: int
    email: str
    name: str | None
    language: str
    status: SubscriberStatus
    subscriptions: list[Subscription]
    categories: list[str]
    timezone: str | None = None  # None: the site's


@dataclass(frozen=True)
class Change:
    """A preferences form, as posted."""

    newsletters: list[str]
    categories: list[str]
    language: str
    pause_weeks: int | None = 0  # None: a pause running on is kept as it is
    new_email: str | None = None
    timezone: str | None = None  # None: kept as it is; empty: the site's


def _key(settings: Settings) -> bytes:
    return settings.signing_key()


def _links(settings: Settings) -> Links:
    return Links.from_settings(settings)


def _reader(session: Session, settings: Settings, purpose: str, token: str) -> tuple[Subscriber, str]:
    """The subscriber a token was signed for, and its scope; TokenError for anything else (a
    forgotten reader's token included: there is nobody left to change)."""
    signed = read(_key(settings), purpose, token)
    subscriber = session.get(Subscriber, signed.subscriber_id)
    if subscriber is None or subscriber.email.startswith("sha256:"):
        raise TokenError("this link is not valid any more")
    return subscriber, signed.scope


def _view(settings: Settings, subscriber: Subscriber) -> ReaderView:
    return ReaderView(
        subscriber.id,
        subscriber.email,
        subscriber.name,
        subscriber.language,
        SubscriberStatus(subscriber.status),
        [
            Subscription(
                n.newsletter,
                settings.newsletters[n.newsletter].title
                if n.newsletter in settings.newsletters
                else n.newsletter,
                n.status == SubscriptionStatus.ACTIVE,
                n.paused_until,
            )
            for n in sorted(subscriber.newsletters, key=lambda n: n.newsletter)
        ],
        [c.slug for c in subscriber.categories],
        subscriber.timezone,
    )


def _zone(value: str | None) -> str | None:
    """A reader's zone as posted, checked (InputError names the field, not the value)."""
    try:
        return reader_zone(value)
    except ValueError:
        raise InputError("timezone", "not a time zone the site knows") from None


def record_consent(
    session: Session, subscriber: Subscriber, action: str, source: str, now: datetime, **detail: object
) -> Consent:
    consent = Consent(
        subscriber_id=subscriber.id,
        at=now,
        action=action,
        source=source[:2000],
        wording=str(detail.pop("wording")) if "wording" in detail else None,
        detail=json.dumps(detail, sort_keys=True, default=str) if detail else None,
    )
    session.add(consent)
    return consent


def _checked_newsletters(settings: Settings, names: list[str]) -> list[str]:
    unknown = [name for name in names if name not in settings.newsletters]
    if unknown or not names:
        raise InputError("newsletters", f"choose among {', '.join(sorted(settings.newsletters))}")
    return list(dict.fromkeys(names))


def _suppression(session: Session, email: str, key: bytes) -> Suppression | None:
    return session.scalars(
        select(Suppression).where(Suppression.email.in_([email, address_hash(email, key)]))
    ).first()


def _may_notify(subscriber: Subscriber, now: datetime) -> bool:
    """At most one notice an hour per reader, so the form cannot be used to flood a mailbox."""
    last = subscriber.confirm_sent_at
    if last is not None and now - last < NOTICE_EVERY:
        return False
    subscriber.confirm_sent_at = now
    return True


def sign_up(runtime: Runtime, request: SignUp, now: datetime, later: Later = at_once) -> str:
    """Ask for a subscription: a new or unconfirmed reader gets a confirmation link (double
    opt-in) for the choices, which only following it applies; an active one a link to
    their settings; a suppressed address (left everything, bounced, complained, forgotten)
    nothing. A stranger can thus change nobody's settings. The notice goes through `later` (a
    page sends it after answering, so the time taken tells nothing). The caller answers the
    same whatever happened; the return value ("confirm", "already", "quiet", "throttled") is
    for logs and tests."""
    settings = runtime.settings
    email = normalize_email(request.email)
    newsletters = _checked_newsletters(settings, request.newsletters)
    language = language_code(request.language or settings.site.language)
    zone = _zone(request.timezone)
    name = " ".join(printable(request.name or "").split())[:NAME_LENGTH] or None
    wording = request.wording or settings.readers.consent_wording

    def attempt(session: Session) -> tuple[str, Callable[[], object] | None]:
        categories = categories_for(session, settings, request.categories)
        subscriber = session.scalars(select(Subscriber).where(Subscriber.email == email)).one_or_none()
        if _suppression(session, email, settings.signing_key()) is not None:
            return "quiet", None  # never mailed again, whoever asks
        if subscriber is not None and subscriber.status in ENDED:
            return "quiet", None
        if subscriber is not None and not _may_notify(subscriber, now):
            return "throttled", None  # asked again within the hour: nothing is sent
        links = _links(settings)
        if subscriber is not None and subscriber.status == SubscriberStatus.ACTIVE:
            link = links.preferences(subscriber.id)  # changing an active reader's settings needs their link
            subscribed = [
                n.newsletter for n in subscriber.newsletters if n.status == SubscriptionStatus.ACTIVE
            ]
            notice = partial(send_notice, runtime, "already", email, subscriber.language, link, subscribed)
            return "already", notice
        if subscriber is None:  # a new address: nothing of anyone's is changed by recording it
            # No name yet: whoever asked, only the confirmation applies the one asked for.
            subscriber = Subscriber(email=email, created_at=now, status=SubscriberStatus.PENDING)
            subscriber.language, subscriber.categories = language, categories
            subscriber.timezone = zone
            set_newsletters(subscriber, newsletters, now, "signup", reactivate=True)
            session.add(subscriber)
            session.flush()
        subscriber.confirm_sent_at = now
        choices = Choices(newsletters, [c.slug for c in categories], language, name, zone)
        asked = record_consent(
            session, subscriber, "subscribe", request.source, now, wording=wording, **choices.detail()
        )
        session.flush()
        # The link names the consent record that keeps the choices: nothing in it is readable.
        link = links.confirm(subscriber.id, str(asked.id))
        return "confirm", partial(send_notice, runtime, "confirm", email, language, link, newsletters)

    kind, notice = _retried(runtime, attempt)
    count_signup(kind)
    if notice is not None:
        later(notice)
    return kind


@dataclass(frozen=True)
class Choices:
    """What a sign-up asked for, kept with its consent record and applied only when the
    confirmation link is followed."""

    newsletters: list[str]
    categories: list[str]
    language: str
    name: str | None
    timezone: str | None = None

    def detail(self) -> dict[str, object]:
        """The choices as the sign-up's consent record keeps them."""
        return {
            "newsletters": self.newsletters,
            "categories": self.categories,
            "language": self.language,
            "name": self.name,
            "timezone": self.timezone,
        }

    @classmethod
    def asked(cls, session: Session, subscriber: Subscriber, scope: str) -> Choices | None:
        """What the sign-up behind a confirmation link asked for: its consent record's (the link
        names it), or, in a link mailed before they were kept there, what the link itself
        carries (a JSON list); None when the link carries nothing (the reader's record holds it)."""
        if not scope.isdigit():
            return cls._carried(scope) if scope else None
        consent = session.get(Consent, int(scope))
        if consent is None or consent.subscriber_id != subscriber.id or consent.action != "subscribe":
            return None
        try:
            kept = json.loads(consent.detail or "")
            zone = kept.get("timezone")  # absent from a sign-up made before readers had zones
            return cls(
                list(kept["newsletters"]),
                list(kept["categories"]),
                str(kept["language"]),
                kept["name"],
                reader_zone(zone) if isinstance(zone, str) else None,
            )
        except (ValueError, TypeError, KeyError):
            return None

    @classmethod
    def _carried(cls, scope: str) -> Choices | None:
        try:
            newsletters, categories, language, name = json.loads(scope)
            return cls(list(newsletters), list(categories), str(language), str(name) or None)
        except (ValueError, TypeError):
            return None


def _on_race(function: Callable[P, Result]) -> Callable[P, Result]:
    """A whole service call tried again when it lost a race for a unique row: it reads the
    reader afresh, so the second try sees what the other request made."""

    @wraps(function)
    def tried(*args: P.args, **kwargs: P.kwargs) -> Result:
        for tries in range(1, RACE_TRIES + 1):
            try:
                return function(*args, **kwargs)
            except (IntegrityError, StaleDataError):
                if tries == RACE_TRIES:
                    raise
                log.info("a concurrent change to the same reader: trying again")
        raise AssertionError("unreachable")

    return tried


def _retried(runtime: Runtime, attempt: Callable[[Session], Result]) -> Result:
    """One unit of work, tried again when a request for the same reader won a race for a
    unique row (a double click, two pages at once): the second try sees what the first made."""
    for tries in range(1, RACE_TRIES + 1):
        try:
            with unit_of_work(runtime.factory) as session:
                return attempt(session)
        except (IntegrityError, StaleDataError):
            if tries == RACE_TRIES:
                raise
            log.info("a concurrent change to the same reader: trying again")
    raise AssertionError("unreachable")


def set_newsletters(
    subscriber: Subscriber, wanted: list[str], now: datetime, source: str, reactivate: bool
) -> None:
    """The reader's newsletters as chosen: each chosen one active (a left one again only when the
    reader asks, `reactivate`), each other one left, with the time and how."""
    have = {n.newsletter: n for n in subscriber.newsletters}
    for name in wanted:
        current = have.get(name)
        if current is None:
            subscriber.newsletters.append(
                SubscriberNewsletter(newsletter=name, subscribed_at=now, source=source)
            )
        elif current.status != SubscriptionStatus.ACTIVE and reactivate:
            current.status = SubscriptionStatus.ACTIVE
            current.subscribed_at, current.unsubscribed_at, current.source = now, None, source
    for name, current in have.items():
        if name not in wanted and current.status == SubscriptionStatus.ACTIVE:
            current.status = SubscriptionStatus.UNSUBSCRIBED
            current.unsubscribed_at, current.source = now, source


@_on_race
def confirm(runtime: Runtime, token: str, now: datetime) -> ReaderView:
    """The double opt-in's link: the reader is active from now on, with the choices of the
    sign-up it was sent for and nothing another sign-up of the address asked (an address that
    had left everything is taken off the suppression list: this is the reader asking)."""
    settings = runtime.settings
    activated = False
    with unit_of_work(runtime.factory) as session:
        subscriber, scope = _reader(session, settings, "confirm", token)
        if subscriber.status in (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED):
            raise ReaderError(N_("This address cannot be subscribed."))
        choices = Choices.asked(session, subscriber, scope)
        if choices is not None and subscriber.status != SubscriberStatus.ACTIVE:
            # The sign-up's choices, all of them: no name another sign-up asked for survives.
            subscriber.name = choices.name
            subscriber.language = choices.language
            subscriber.timezone = choices.timezone
            subscriber.categories = categories_for(session, settings, choices.categories)
            wanted = [n for n in choices.newsletters if n in settings.newsletters]
            set_newsletters(subscriber, wanted, now, "signup", reactivate=True)
        if subscriber.status != SubscriberStatus.ACTIVE:
            subscriber.status = SubscriberStatus.ACTIVE
            subscriber.confirmed_at = now
            subscriber.unsubscribed_at = None
            session.execute(
                delete(Suppression).where(
                    Suppression.email == subscriber.email, Suppression.reason == SuppressionReason.UNSUBSCRIBE
                )
            )
            record_consent(session, subscriber, "confirm", "confirmation link", now)
            activated = True
        view = _view(settings, subscriber)
    if activated:  # counted once written
        count_confirmation()
    return view


def language_of(runtime: Runtime, purpose: str, token: str) -> str:
    """The language of the reader a token of any purpose names, for the page it opens
    (TokenError if it names nobody)."""
    with reading(runtime.factory) as session:
        subscriber, _scope = _reader(session, runtime.settings, purpose, token)
        return subscriber.language


def asked_for(runtime: Runtime, token: str) -> Choices | None:
    """What the sign-up behind a confirmation link asked for, shown before it is confirmed: a
    link another sign-up of the address caused (a stranger's, within the hour the owner's own is
    not mailed) says whose choices it carries."""
    with reading(runtime.factory) as session:
        subscriber, scope = _reader(session, runtime.settings, "confirm", token)
        return Choices.asked(session, subscriber, scope)


def preferences(runtime: Runtime, token: str) -> ReaderView:
    """What the reader receives, for their settings page."""
    with reading(runtime.factory) as session:
        subscriber, _scope = _reader(session, runtime.settings, "preferences", token)
        return _view(runtime.settings, subscriber)


def change(
    runtime: Runtime, token: str, wanted: Change, now: datetime, later: Later = at_once
) -> tuple[ReaderView, bool]:
    """Save the reader's settings; a new address is only asked for (a link goes to it, at most
    one an hour per reader, whatever address is asked), and True says so."""
    settings = runtime.settings
    newsletters = [n for n in wanted.newsletters if n in settings.newsletters]
    language = language_code(wanted.language)
    if wanted.pause_weeks is not None and not 0 <= wanted.pause_weeks <= MAX_PAUSE_WEEKS:
        raise InputError("pause", f"a pause is 0 to {MAX_PAUSE_WEEKS} weeks")
    new_email = normalize_email(wanted.new_email) if wanted.new_email else None
    zone = _zone(wanted.timezone)

    def attempt(session: Session) -> tuple[ReaderView, str | None]:
        subscriber, _scope = _reader(session, settings, "preferences", token)
        asked = new_email is not None and new_email != subscriber.email
        if asked and not _may_notify(subscriber, now):
            raise InputError("new_email", "a link went to a new address less than an hour ago")
        subscriber.language = language
        if wanted.timezone is not None and zone != subscriber.timezone:
            subscriber.timezone = zone
            session.flush()
            follow(session, settings, subscriber.id, now)
        subscriber.categories = categories_for(session, settings, wanted.categories)
        set_newsletters(subscriber, newsletters, now, "preferences", reactivate=True)
        if wanted.pause_weeks is not None:
            paused = now + timedelta(weeks=wanted.pause_weeks) if wanted.pause_weeks else None
            for subscription in subscriber.newsletters:
                subscription.paused_until = paused
        record_consent(
            session,
            subscriber,
            "change",
            "preferences page",
            now,
            newsletters=newsletters,
            categories=wanted.categories,
            language=language,
            timezone=subscriber.timezone,
            pause_weeks=wanted.pause_weeks,
        )
        session.flush()
        link = _links(settings).address(subscriber.id, new_email) if asked and new_email else None
        return _view(settings, subscriber), link

    view, link = _retried(runtime, attempt)
    if link and new_email:
        later(partial(send_notice, runtime, "address", new_email, language, link, []))
    return view, link is not None


@_on_race
def confirm_address(runtime: Runtime, token: str, now: datetime) -> ReaderView:
    """The link sent to a new address: the reader's mail goes there from now on."""
    settings = runtime.settings
    with unit_of_work(runtime.factory) as session:
        subscriber, scope = _reader(session, settings, "address", token)
        # A link mailed before addresses were sealed carries it plainly; no sealed one has an @.
        new_email = normalize_email(scope if "@" in scope else unseal(_key(settings), "address", scope))
        taken = session.scalars(select(Subscriber).where(Subscriber.email == new_email)).one_or_none()
        if taken is not None and taken.id != subscriber.id:
            raise ReaderError(N_("This address already has its own subscription."))
        if _suppression(session, new_email, settings.signing_key()) is not None:
            raise ReaderError(N_("This address cannot be used."))
        record_consent(session, subscriber, "change", "address confirmation link", now, email="changed")
        subscriber.email = new_email
        return _view(settings, subscriber)


def fresh_link(runtime: Runtime, email: str, now: datetime, later: Later = at_once) -> None:
    """An expired settings link's page asks for a new one: it goes to the address if it is a
    reader's, at most once an hour; nothing tells the asker which."""
    settings = runtime.settings
    try:
        mailbox = normalize_email(email)
    except ValueError:
        return
    with unit_of_work(runtime.factory) as session:
        subscriber = session.scalars(select(Subscriber).where(Subscriber.email == mailbox)).one_or_none()
        if subscriber is None or subscriber.status in ENDED or not _may_notify(subscriber, now):
            return
        link, language = _links(settings).preferences(subscriber.id), subscriber.language
    later(partial(send_notice, runtime, "preferences", mailbox, language, link, []))


def unsubscribe(runtime: Runtime, token: str, source: str, now: datetime) -> Left:
    """Leave the newsletter the token names, at once; again is harmless (the pages share one
    `Leaving` instead: what arrives together is written together)."""
    return Leaving(runtime).leave_here(token, source, now)


@_on_race
def leave_everything(runtime: Runtime, token: str, source: str, now: datetime) -> Left:
    """Leave every newsletter: the address goes on the suppression list, so no import and no
    sign-up by someone else brings it back (the reader's own confirmation can)."""
    settings = runtime.settings
    with unit_of_work(runtime.factory) as session:
        subscriber, _newsletter = _reader(session, settings, "unsubscribe", token)
        set_newsletters(subscriber, [], now, source, reactivate=False)
        subscriber.status, subscriber.unsubscribed_at = SubscriberStatus.UNSUBSCRIBED, now
        if _suppression(session, subscriber.email, settings.signing_key()) is None:
            session.add(
                Suppression(
                    email=subscriber.email,
                    reason=SuppressionReason.UNSUBSCRIBE,
                    detail=source,
                    created_at=now,
                )
            )
        record_consent(session, subscriber, "unsubscribe", source, now, newsletter="all")
        return Left("all", "all newsletters", subscriber.email, subscriber.language)


@_on_race
def resubscribe(runtime: Runtime, token: str, now: datetime) -> Left:
    """Come back to the newsletter just left (from the page that confirmed leaving)."""
    settings = runtime.settings
    with unit_of_work(runtime.factory) as session:
        subscriber, newsletter = _reader(session, settings, "unsubscribe", token)
        if subscriber.status in (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED):
            raise ReaderError(N_("This address cannot be subscribed."))
        if newsletter in settings.newsletters:
            wanted = [n.newsletter for n in subscriber.newsletters if n.status == SubscriptionStatus.ACTIVE]
            set_newsletters(subscriber, [*wanted, newsletter], now, "page", reactivate=True)
        if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
            subscriber.status, subscriber.unsubscribed_at = SubscriberStatus.ACTIVE, None
            session.execute(
                delete(Suppression).where(
                    Suppression.email == subscriber.email, Suppression.reason == SuppressionReason.UNSUBSCRIBE
                )
            )
        record_consent(session, subscriber, "resubscribe", "unsubscribe page", now, newsletter=newsletter)
        title = settings.newsletters[newsletter].title if newsletter in settings.newsletters else newsletter
        return Left(newsletter, title, subscriber.email, subscriber.language)
