"""SendGrid's Event Webhook and exactly-once across a crash.

The webhook refuses a wrong signature, a timestamp outside the window and a replay; a batch
signed with a test key pair suppresses bounced and complaining readers, so the next edition
skips them. A sender killed after the loopback API accepted a request, before the answer came,
leaves that batch uncertain; the API's events settle it and every reader is mailed once. The
senders die in this process (tests/support/crash.py); test_provider_word_e2e and
test_send_concurrency kill real `newsletter send` processes."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from pydantic import ValidationError
from sqlalchemy import select

from newsletter.sending.events import SIGNATURE_HEADER, TIMESTAMP_HEADER, EventRefused
from newsletter.sending.providers.sendgrid import SendGridProvider
from newsletter.sending.report import SendReport
from newsletter.sending.sender import Sender
from newsletter.services import events
from newsletter.settings import Settings
from newsletter.store.db import unit_of_work
from newsletter.store.models import Delivery, Edition, ProviderEvent, Subscriber, Suppression, WebhookBatch
from tests.sendgrid_server import MailAPI
from tests.support.clock import NOW
from tests.support.crash import Doomed
from tests.support.sending import (
    add_readers,
    fast,
    newsletter_on,
    prepared,
    recipients_of,
    sendgrid_env,
    sendgrid_settings,
    statuses,
)
from tests.support.web import serve
from tests.support.webhook import WebhookKeys, with_webhook

KEYS = WebhookKeys.make()  # what SendGrid holds (the private key), and our settings (the public)


def receive(runtime, entries: list[dict], now: datetime = NOW) -> None:
    """The events as one POST signed at `now`, checked and stored as the web app does."""
    body, headers = KEYS.sign(entries, now)
    events.receive(runtime, body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER], now)


def event(kind: str, delivery: Delivery, email: str, **extra: object) -> dict:
    return {
        "email": email,
        "timestamp": int(NOW.timestamp()),
        "event": kind,
        "sg_event_id": os.urandom(8).hex(),
        "sg_message_id": "abc.filter0001",
        "newsletter": "weekly",
        "edition_id": str(delivery.edition_id),
        "subscriber_id": str(delivery.subscriber_id),
        "delivery_id": str(delivery.id),
        **extra,
    }


def deliveries(runtime, edition_id: int) -> dict[str, Delivery]:
    with runtime.factory() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.edition_id == edition_id)
        ).all()
    return {email: delivery for email, delivery in rows}


@pytest.mark.both_databases
def test_the_webhook_over_http_refuses_what_is_not_sendgrids(newsroom, tmp_path) -> None:
    edition_id = prepared(newsroom)
    anna = deliveries(newsroom, edition_id)["anna.keller@example.com"]
    bounce = [
        event("bounce", anna, "anna.keller@example.com", type="bounce", reason="550 5.1.1 no such user")
    ]
    for site in serve(newsroom, tmp_path, env={"NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY": KEYS.public}):
        url = "/webhooks/sendgrid"
        body, headers = KEYS.sign(bounce, NOW)
        refused = {
            "wrong key": WebhookKeys.make().sign(bounce, NOW),
            "altered body": (body.replace(b"bounce", b"bounc3"), headers),
            "garbage signature": (body, {**headers, SIGNATURE_HEADER: "not base64!"}),
            "unsigned": (body, {}),
            "old": KEYS.sign(bounce, NOW - timedelta(minutes=30)),
            "future": KEYS.sign(bounce, NOW + timedelta(minutes=30)),
        }
        for name, (content, sent_headers) in refused.items():
            answer = site.post(url, content=content, headers=sent_headers)
            assert answer.status_code == 403, (name, answer.text)
        assert site.post(url, content=body, headers=headers).status_code == 200  # stored, then read
        replay = site.post(url, content=body, headers=headers)
        assert replay.status_code == 403 and "replay" in replay.text
        assert _suppressed(newsroom) == {"anna.keller@example.com": "bounce"}
        with newsroom.factory() as session:
            assert session.scalars(select(WebhookBatch.body)).all() == [""]  # no address kept


def _suppressed(runtime) -> dict[str, str]:
    with runtime.factory() as session:
        return {s.email: str(s.reason) for s in session.scalars(select(Suppression))}


@pytest.mark.both_databases
def test_a_batch_suppresses_bounces_and_complaints_and_the_next_edition_skips_them(newsroom) -> None:
    site = with_webhook(newsroom, KEYS)
    edition_id = prepared(site)
    sent = deliveries(site, edition_id)
    now = NOW
    batch = [
        event("processed", sent["marc.dubois@example.org"], "marc.dubois@example.org"),
        event(
            "bounce", sent["anna.keller@example.com"], "anna.keller@example.com", type="bounce", reason="550"
        ),
        event("bounce", sent["jan.novak@example.com"], "jan.novak@example.com", type="blocked", reason="421"),
        event("spamreport", sent["sofia.rossi@example.net"], "sofia.rossi@example.net"),
        event("dropped", sent["tom.obrien@example.ie"], "tom.obrien@example.ie", reason="Bounced Address"),
        event("dropped", sent["klaus.weber@example.de"], "klaus.weber@example.de", reason="Spam Content"),
        event("group_unsubscribe", sent["maria.garcia@example.es"], "maria.garcia@example.es"),
        # A delivery id with another reader's address: matched to nobody, changes nothing.
        event("spamreport", sent["lena.schmidt@example.de"], "pieter.devries@example.nl"),
        {"event": "processed"},  # unreadable: skipped, the rest goes on
    ]
    receive(site, batch, now)
    receive(site, batch[:2], now)  # SendGrid's retry of a POST it thinks failed: new signature, same events
    report = events.process(site, now)
    assert report.batches == 2 and report.unreadable == 1
    assert report.outcomes["repeated"] == 2 and report.outcomes["bounced"] == 2
    assert report.outcomes["complained"] == 1 and report.outcomes["unmatched"] == 1
    assert _suppressed(site) == {
        "anna.keller@example.com": "bounce",
        "tom.obrien@example.ie": "bounce",
        "sofia.rossi@example.net": "complaint",
    }
    with site.factory() as session:
        maria = session.scalars(select(Subscriber).where(Subscriber.email == "maria.garcia@example.es")).one()
        assert {n.newsletter: n.status for n in maria.newsletters} == {
            "weekly": "unsubscribed",
            "daily": "active",
        }
        assert len(session.scalars(select(ProviderEvent)).all()) == len(batch) - 1
    # The edition made again, as the next one would be: the suppressed are not mailed.
    with unit_of_work(site.factory) as session:
        session.delete(session.get_one(Edition, edition_id))
    nexts = deliveries(site, prepared(site))
    for address in ("anna.keller@example.com", "tom.obrien@example.ie", "sofia.rossi@example.net"):
        assert nexts.get(address) is None or nexts[address].status == "suppressed", address
    assert "maria.garcia@example.es" not in nexts  # left the weekly
    assert nexts["jan.novak@example.com"].status == "pending"  # a block is the provider's, not his


def killed_at_the_fourth_request(runtime, api: MailAPI, edition_id: int, accepted: bool, **sending) -> None:
    """A sender posting batches of five, one request at a time (exactly the fourth in flight:
    several, test_send_concurrency), dies once the API has the fourth request: after taking it
    (`accepted`: its answer never read) or before (never taken)."""
    doomed = Doomed(sendgrid_settings(runtime, api, sendgrid_batch=5, concurrency=1, **sending))

    def die(number: int) -> bool:
        if number == 4:
            doomed.kill()
            return False  # no answer
        return True

    if accepted:
        api.on_accepted = die
    else:
        api.on_request = die
    doomed.send(edition_id)
    api.on_accepted = api.on_request = None


def resume(runtime, api: MailAPI, edition_id: int, **sending) -> SendReport:
    """`newsletter send --edition ID` after the crash, in this process."""
    settings = sendgrid_settings(runtime, api, sendgrid_batch=5, concurrency=1, **sending)
    return Sender(settings, runtime.factory, SendGridProvider(settings), fast(settings)).send(edition_id)


@pytest.mark.both_databases
def test_a_sender_killed_after_the_api_accepted_is_settled_by_the_events(newsroom, mail_api) -> None:
    """The fourth request is accepted, then its sender dies before the answer: on resume those
    readers are uncertain, not mailed again; the API's events settle them; exactly once."""
    with_webhook(newsroom, KEYS)
    add_readers(newsroom, 40)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    killed_at_the_fourth_request(newsroom, mail_api, edition_id, accepted=True)
    assert statuses(newsroom, edition_id).get("sending", 0) >= 5  # the dead sender's claims
    again = resume(newsroom, mail_api, edition_id)
    assert again.status == "partial" and again.uncertain == 5  # five readers uncertain
    assert statuses(newsroom, edition_id) == {"sent": len(expected) - 5, "uncertain": 5}
    assert sorted(mail_api.recipients()) == expected  # nobody twice, nobody missed
    receive(newsroom, mail_api.events)
    report = events.process(newsroom, NOW)
    assert report.outcomes["settled"] == 5 and report.outcomes["duplicate"] == 0
    assert statuses(newsroom, edition_id) == {"sent": len(expected)}
    with newsroom.factory() as session:
        assert session.get_one(Edition, edition_id).status == "complete"


