"""What readers do themselves, through the services the pages call: the double opt-in, one
newsletter left and the other kept, everything left and nobody bringing it back, an address
changed, a reader forgotten."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from newsletter.errors import NewsletterError
from newsletter.services import readers, subscribers
from newsletter.services.readers import Change, SignUp
from newsletter.store.models import Consent, Subscriber, Suppression
from newsletter.store.statuses import SubscriberStatus
from newsletter.subscribers.links import Links, token_of
from newsletter.subscribers.tokens import TokenError, read, seal, sign
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


def test_a_confirmation_link_carries_nothing_a_third_party_could_read(site) -> None:
    """The choices of a sign-up stay in the store (its consent record); the link names that
    record by number, so a proxy's log, a link scanner or a forwarded email learns nothing."""
    first = SignUp("erin@example.org", ["weekly"], [], "en", None)
    assert readers.sign_up(site, first, NOW) == "confirm"
    again = SignUp("erin@example.org", ["weekly", "daily"], ["Politics"], "de", "Erin O'Neil")
    assert readers.sign_up(site, again, NOW + timedelta(hours=2)) == "confirm"
    erin = reader(site, "erin@example.org")
    assert (erin.name, erin.language, [c.slug for c in erin.categories]) == (None, "en", [])  # not yet
    messages = notices(site)
    assert len(messages) == 2 and not any(
        b"Erin" in m.as_bytes() or b"olitics" in m.as_bytes() for m in messages
    )
    token = link(messages[1], "confirm")
    assert read(site.settings.signing_key(), "confirm", token).scope.isdigit()
    view = readers.confirm(site, token, NOW + timedelta(hours=2))
    assert_erin_as_she_chose(view)


def assert_erin_as_she_chose(view) -> None:
    """Erin's sign-up applied: active, named, in German, politics, both newsletters."""
    assert (view.status, view.name, view.language, view.categories) == (
        SubscriberStatus.ACTIVE,
        "Erin O'Neil",
        "de",
        ["politics"],
    )
    assert [s.newsletter for s in view.subscriptions if s.active] == ["daily", "weekly"]


def test_a_link_naming_another_readers_sign_up_applies_none_of_it(site) -> None:
    readers.sign_up(site, SignUp("mallory@example.org", ["daily"], ["Health"], "de", "Mallory"), NOW)
    readers.sign_up(site, SignUp("erin@example.org", ["weekly"]), NOW)
    with site.factory() as session:
        mallorys = session.scalars(select(Consent.id).order_by(Consent.id)).first()
    erin = reader(site, "erin@example.org").id
    view = readers.confirm(site, sign(site.settings.signing_key(), "confirm", erin, scope=str(mallorys)), NOW)
    assert (view.name, view.language, view.categories) == (None, "en", [])
    assert [s.newsletter for s in view.subscriptions if s.active] == ["weekly"]


def test_a_strangers_sign_up_plants_nothing_the_owners_confirmation_keeps(site) -> None:
    """Issue #22, 5: a stranger signs up Vic's address with a name of their own; an hour later
    Vic signs up without one and follows their own link: only Vic's choices apply."""
    lure = "URGENT: your account is suspended, call +1-800-555-0100"
    stranger = SignUp("vic@example.org", ["weekly", "daily"], ["Health"], "de", lure)
    assert readers.sign_up(site, stranger, NOW) == "confirm"
    assert reader(site, "vic@example.org").name is None  # nothing kept on the reader before
    own = SignUp("vic@example.org", ["weekly"], [], "en", None)
    assert readers.sign_up(site, own, NOW + timedelta(hours=1, minutes=5)) == "confirm"
    stranger_link, own_link = (link(m, "confirm") for m in notices(site))
    view = readers.confirm(site, own_link, NOW + timedelta(hours=2))
    assert (view.name, view.language, view.categories) == (None, "en", [])
    assert [s.newsletter for s in view.subscriptions if s.active] == ["weekly"]
    assert reader(site, "vic@example.org").name is None
    readers.confirm(site, stranger_link, NOW + timedelta(hours=3))  # once active, a link changes nothing
    assert reader(site, "vic@example.org").name is None


