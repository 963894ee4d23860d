"""SendGrid's Event Webhook and exactly-once across a crash.

The webhook refuses a wrong signature, a timestamp outside the window and a replay; a batch
signed with a test key pair suppresses bounced and complaining readers, so the next edition
skips them. A sender killed after the loopback API accepted a request, before the answer came,
leaves that batch uncertain; the API's events settle it and every reader is mailed once."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError
from sqlalchemy import select

from newsletter.sending.events import SIGNATURE_HEADER, TIMESTAMP_HEADER, EventRefused
from newsletter.services import events
from newsletter.settings import Settings
from newsletter.store.db import unit_of_work
from newsletter.store.models import Delivery, Edition, ProviderEvent, Subscriber, Suppression, WebhookBatch
from tests.conftest import ROOT
from tests.support.clock import NOW
from tests.support.web import serve
from tests.test_send import (
    add_readers,
    cli_env,
    prepared,
    recipients_of,
    sender_process,
    sendgrid_env,
    statuses,
)

pytestmark = pytest.mark.both_databases


@pytest.fixture(scope="module")
def key_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(public).decode()


def signed(
    private: ec.EllipticCurvePrivateKey, entries: list[dict], at: datetime | None = None
) -> tuple[bytes, dict]:
    body = json.dumps(entries).encode()
    timestamp = str(int((at or NOW).timestamp()))
    signature = private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return body, {SIGNATURE_HEADER: base64.b64encode(signature).decode(), TIMESTAMP_HEADER: timestamp}


def with_key(runtime, public: str, **sending):
    """The runtime with the webhook's key set (and sending settings changed)."""
    runtime.settings = runtime.settings.model_copy(
        update={
            "sendgrid_webhook_public_key": public,
            "sending": runtime.settings.sending.model_copy(update=sending),
        }
    )
    return runtime


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


def test_the_webhook_over_http_refuses_what_is_not_sendgrids(newsroom, tmp_path, key_pair) -> None:
    private, public = key_pair
    edition_id = prepared(newsroom)
    anna = deliveries(newsroom, edition_id)["anna.keller@example.com"]
    bounce = [
        event("bounce", anna, "anna.keller@example.com", type="bounce", reason="550 5.1.1 no such user")
    ]
    for site in serve(newsroom, tmp_path, env={"NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY": public}):
        url = f"{site.url}/webhooks/sendgrid"
        body, headers = signed(private, bounce)
        other = ec.generate_private_key(ec.SECP256R1())
        refused = {
            "wrong key": signed(other, bounce),
            "altered body": (body.replace(b"bounce", b"bounc3"), headers),
            "garbage signature": (body, {**headers, SIGNATURE_HEADER: "not base64!"}),
            "unsigned": (body, {}),
            "old": signed(private, bounce, NOW - timedelta(minutes=30)),
            "future": signed(private, bounce, NOW + timedelta(minutes=30)),
        }
        for name, (content, sent_headers) in refused.items():
            answer = httpx.post(url, content=content, headers=sent_headers)
            assert answer.status_code == 403, (name, answer.text)
        assert httpx.post(url, content=body, headers=headers).status_code == 200
        replay = httpx.post(url, content=body, headers=headers)
        assert replay.status_code == 403 and "replay" in replay.text
        deadline = time.monotonic() + 20
        while not _suppressed(newsroom):
            assert time.monotonic() < deadline, "the stored POST was not read"
            time.sleep(0.1)
        assert _suppressed(newsroom) == {"anna.keller@example.com": "bounce"}
        with newsroom.factory() as session:
            assert session.scalars(select(WebhookBatch.body)).all() == [""]  # no address kept


def _suppressed(runtime) -> dict[str, str]:
    with runtime.factory() as session:
        return {s.email: str(s.reason) for s in session.scalars(select(Suppression))}


