"""What readers do themselves, through the services the pages call: the double opt-in, one
newsletter left and the other kept, everything left and nobody bringing it back, an address
changed, a reader forgotten."""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from newsletter.errors import NewsletterError
from newsletter.services import readers, subscribers
from newsletter.services.readers import Change, SignUp
from newsletter.store.models import Consent, Subscriber, Suppression
from newsletter.store.statuses import SubscriberStatus
from newsletter.subscribers.tokens import TokenError
from tests.conftest import SAMPLE, SECTIONS

pytestmark = pytest.mark.both_databases

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def site(make_runtime):
    return make_runtime(
        feeds=[{"url": str(SAMPLE / "site.xml")}],
        site={"categories": SECTIONS, "languages": ["de"]},  # German words around English articles
        timezone="Europe/Brussels",
    )


def notices(runtime) -> list[email.message.EmailMessage]:
    folder = runtime.settings.outbox_dir / "outside-ledger"
    paths = sorted(folder.glob("*.eml")) if folder.is_dir() else []
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in paths]


def link(message: email.message.EmailMessage, kind: str) -> str:
    text = message.get_body(("plain",)).get_content()
    return re.search(rf"/{kind}/(\S+)", text).group(1)


def reader(runtime, address: str) -> Subscriber:
    with runtime.factory() as session:
        return session.scalars(select(Subscriber).where(Subscriber.email == address)).one()


def test_the_double_opt_in(site) -> None:
    request = SignUp(
        "Ann@Example.org", ["weekly", "daily"], ["Politics"], "de", "Ann", "https://site.example/join"
    )
    assert readers.sign_up(site, request, NOW) == "confirm"
    assert reader(site, "ann@example.org").status == SubscriberStatus.PENDING  # no digest yet
    [message] = notices(site)
    assert (
        message["To"] == "ann@example.org" and "Wochenüberblick" in message.get_body(("plain",)).get_content()
    )
    assert readers.sign_up(site, request, NOW + timedelta(minutes=5)) == "throttled"  # at most once an hour
    assert len(notices(site)) == 1
    view = readers.confirm(site, link(message, "confirm"), NOW)
    assert view.status == SubscriberStatus.ACTIVE and [s.newsletter for s in view.subscriptions] == [
        "daily",
        "weekly",
    ]
    with site.factory() as session:
        consents = session.scalars(select(Consent).order_by(Consent.id)).all()
    assert [c.action for c in consents] == ["subscribe", "confirm"]
    assert consents[0].source == "https://site.example/join" and "I agree" in consents[0].wording
    assert readers.sign_up(site, request, NOW + timedelta(hours=2)) == "already"  # a link to the settings


def test_leaving_one_newsletter_keeps_the_other_and_leaving_all_sticks(site) -> None:
    subscribers.add(site, "ann@example.org", NOW, newsletters=["weekly", "daily"])
    key = site.settings.signing_key()
    from newsletter.subscribers.tokens import sign

    weekly = sign(key, "unsubscribe", reader(site, "ann@example.org").id, scope="weekly")
    left = readers.unsubscribe(site, weekly, "one-click", NOW)
    assert left.newsletter == "weekly"
    row = subscribers.readers(site)[0]
    assert row.newsletters == ["daily"] and row.left == ["weekly"] and row.status == SubscriberStatus.ACTIVE
    readers.unsubscribe(site, weekly, "one-click", NOW)  # again: harmless
    readers.leave_everything(site, weekly, "page", NOW)
    row = subscribers.readers(site)[0]
    assert row.status == SubscriberStatus.UNSUBSCRIBED and row.newsletters == []
    # Nobody else brings it back: not an import, not someone's sign-up, not the operator.
    csv = site.settings.outbox_dir.parent / "again.csv"
    csv.write_text("email,newsletters,status\nann@example.org,weekly,active\n")
    report = subscribers.import_file(site, csv, confirmed=True)
    assert report.kept == 1 and subscribers.readers(site)[0].status == SubscriberStatus.UNSUBSCRIBED
    with pytest.raises(NewsletterError, match=r"suppression list|left"):
        subscribers.add(site, "ann@example.org", NOW)
    # The reader can: their resubscribe link.
    readers.resubscribe(site, weekly, NOW)
    row = subscribers.readers(site)[0]
    assert row.status == SubscriberStatus.ACTIVE and row.newsletters == ["weekly"]


def test_a_forged_or_foreign_token_changes_nothing(site) -> None:
    subscribers.add(site, "ann@example.org", NOW)
    from newsletter.subscribers.tokens import sign

    ann = reader(site, "ann@example.org").id
    for token in (
        "",
        "x",
        sign(b"another-key-0123456789", "unsubscribe", ann, scope="weekly"),
        sign(site.settings.signing_key(), "preferences", ann),
    ):
        with pytest.raises(TokenError):
            readers.unsubscribe(site, token, "one-click", NOW)
    assert subscribers.readers(site)[0].newsletters == ["weekly"]


def test_preferences_and_a_new_address(site) -> None:
    subscribers.add(site, "ann@example.org", NOW, newsletters=["weekly"])
    from newsletter.subscribers.tokens import sign

    token = sign(site.settings.signing_key(), "preferences", reader(site, "ann@example.org").id)
    view, asked = readers.change(
        site, token, Change(["daily"], ["Health"], "de", pause_weeks=2, new_email="ann@new.example"), NOW
    )
    assert asked and view.email == "ann@example.org"  # not before the new address confirms
    assert [(s.newsletter, s.active) for s in view.subscriptions] == [("daily", True), ("weekly", False)]
    assert view.categories == ["health"] and view.language == "de"
    [message] = notices(site)
    assert message["To"] == "ann@new.example"
    moved = readers.confirm_address(site, link(message, "address"), NOW)
    assert moved.email == "ann@new.example"


def test_a_forgotten_reader_leaves_only_a_hash(site) -> None:
    subscribers.add(site, "ann@example.org", NOW, name="Ann Person")
    subscribers.forget(site, "ann@example.org", NOW)
    with site.factory() as session:
        rows = [
            repr(vars(row))
            for model in (Subscriber, Suppression, Consent)
            for row in session.scalars(select(model))
        ]
    assert rows and not any("ann@example.org" in row or "Ann Person" in row for row in rows)
    plain = hashlib.sha256(b"ann@example.org").hexdigest()  # anyone could hash a list of addresses
    assert not any(plain in row for row in rows)
    assert subscribers.readers(site) == []
    assert readers.sign_up(site, SignUp("ann@example.org", ["weekly"]), NOW) == "quiet"
    csv = site.settings.outbox_dir.parent / "again.csv"
    csv.write_text("email,newsletters,status\nann@example.org,weekly,active\n")
    assert subscribers.import_file(site, csv, confirmed=True).kept == 1


def test_saving_other_settings_keeps_a_pause(site) -> None:
    subscribers.add(site, "ann@example.org", NOW, newsletters=["weekly"])
    from newsletter.subscribers.tokens import sign

    token = sign(site.settings.signing_key(), "preferences", reader(site, "ann@example.org").id)
    readers.change(site, token, Change(["weekly"], [], "en", pause_weeks=4), NOW)
    later = NOW + timedelta(days=3)
    view, _asked = readers.change(site, token, Change(["weekly"], ["Health"], "de", pause_weeks=None), later)
    assert [s.paused_until for s in view.subscriptions] == [NOW + timedelta(weeks=4)]
    view, _asked = readers.change(site, token, Change(["weekly"], [], "de", pause_weeks=0), later)
    assert [s.paused_until for s in view.subscriptions] == [None]
