"""Many requests in flight: SendGrid requests posted at once and SMTP connections kept busy,
every outcome recorded once; one request's trouble among several loses nothing and sends
nobody twice; a sender killed with several requests in flight leaves every reader mailed once."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from newsletter.sending.events import SIGNATURE_HEADER, TIMESTAMP_HEADER
from newsletter.sending.pace import Pace
from newsletter.sending.providers import Outcome, OutcomeStatus
from newsletter.sending.providers.sendgrid import SendGridProvider
from newsletter.sending.providers.smtp import SMTPProvider
from newsletter.sending.recorder import Recorder
from newsletter.sending.report import SendError
from newsletter.sending.sender import Sender
from newsletter.services import events
from newsletter.store.models import Delivery, Edition
from newsletter.subscribers.links import Links
from newsletter.subscribers.tokens import Signer, sign
from tests.conftest import free_port
from tests.sendgrid_server import Scripted
from tests.smtp_sink import Counter
from tests.support.clock import NOW
from tests.support.sending import (
    Sleeps,
    add_readers,
    deliveries,
    prepared,
    recipients_of,
    send_process,
    send_with_sendgrid,
    sendgrid_env,
    sendgrid_settings,
    smtp_settings,
    statuses,
    with_settings,
)
from tests.support.webhook import WebhookKeys, with_webhook

FAST = Pace(retry_delay=0.05, max_delay=0.05, base_delay=0.01)


class InFlight:
    """Counts the requests the loopback API is answering at once (each held `seconds`)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.now = 0
        self.most = 0
        self.lock = threading.Lock()

    def __call__(self, _number: int) -> bool:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.seconds)
        with self.lock:
            self.now -= 1
        return True


def message_ids(runtime, edition_id: int) -> int:
    with runtime.factory() as session:
        return session.scalar(
            select(func.count(func.distinct(Delivery.provider_message_id))).where(
                Delivery.edition_id == edition_id
            )
        )


@pytest.mark.both_databases
def test_requests_in_flight_at_once_are_each_recorded_once(newsroom, mail_api) -> None:
    add_readers(newsroom, 60)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    mail_api.on_request = watch = InFlight(0.1)
    report = send_with_sendgrid(newsroom, mail_api, edition_id, sendgrid_batch=5, concurrency=4)
    assert 1 < watch.most <= 4  # several at once, never more than asked
    assert report.status == "complete" and report.sent == len(expected)
    assert sorted(mail_api.recipients()) == expected  # everyone, once
    assert statuses(newsroom, edition_id) == {"sent": len(expected)}
    assert message_ids(newsroom, edition_id) == len(mail_api.payloads)  # each its request's id


@pytest.mark.both_databases
def test_one_request_refusing_an_address_among_several_fails_that_reader_alone(newsroom, mail_api) -> None:
    add_readers(newsroom, 60)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    mail_api.bad_addresses = {"reader017@example.com"}
    mail_api.on_request = InFlight(0.05)
    report = send_with_sendgrid(newsroom, mail_api, edition_id, sendgrid_batch=5, concurrency=4)
    assert report.status == "partial" and report.failed == 1 and report.sent == len(expected) - 1
    assert sorted(mail_api.recipients()) == [e for e in expected if e != "reader017@example.com"]


@pytest.mark.both_databases
@pytest.mark.parametrize("status", [429, 500])
def test_one_busy_request_among_several_is_tried_again_alone(newsroom, mail_api, status) -> None:
    add_readers(newsroom, 60)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    # The third request goes beside others (the first goes alone); only it is told to wait.
    mail_api.answers = {3: Scripted(status, {"errors": [{"message": "slow down"}]})}
    mail_api.on_request = InFlight(0.05)
    sleeps = Sleeps()
    report = send_with_sendgrid(newsroom, mail_api, edition_id, sleeps, sendgrid_batch=5, concurrency=4)
    assert report.status == "complete" and report.sent == len(expected) and report.failed == 0
    assert sorted(mail_api.recipients()) == expected  # the others went once, its readers once later
    assert len(sleeps) == 1  # one wait for one busy answer


@pytest.mark.both_databases
def test_a_refusal_among_several_requests_keeps_what_went_and_resumes_exactly_once(
    newsroom, mail_api
) -> None:
    add_readers(newsroom, 60)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    mail_api.answers = {3: Scripted(403, {"errors": [{"message": "access forbidden"}]})}
    mail_api.on_request = InFlight(0.05)
    with pytest.raises(SendError, match="HTTP 403"):
        send_with_sendgrid(newsroom, mail_api, edition_id, sendgrid_batch=5, concurrency=4)
    went = len(mail_api.recipients())
    assert went >= 5  # the first request, and whatever was in flight beside the refused one
    assert statuses(newsroom, edition_id) == {"sent": went, "pending": len(expected) - went}
    report = send_with_sendgrid(newsroom, mail_api, edition_id, sendgrid_batch=5, concurrency=4)
    assert report.status == "complete"
    assert sorted(mail_api.recipients()) == expected