def test_a_batch_suppresses_bounces_and_complaints_and_the_next_edition_skips_them(
    newsroom, key_pair
) -> None:
    private, public = key_pair
    site = with_key(newsroom, public)
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
    body, headers = signed(private, batch)
    events.receive(site, body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER], now)
    again = batch[:2]  # SendGrid's retry of a POST it thinks failed: new signature, same events
    body2, headers2 = signed(private, again)
    events.receive(site, body2, headers2[SIGNATURE_HEADER], headers2[TIMESTAMP_HEADER], now)
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


def test_a_sender_killed_after_the_api_accepted_is_settled_by_the_events(
    newsroom, mail_api, key_pair
) -> None:
    """The fourth request is accepted, then its sender dies before the answer: on resume those
    readers are uncertain, not mailed again; the API's events settle them; exactly once."""
    private, public = key_pair
    add_readers(newsroom, 40)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    victim: dict = {}

    def die_after_fourth(number: int) -> bool:
        if number == 4:
            os.kill(victim["process"].pid, signal.SIGKILL)
            return False
        return True

    mail_api.on_accepted = die_after_fourth
    env = sendgrid_env(
        mail_api,
        NEWSLETTER_SENDING__SENDGRID_BATCH="5",
        NEWSLETTER_SENDING__CONCURRENCY="1",  # exactly the fourth in flight (several: test_send_concurrency)
        NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY=public,
    )
    victim["process"] = sender_process(newsroom, edition_id, **env)
    victim["process"].wait(timeout=60)
    assert victim["process"].returncode == -signal.SIGKILL
    mail_api.on_accepted = None
    again = sender_process(newsroom, edition_id, **env)
    _out, err = again.communicate(timeout=60)
    assert again.returncode == 1, err  # partial: five readers uncertain
    assert statuses(newsroom, edition_id) == {"sent": len(expected) - 5, "uncertain": 5}
    assert sorted(mail_api.recipients()) == expected  # nobody twice, nobody missed
    site = with_key(newsroom, public)
    body, headers = signed(private, mail_api.events)
    now = NOW
    events.receive(site, body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER], now)
    report = events.process(site, now)
    assert report.outcomes["settled"] == 5 and report.outcomes["duplicate"] == 0
    assert statuses(newsroom, edition_id) == {"sent": len(expected)}
    with newsroom.factory() as session:
        assert session.get_one(Edition, edition_id).status == "complete"


def test_what_no_event_settles_is_sent_again_after_the_window(newsroom, mail_api, key_pair) -> None:
    """The request died before the API took it: no event ever comes, so after
    `uncertain_minutes` the next send mails those readers; nobody gets two."""
    _private, public = key_pair
    add_readers(newsroom, 40)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    victim: dict = {}

    def die_on_fourth(number: int) -> bool:
        if number == 4:
            os.kill(victim["process"].pid, signal.SIGKILL)
            return False
        return True

    mail_api.on_request = die_on_fourth
    env = sendgrid_env(
        mail_api,
        NEWSLETTER_SENDING__SENDGRID_BATCH="5",
        NEWSLETTER_SENDING__CONCURRENCY="1",  # only the fourth in flight: no other was taken
        NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY=public,
        NEWSLETTER_SENDING__UNCERTAIN_MINUTES="0.05",
    )
    victim["process"] = sender_process(newsroom, edition_id, **env)
    victim["process"].wait(timeout=60)
    mail_api.on_request = None
    time.sleep(3.5)
    again = sender_process(newsroom, edition_id, **env)
    _out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert sorted(mail_api.recipients()) == expected
    assert statuses(newsroom, edition_id) == {"sent": len(expected)}