def test_a_confirmation_link_mailed_before_still_confirms_with_what_it_carries(site) -> None:
    """Links already in mailboxes carry the choices themselves, as JSON: they keep working."""
    csv = site.settings.outbox_dir.parent / "pending.csv"
    csv.write_text("email\nerin@example.org\n")
    subscribers.import_file(site, csv)
    erin = reader(site, "erin@example.org")
    assert erin.status == SubscriberStatus.PENDING
    carried = json.dumps(
        [["weekly", "daily"], ["politics"], "de", "Erin O'Neil"], separators=(",", ":"), ensure_ascii=False
    )
    token = sign(site.settings.signing_key(), "confirm", erin.id, scope=carried)
    view = readers.confirm(site, token, NOW)
    assert_erin_as_she_chose(view)


def test_an_unsubscribe_by_mail_leaves_no_thread_behind(site) -> None:
    """`bounces` reads a mailbox of them one by one: each is written where it is asked, with no
    writer thread waiting for more after it (a large mailbox piled hundreds of them up)."""
    import threading

    subscribers.add(site, "ann@example.org", NOW, newsletters=["weekly"])
    token = sign(
        site.settings.signing_key(), "unsubscribe", reader(site, "ann@example.org").id, scope="weekly"
    )
    before = threading.active_count()
    for _ in range(5):
        assert readers.unsubscribe(site, token, "mailto", NOW).newsletter == "weekly"
    assert threading.active_count() == before
    assert subscribers.readers(site)[0].left == ["weekly"]


def test_leaving_one_newsletter_keeps_the_other_and_leaving_all_sticks(site) -> None:
    subscribers.add(site, "ann@example.org", NOW, newsletters=["weekly", "daily"])
    key = site.settings.signing_key()
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
    ann = reader(site, "ann@example.org").id
    before = subscribers.readers(site)[0].newsletters
    for token in (
        "",
        "x",
        sign(b"another-key-0123456789", "unsubscribe", ann, scope="weekly"),
        sign(site.settings.signing_key(), "preferences", ann),
    ):
        with pytest.raises(TokenError):
            readers.unsubscribe(site, token, "one-click", NOW)
    assert subscribers.readers(site)[0].newsletters == before == ["daily", "weekly"]


def test_preferences_and_a_new_address(site) -> None:
    subscribers.add(site, "ann@example.org", NOW, newsletters=["weekly"])
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


def test_an_address_link_carries_the_address_sealed_and_an_old_plain_one_still_works(site) -> None:
    """Nobody who sees the link (a proxy's log, a mail scanner) reads the new address from it;
    a link mailed before addresses were sealed keeps working for its week, and a sealed scope
    cannot be changed or moved to another purpose's key."""
    key = site.settings.signing_key()
    subscribers.add(site, "ann@example.org", NOW, newsletters=["weekly"])
    ann = reader(site, "ann@example.org").id
    sealed = token_of(Links(str(site.settings.public_url), key).address(ann, "ann@sealed.example"))
    scope = base64.urlsafe_b64decode(sealed.split(".")[0].split("-", 2)[2] + "==").decode()
    assert "@" not in scope and "sealed.example" not in base64.urlsafe_b64decode(scope + "==").decode(
        "latin-1"
    )
    assert readers.confirm_address(site, sealed, NOW).email == "ann@sealed.example"
    old = sign(key, "address", ann, scope="ann@plain.example")  # as links were signed before
    assert readers.confirm_address(site, old, NOW).email == "ann@plain.example"
    for forged in (
        ("y" if scope[0] == "x" else "x") + scope[1:],
        seal(b"another-key-0123456789", "address", "eve@example.org"),
    ):
        with pytest.raises(TokenError):
            readers.confirm_address(site, sign(key, "address", ann, scope=forged), NOW)


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
    token = sign(site.settings.signing_key(), "preferences", reader(site, "ann@example.org").id)
    readers.change(site, token, Change(["weekly"], [], "en", pause_weeks=4), NOW)
    later = NOW + timedelta(days=3)
    view, _asked = readers.change(site, token, Change(["weekly"], ["Health"], "de", pause_weeks=None), later)
    assert [s.paused_until for s in view.subscriptions] == [NOW + timedelta(weeks=4)]
    view, _asked = readers.change(site, token, Change(["weekly"], [], "de", pause_weeks=0), later)
    assert [s.paused_until for s in view.subscriptions] == [None]