@pytest.mark.both_databases
@pytest.mark.e2e
def test_a_sender_killed_with_several_requests_in_flight_mails_everyone_once(newsroom, mail_api) -> None:
    """Three requests are in the API at once when the sender dies (the second accepted, its
    answer never read). On resume those readers are uncertain, not mailed again; the API's
    events settle what it took; what it never saw is sent after the window: exactly once.
    End to end: a real `newsletter send` killed -9 with requests in flight, whose kernel closes
    its connections (in process, tests/support/crash.py kills a sender with one in flight)."""
    keys = WebhookKeys.make()
    add_readers(newsroom, 60)
    edition_id = prepared(newsroom)
    expected = recipients_of(newsroom, edition_id)
    victim: dict = {}
    together = threading.Barrier(3, timeout=20)
    killed = threading.Event()

    def hold(number: int) -> bool:
        if number in (2, 3, 4):  # the first goes alone; then three at once, all the pool has
            together.wait()
        elif number > 4:  # nothing else is taken before the kill
            killed.wait(20)
        return True

    def die_on_third(number: int) -> bool:
        if number == 3:
            os.kill(victim["process"].pid, signal.SIGKILL)
            killed.set()
            return False
        return True

    mail_api.on_request, mail_api.on_accepted = hold, die_on_third
    env = sendgrid_env(
        mail_api,
        NEWSLETTER_SENDING__SENDGRID_BATCH="5",
        NEWSLETTER_SENDING__CONCURRENCY="3",
        NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY=keys.public,
    )
    victim["process"] = send_process(newsroom, edition_id, **env)
    victim["process"].wait(timeout=60)
    assert victim["process"].returncode == -signal.SIGKILL
    mail_api.on_request = mail_api.on_accepted = None
    again = send_process(newsroom, edition_id, **env)
    _out, err = again.communicate(timeout=60)
    assert again.returncode == 1, err  # partial: readers uncertain
    found = statuses(newsroom, edition_id)
    assert set(found) == {"sent", "uncertain"}
    # the killed request's readers (as many as its variant had: a request holds one variant's)
    # went, their answer never read: uncertain, whatever became of the two beside it
    killed_readers = [p["to"][0]["email"] for p in mail_api.numbered[3]["personalizations"]]
    now_known = deliveries(newsroom, edition_id)
    assert killed_readers and {now_known[a][0] for a in killed_readers} == {"uncertain"}
    accepted = mail_api.recipients()
    assert len(accepted) == len(set(accepted)) >= found["sent"]  # nobody twice
    site = with_webhook(newsroom, keys)
    body, headers = keys.sign(mail_api.events, NOW)
    now = NOW  # what the POST was signed at
    events.receive(site, body, headers[SIGNATURE_HEADER], headers[TIMESTAMP_HEADER], now)
    assert events.process(site, now).outcomes["duplicate"] == 0
    left = statuses(newsroom, edition_id).get("uncertain", 0)  # handed over, never posted
    if (
        left
    ):  # no event will come for them: after the window (a tiny one: passed once it starts) they are sent
        last = send_process(newsroom, edition_id, **env, NEWSLETTER_SENDING__UNCERTAIN_MINUTES="0.0001")
        _out, err = last.communicate(timeout=60)
        assert last.returncode == 0, err
    assert sorted(mail_api.recipients()) == expected
    assert statuses(newsroom, edition_id) == {"sent": len(expected)}
    with newsroom.factory() as session:
        assert session.get_one(Edition, edition_id).status == "complete"


def test_a_request_refused_for_everyone_costs_one_request_whatever_the_concurrency(
    newsroom, mail_api
) -> None:
    add_readers(newsroom, 60)
    edition_id = prepared(newsroom)
    settings = sendgrid_settings(newsroom, mail_api, sendgrid_batch=5, concurrency=8)
    wrong = with_settings(newsroom, **{**settings.model_dump(), "sendgrid_api_key": "SG.wrong"})
    with pytest.raises(SendError, match="HTTP 401"):
        Sender(wrong, newsroom.factory, SendGridProvider(wrong), FAST, sleep=Sleeps()).send(edition_id)
    assert mail_api.requests == 1 and mail_api.accepted == []


def test_smtp_connections_work_at_once_and_mail_everyone_once(newsroom) -> None:
    handler = Counter(latency=0.05)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        add_readers(newsroom, 60)
        edition_id = prepared(newsroom)
        expected = recipients_of(newsroom, edition_id)
        settings = smtp_settings(newsroom, port, smtp_connections=8)
        provider = SMTPProvider(settings)
        began = time.monotonic()
        report = Sender(settings, newsroom.factory, provider, FAST).send(edition_id)
        seconds = time.monotonic() - began
        provider.close()
    finally:
        controller.stop()
    assert report.status == "complete" and report.sent == len(expected)
    assert handler.messages == len(handler.recipients) == len(expected)  # each once
    assert handler.most >= 4  # several transactions at once, not one after another
    assert seconds < len(expected) * 0.15  # one connection alone would take this long


def test_outcomes_reported_from_many_threads_are_written_once_in_groups() -> None:
    written: list[list[int]] = []

    def write(outcomes: list[Outcome]) -> None:
        time.sleep(0.01)  # a write takes a while: reports meanwhile join the next one
        written.append([o.delivery_id for o in outcomes])

    record = Recorder(write, size=20)

    def report(first: int) -> None:
        for i in range(first, first + 500, 25):
            record([Outcome(n, OutcomeStatus.SENT, "m") for n in range(i, i + 25)])

    threads = [threading.Thread(target=report, args=(t * 500,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record.close()
    ids = [n for group in written for n in group]
    assert sorted(ids) == list(range(4000))  # every outcome, once
    assert len(written) < 8 * 20  # fewer writes than reports


def test_a_signer_makes_the_tokens_sign_makes() -> None:
    key = b"a-signing-key-of-some-length-0123"
    now = NOW.timestamp()
    for scope in ("", "weekly", "é and more"):
        for subscriber_id in (0, 1, 4711, 2**64 - 1):
            assert Signer(key, "unsubscribe", scope, now)(subscriber_id) == sign(
                key, "unsubscribe", subscriber_id, now, scope
            )
    links = Links("https://n.example/", key)
    assert links.unsubscribe(7, "weekly").endswith(sign(key, "unsubscribe", 7, scope="weekly"))