def test_without_a_webhook_uncertain_deliveries_are_held_for_the_operator(newsroom, mail_api) -> None:
    add_readers(newsroom, 40)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    victim: dict = {}

    def die_after_fourth(number: int) -> bool:
        if number == 4:
            os.kill(victim["process"].pid, signal.SIGKILL)
            return False
        return True

    mail_api.on_accepted = die_after_fourth
    env = sendgrid_env(mail_api, NEWSLETTER_SENDING__SENDGRID_BATCH="5", NEWSLETTER_SENDING__CONCURRENCY="1")
    victim["process"] = sender_process(newsroom, edition_id, **env)
    victim["process"].wait(timeout=60)
    mail_api.on_accepted = None
    held = sender_process(newsroom, edition_id, **env)
    _out, _err = held.communicate(timeout=60)
    assert held.returncode == 1 and statuses(newsroom, edition_id)["uncertain"] == 5
    assert sorted(mail_api.recipients()) == expected
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "newsletter",
            "deliveries",
            str(edition_id),
            "--status",
            "uncertain",
            "--json",
        ],
        env=cli_env(newsroom, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["deliveries"]) == 5
    resent = subprocess.run(
        [sys.executable, "-m", "newsletter", "send", "--resend-uncertain", str(edition_id)],
        env=cli_env(newsroom, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resent.returncode == 0, resent.stderr
    assert "5 uncertain deliveries" in resent.stdout
    assert statuses(newsroom, edition_id) == {"sent": len(expected)}
    assert len(mail_api.recipients()) == len(expected) + 5  # the operator chose: five got two


def test_a_bad_public_key_is_a_clear_refusal(key_pair) -> None:
    with pytest.raises(ValidationError, match="ECDSA public key"):
        Settings(sendgrid_webhook_public_key="not a key")
    assert Settings(sendgrid_webhook_public_key=key_pair[1]).sendgrid_webhook_public_key == key_pair[1]


def test_a_post_that_cannot_be_read_never_stops_the_others(newsroom, key_pair) -> None:
    private, public = key_pair
    site = with_key(newsroom, public)
    edition_id = prepared(site)
    sent = deliveries(site, edition_id)
    now = NOW
    deep = b"[" * 100_000 + b"]" * 100_000
    odd = [event("bounce", sent["jan.novak@example.com"], "jan.novak@example.com", type="bounce")]
    odd[0]["delivery_id"] = "²"  # a digit to str.isdigit, not to int()
    for body in (deep, json.dumps(odd).encode()):
        timestamp = str(int(now.timestamp()))
        signature = private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        events.receive(site, body, base64.b64encode(signature).decode(), timestamp, now)
    good = [event("bounce", sent["anna.keller@example.com"], "anna.keller@example.com", type="bounce")]
    body, headers = signed(private, good)
    events.receive(site, body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER], now)
    events.process(site, now)
    assert _suppressed(site) == {"anna.keller@example.com": "bounce"}
    with site.factory() as session:
        assert session.scalars(select(WebhookBatch).where(WebhookBatch.processed_at.is_(None))).all() == []
        assert session.get_one(Edition, edition_id).status == "ready"  # a bounce changes no edition


def test_replays_and_odd_timestamps_are_refused(newsroom, key_pair) -> None:
    private, public = key_pair
    site = with_key(newsroom, public)
    now = NOW
    body, headers = signed(private, [])
    events.receive(site, body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER], now)
    respelt = headers[SIGNATURE_HEADER] + "!!"  # base64 ignores it: the same signature
    with pytest.raises(EventRefused, match="replay"):
        events.receive(site, body, respelt, headers[TIMESTAMP_HEADER], now)
    for timestamp in ("999999999999", "²", "", "1e9"):
        with pytest.raises(EventRefused):
            events.receive(site, body, headers[SIGNATURE_HEADER], timestamp, now)


def test_a_complaint_about_a_confirmation_suppresses_the_address(newsroom, key_pair) -> None:
    private, public = key_pair
    site = with_key(newsroom, public)
    complaint = {
        "email": "stranger@example.net",
        "timestamp": int(NOW.timestamp()),
        "event": "spamreport",
        "sg_event_id": "x1",
        "delivery_id": "0",
        "newsletter": "subscriptions",
    }
    body, headers = signed(private, [complaint])
    now = NOW
    events.receive(site, body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER], now)
    events.process(site, now)
    assert _suppressed(site) == {"stranger@example.net": "complaint"}
