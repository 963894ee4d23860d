"""Every way of leaving is in the store, committed, when it is acknowledged: in one of the three
things the sender checks right before it hands a reader's message over (their subscription to
the edition's newsletter, their own status, the suppression list). Each test reads, from a
session of its own, what that check would read the moment the page, command or event is done."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from newsletter.services import bounces, readers, subscribers
from newsletter.store.db import reading
from newsletter.store.models import Suppression
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import DeliveryStatus, SubscriberStatus, SubscriptionStatus
from newsletter.subscribers.addresses import address_hash
from newsletter.subscribers.links import Links, token_of
from newsletter.web.app import create_app
from tests.support.readers import add_reader, delivery, gate
from tests.support.web import in_process
from tests.support.webhook import WebhookKeys, deliver, entry

pytestmark = pytest.mark.both_databases

NOW = datetime(2026, 12, 7, 7, 30, tzinfo=UTC)  # a Monday, just after the weekly's slot
TWO = {"weekly": {}, "daily": {}}


def pages(runtime: Runtime) -> httpx.Client:
    return in_process(create_app(runtime, lambda: NOW), "https://testserver", True, follow_redirects=True)


def links(runtime: Runtime) -> Links:
    return Links.from_settings(runtime.settings)


def form_of(page: str) -> dict[str, str]:
    """The hidden fields of the page's form."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))


def test_a_one_click_ends_the_subscription_before_it_answers(make_runtime) -> None:
    runtime = make_runtime(newsletters=TWO)
    reader = add_reader(runtime, "one@example.com", ("weekly", "daily"))
    with pages(runtime) as client:
        answer = client.post(
            f"/unsubscribe/{token_of(links(runtime).unsubscribe(reader, 'weekly'))}",
            data={"List-Unsubscribe": "One-Click"},
        )
        assert answer.status_code == 200
        left = gate(runtime, reader, "weekly")
    assert left.subscription == SubscriptionStatus.UNSUBSCRIBED and not left.mailed
    assert gate(runtime, reader, "daily").mailed  # the other newsletter goes on


def test_the_unsubscribe_pages_button_and_leave_everything(make_runtime) -> None:
    runtime = make_runtime()
    reader = add_reader(runtime, "button@example.com")
    path = f"/unsubscribe/{token_of(links(runtime).unsubscribe(reader, 'weekly'))}"
    with pages(runtime) as client:
        shown = client.get(path)
        assert shown.status_code == 200 and gate(runtime, reader).mailed  # a GET changes nothing
        pressed = client.post(path, data={**form_of(shown.text), "List-Unsubscribe": "One-Click"})
        assert pressed.status_code == 200
        assert gate(runtime, reader).subscription == SubscriptionStatus.UNSUBSCRIBED
        everything = client.post(f"{path}/everything", data=form_of(pressed.text), headers={"Origin": "null"})
        assert everything.status_code == 200
        left = gate(runtime, reader)
    assert left.status == SubscriberStatus.UNSUBSCRIBED and left.suppressed and not left.mailed


def _preferences(client: httpx.Client, runtime: Runtime, reader: int, **fields: object):
    path = f"/preferences/{token_of(links(runtime).preferences(reader))}"
    shown = client.get(path)
    assert shown.status_code == 200
    posted = {"csrf": form_of(shown.text)["csrf"], "language": "en", **fields}
    return client.post(path, data=posted, headers={"Origin": "null"})


def test_the_preferences_page_unticking_a_newsletter_or_every_one(make_runtime) -> None:
    runtime = make_runtime(newsletters=TWO)
    reader = add_reader(runtime, "prefs@example.com", ("weekly", "daily"))
    with pages(runtime) as client:
        assert _preferences(client, runtime, reader, newsletters=["daily"]).status_code == 200
        assert gate(runtime, reader, "weekly").subscription == SubscriptionStatus.UNSUBSCRIBED
        assert gate(runtime, reader, "daily").mailed
        assert _preferences(client, runtime, reader).status_code == 200  # nothing ticked
        assert not gate(runtime, reader, "daily").mailed
    assert gate(runtime, reader, "daily").subscription == SubscriptionStatus.UNSUBSCRIBED


def test_a_pause_is_stored_on_the_subscription_not_in_its_status(make_runtime) -> None:
    """What a pause does: `paused_until` on each subscription, the status left active. The
    sender's check must read it too (as preparation does, editions/audience.py)."""
    runtime = make_runtime()
    reader = add_reader(runtime, "pause@example.com")
    with pages(runtime) as client:
        assert (
            _preferences(client, runtime, reader, newsletters=["weekly"], pause_weeks="4").status_code == 200
        )
        paused = gate(runtime, reader)
    assert paused.paused_until == NOW + timedelta(weeks=4)
    assert paused.subscription == SubscriptionStatus.ACTIVE  # the status says nothing of the pause