@pytest.mark.both_databases
def test_what_no_event_settles_is_sent_again_after_the_window(newsroom, mail_api) -> None:
    """The request died before the API took it: no event ever comes, so after
    `uncertain_minutes` the next send mails those readers; nobody gets two."""
    with_webhook(newsroom, KEYS)
    add_readers(newsroom, 40)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    killed_at_the_fourth_request(newsroom, mail_api, edition_id, accepted=False)
    assert (
        resume(newsroom, mail_api, edition_id, uncertain_minutes=3).status == "partial"
    )  # held: the window is open
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=4)):  # the next run, past the window
        report = resume(newsroom, mail_api, edition_id, uncertain_minutes=3)
    assert report.status == "complete" and report.resent == 5
    assert sorted(mail_api.recipients()) == expected
    assert statuses(newsroom, edition_id) == {"sent": len(expected)}


@pytest.mark.both_databases
def test_without_a_webhook_uncertain_deliveries_are_held_for_the_operator(newsroom, mail_api) -> None:
    add_readers(newsroom, 40)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    killed_at_the_fourth_request(newsroom, mail_api, edition_id, accepted=True)
    held = resume(newsroom, mail_api, edition_id)
    assert held.status == "partial" and statuses(newsroom, edition_id)["uncertain"] == 5
    assert sorted(mail_api.recipients()) == expected
    env = sendgrid_env(mail_api)
    listed = newsletter_on(newsroom, "deliveries", str(edition_id), "--status", "uncertain", "--json", **env)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["deliveries"]) == 5
    resent = newsletter_on(newsroom, "send", "--resend-uncertain", str(edition_id), **env)
    assert resent.returncode == 0, resent.stderr
    assert "5 uncertain deliveries" in resent.stdout
    assert statuses(newsroom, edition_id) == {"sent": len(expected)}
    assert len(mail_api.recipients()) == len(expected) + 5  # the operator chose: five got two


def test_a_bad_public_key_is_a_clear_refusal() -> None:
    with pytest.raises(ValidationError, match="ECDSA public key"):
        Settings(sendgrid_webhook_public_key="not a key")
    assert Settings(sendgrid_webhook_public_key=KEYS.public).sendgrid_webhook_public_key == KEYS.public


@pytest.mark.both_databases
def test_a_post_that_cannot_be_read_never_stops_the_others(newsroom) -> None:
    site = with_webhook(newsroom, KEYS)
    edition_id = prepared(site)
    sent = deliveries(site, edition_id)
    now = NOW
    deep = b"[" * 100_000 + b"]" * 100_000
    odd = [event("bounce", sent["jan.novak@example.com"], "jan.novak@example.com", type="bounce")]
    odd[0]["delivery_id"] = "²"  # a digit to str.isdigit, not to int()
    for body in (deep, json.dumps(odd).encode()):
        headers = KEYS.sign_body(body, now)
        events.receive(site, body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER], now)
    receive(
        site,
        [event("bounce", sent["anna.keller@example.com"], "anna.keller@example.com", type="bounce")],
        now,
    )
    events.process(site, now)
    assert _suppressed(site) == {"anna.keller@example.com": "bounce"}
    with site.factory() as session:
        assert session.scalars(select(WebhookBatch).where(WebhookBatch.processed_at.is_(None))).all() == []
        assert session.get_one(Edition, edition_id).status == "ready"  # a bounce changes no edition


@pytest.mark.both_databases
def test_replays_and_odd_timestamps_are_refused(newsroom) -> None:
    site = with_webhook(newsroom, KEYS)
    now = NOW
    body, headers = KEYS.sign([], now)
    events.receive(site, body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER], now)
    respelt = headers[SIGNATURE_HEADER] + "!!"  # base64 ignores it: the same signature
    with pytest.raises(EventRefused, match="replay"):
        events.receive(site, body, respelt, headers[TIMESTAMP_HEADER], now)
    for timestamp in ("999999999999", "²", "", "1e9"):
        with pytest.raises(EventRefused):
            events.receive(site, body, headers[SIGNATURE_HEADER], timestamp, now)


@pytest.mark.both_databases
def test_a_complaint_about_a_confirmation_suppresses_the_address(newsroom) -> None:
    site = with_webhook(newsroom, KEYS)
    complaint = {
        "email": "stranger@example.net",
        "timestamp": int(NOW.timestamp()),
        "event": "spamreport",
        "sg_event_id": "x1",
        "delivery_id": "0",
        "newsletter": "subscriptions",
    }
    receive(site, [complaint])
    events.process(site, NOW)
    assert _suppressed(site) == {"stranger@example.net": "complaint"}