@pytest.mark.parametrize("newsletter", ["weekly", None], ids=["one newsletter", "every newsletter"])
def test_subscribers_remove(make_runtime, newsletter: str | None) -> None:
    runtime = make_runtime()
    reader = add_reader(runtime, "removed@example.com")
    subscribers.remove(runtime, "removed@example.com", NOW, newsletter)
    left = gate(runtime, reader)
    assert left.subscription == SubscriptionStatus.UNSUBSCRIBED and not left.mailed
    if newsletter is None:
        assert left.status == SubscriberStatus.UNSUBSCRIBED and left.suppressed


def test_forget(make_runtime) -> None:
    runtime = make_runtime()
    reader = add_reader(runtime, "forgotten@example.com")
    subscribers.forget(runtime, "forgotten@example.com", NOW)
    left = gate(runtime, reader)
    assert left.subscription is None and left.status == SubscriberStatus.UNSUBSCRIBED and not left.mailed
    # The list keeps the hash of the address, which the reader's row no longer holds: the check
    # stops them by their subscription and status; the hash stops the address coming back.
    hashed = address_hash("forgotten@example.com", runtime.settings.signing_key())
    with reading(runtime.factory) as session:
        assert session.scalar(select(Suppression.reason).where(Suppression.email == hashed)) == "forgotten"


@pytest.mark.parametrize(
    ("kind", "extra", "expected"),
    [
        ("bounce", {"type": "bounce", "reason": "550 5.1.1 no such user"}, SubscriberStatus.BOUNCED),
        ("spamreport", {}, SubscriberStatus.COMPLAINED),
        ("unsubscribe", {}, SubscriberStatus.UNSUBSCRIBED),
        ("group_unsubscribe", {}, SubscriberStatus.ACTIVE),
    ],
)
def test_a_providers_event_during_a_send(make_runtime, kind: str, extra: dict, expected: str) -> None:
    """About a message of this very send: once the stored POST is read, the reader's later
    messages (the next edition, a retry) are stopped by the check."""
    keys = WebhookKeys.make()
    runtime = make_runtime(sendgrid_webhook_public_key=keys.public)
    reader = add_reader(runtime, "evented@example.com")
    going = delivery(runtime, reader, DeliveryStatus.SENT)
    deliver(runtime, keys, [entry(kind, going, "evented@example.com", "abc", NOW, **extra)], NOW)
    left = gate(runtime, reader)
    assert left.status == expected and not left.mailed
    if kind == "group_unsubscribe":
        assert left.subscription == SubscriptionStatus.UNSUBSCRIBED
    else:
        assert left.suppressed


DSN = """Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: bounces@example.com
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn-1@mx.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B1"

--B1
Content-Type: text/plain

Your message could not be delivered.

--B1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; bounced@example.com
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 no such user

--B1
Content-Type: text/rfc822-headers

To: bounced@example.com
Subject: Weekly digest
Message-ID: {message_id}

--B1--
"""


def test_a_bounce_read_from_the_mailbox(make_runtime) -> None:
    runtime = make_runtime()
    reader = add_reader(runtime, "bounced@example.com")
    earlier = delivery(runtime, reader, DeliveryStatus.SENT, "<{edition}.{subscriber}.5eed@example.com>")
    delivery(runtime, reader, slot="2026-12-14T07:00")  # this week's, being sent
    handled = bounces.handle(
        runtime, "INBOX", "1", DSN.format(message_id=earlier.provider_message_id).encode(), NOW
    )
    assert handled.outcome == "hard", handled
    left = gate(runtime, reader)
    assert left.status == SubscriberStatus.BOUNCED and left.suppressed and not left.mailed


def test_an_address_change_moves_the_reader_not_their_subscription(make_runtime) -> None:
    """Not a way of leaving: the reader's mail goes to the new address from the moment the page
    says so; the check must hand over to the address the reader has now, not the one read when
    the batch was built (reported: none of the three changes)."""
    runtime = make_runtime()
    reader = add_reader(runtime, "old@example.com")
    with pages(runtime) as client:
        asked = _preferences(client, runtime, reader, newsletters=["weekly"], new_email="new@example.com")
        assert asked.status_code == 200
        token = token_of(links(runtime).address(reader, "new@example.com"))
        shown = client.get(f"/address/{token}")
        done = client.post(f"/address/{token}", data=form_of(shown.text), headers={"Origin": "null"})
        assert done.status_code == 200
    view = readers.preferences(runtime, token_of(links(runtime).preferences(reader)))
    assert view.email == "new@example.com" and gate(runtime, reader).mailed
