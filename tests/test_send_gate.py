"""The gate before the provider: each SMTP message and each SendGrid request is handed over in
the ledger just before it goes, in a write that checks its reader is still subscribed. A reader
who leaves mid-send is not mailed; a store that cannot be written stops the send before anything
goes unrecorded; a sender lost mid-batch leaves uncertain only what was handed over."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from newsletter.errors import StoreUnavailable
from newsletter.sending.batches import BatchBuilder
from newsletter.sending.providers.sendgrid import SendGridProvider
from newsletter.sending.sender import Sender
from newsletter.services import schedule
from newsletter.store import ledger
from newsletter.store.db import unit_of_work
from newsletter.store.models import Delivery, Subscriber, SubscriberNewsletter, Suppression
from newsletter.store.runtime import Runtime
from newsletter.subscribers.links import Links
from tests.conftest import WEEKLY_NOV_23
from tests.support.sending import (
    FAST,
    Outage,
    Sink,
    add_readers,
    deliveries,
    one_click,
    prepared,
    sendgrid_settings,
    smtp_send,
    smtp_server,
    smtp_settings,
    statuses,
)

pytestmark = pytest.mark.both_databases

NOW = datetime(2026, 11, 23, 6, 5, tzinfo=UTC)  # the weekly's send, as the pages see it


def recover_as_the_next_sender(runtime, edition_id: int) -> tuple[int, int]:
    """What the next `newsletter send` does with the claims of a sender that is gone."""
    with unit_of_work(runtime.factory) as session:
        return ledger.recover(session, edition_id, timedelta(0), "the-next-sender")


def handed(runtime, edition_id: int) -> set[str]:
    with runtime.factory() as session:
        return set(
            session.scalars(
                select(Subscriber.email)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.edition_id == edition_id, Delivery.handed_at.is_not(None))
            )
        )


def claimed_not_handed(runtime, edition_id: int) -> list[str]:
    with runtime.factory() as session:
        return sorted(
            session.scalars(
                select(Subscriber.email)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(
                    Delivery.edition_id == edition_id,
                    Delivery.status == "sending",
                    Delivery.handed_at.is_(None),
                )
            )
        )


# --- readers who leave ------------------------------------------------------------------------


def test_readers_who_leave_during_an_smtp_send_are_not_mailed_and_the_ledger_says_why(newsroom) -> None:
    add_readers(newsroom, 12)
    edition_id = prepared(newsroom)
    everyone = set(deliveries(newsroom, edition_id))
    left: dict[str, str] = {}

    def leave(number: int, on_the_wire: list[str]) -> None:
        if number != 1:
            return
        # The whole edition is one claimed batch, built before this first message went.
        one, two, three, four = sorted(everyone - set(on_the_wire))[:4]
        one_click(newsroom, one, NOW)  # the one-click page: this newsletter only
        one_click(newsroom, on_the_wire[0], NOW)  # while their own message is on the wire
        with unit_of_work(newsroom.factory) as session:
            session.add(Suppression(email=two, reason="complaint"))
            session.execute(update(Subscriber).where(Subscriber.email == three).values(status="unsubscribed"))
            paused = select(Subscriber.id).where(Subscriber.email == four).scalar_subquery()
            session.execute(  # a pause chosen on the preferences page
                update(SubscriberNewsletter)
                .where(
                    SubscriberNewsletter.subscriber_id == paused, SubscriberNewsletter.newsletter == "weekly"
                )
                .values(paused_until=datetime(2100, 1, 1, tzinfo=UTC))
            )
        left.update(
            {
                one: ledger.LEFT_NEWSLETTER,
                two: ledger.LEFT_SUPPRESSED,
                three: ledger.LEFT_STATUS,
                four: ledger.LEFT_PAUSED,
            }
        )
        left["wire"] = on_the_wire[0]

    sink = Sink(leave)
    with smtp_server(sink) as port:
        report = smtp_send(newsroom, port, edition_id, smtp_connections=1)
    wire = left.pop("wire")
    assert set(left).isdisjoint(sink.recipients)
    assert sorted(sink.recipients) == sorted(everyone - set(left))  # everyone else, once
    found = deliveries(newsroom, edition_id)
    assert {address: found[address] for address in left} == {
        address: ("suppressed", why) for address, why in left.items()
    }
    assert found[wire] == ("sent", ledger.LEFT_IN_FLIGHT)  # mailed once as they left, and said
    assert report.status == "complete" and report.suppressed == 4


def test_a_reader_who_leaves_between_two_sendgrid_requests_is_not_posted(newsroom, mail_api) -> None:
    add_readers(newsroom, 3)
    edition_id = prepared(newsroom)
    settings = sendgrid_settings(newsroom, mail_api, sendgrid_batch=3, concurrency=2)
    seen: dict[str, object] = {}

    def first_request(number: int) -> bool:
        if number == 1:  # the send's first request goes alone; the batch's second waits for it
            seen["handed"] = handed(newsroom, edition_id)
            waiting = claimed_not_handed(newsroom, edition_id)
            seen["waiting"] = waiting
            one_click(newsroom, waiting[0], NOW)
        return True

    mail_api.on_request = first_request
    report = Sender(settings, newsroom.factory, SendGridProvider(settings), FAST).send(edition_id)
    leaver = seen["waiting"][0]
    first = {p["to"][0]["email"] for p in mail_api.payloads[0]["personalizations"]}
    assert seen["handed"] == first and seen["waiting"]  # the request going, alone
    assert leaver not in mail_api.recipients()
    assert deliveries(newsroom, edition_id)[leaver] == ("suppressed", ledger.LEFT_NEWSLETTER)
    assert sorted(mail_api.recipients()) == sorted(set(deliveries(newsroom, edition_id)) - {leaver})
    assert report.status == "complete" and report.suppressed == 1


def test_the_gate_sees_a_leave_committed_before_it_inside_its_own_transaction(newsroom) -> None:
    """A hand-over's write begins with the outcomes of earlier messages: on PostgreSQL each
    statement sees what was committed before it, so a leave committed meanwhile still counts."""
    runtime = newsroom
    edition_id = prepared(runtime)
    with unit_of_work(runtime.factory) as session:
        ids = ledger.claim(session, edition_id, "me#1", 2)
    staying, leaving = ids
    postgres = runtime.engine.dialect.name == "postgresql"
    with unit_of_work(runtime.factory) as session:
        ledger.record(session, [])  # the earlier outcomes: the transaction has begun
        session.scalars(select(SubscriberNewsletter.status)).all()
        if postgres:  # SQLite's write lock keeps another writer out until this commits
            with unit_of_work(runtime.factory) as other:
                other.execute(
                    update(SubscriberNewsletter)
                    .where(
                        SubscriberNewsletter.subscriber_id == session.get_one(Delivery, leaving).subscriber_id
                    )
                    .values(status="unsubscribed")
                )
        else:
            session.execute(
                update(SubscriberNewsletter)
                .where(SubscriberNewsletter.subscriber_id == session.get_one(Delivery, leaving).subscriber_id)
                .values(status="unsubscribed")
            )
        gone, kept = ledger.hand(session, ids, "me#1", "weekly")
    assert (gone, kept) == ({staying}, {leaving})
    with runtime.factory() as session:
        assert session.get_one(Delivery, leaving).status == "suppressed"
        assert session.get_one(Delivery, staying).handed_at is not None


# --- a store that cannot be written -------------------------------------------------------------


def test_an_smtp_send_stops_within_a_message_when_the_store_cannot_be_written(newsroom) -> None:
    add_readers(newsroom, 20)
    edition_id = prepared(newsroom)
    everyone = set(deliveries(newsroom, edition_id))
    outage = Outage(newsroom)

    def fail_store(number: int, _tos: list[str]) -> None:
        if number == 3:
            outage.begin()

    sink = Sink(fail_store)
    try:
        with smtp_server(sink) as port:
            with pytest.raises(StoreUnavailable) as stopped:
                smtp_send(newsroom, port, edition_id, smtp_connections=2, store_retry_seconds=0)
            outage.end()
            said = str(stopped.value)
            assert "\n" not in said and newsroom.settings.database_label() in said
            assert len(sink.recipients) <= 3 + 1  # the other connection's message in hand, no more
            recover_as_the_next_sender(newsroom, edition_id)
            found = deliveries(newsroom, edition_id)
            assert {found[address][0] for address in sink.recipients} <= {"sent", "uncertain"}
            got_before = list(sink.recipients)
            report = smtp_send(newsroom, port, edition_id, smtp_connections=2)
    finally:
        outage.end()
    assert len(sink.recipients) == len(set(sink.recipients))  # nobody twice
    assert set(sink.recipients) == everyone
    found = deliveries(newsroom, edition_id)
    assert {address for address, (status, _d) in found.items() if status != "sent"} <= set(got_before)
    assert report.status in ("complete", "partial")


def test_a_store_back_within_the_retry_lets_the_smtp_send_finish_exactly_once(newsroom) -> None:
    add_readers(newsroom, 20)
    edition_id = prepared(newsroom)
    everyone = set(deliveries(newsroom, edition_id))
    outage = Outage(newsroom)
    waits: list[float] = []

    def fail_store(number: int, _tos: list[str]) -> None:
        if number == 3:
            outage.begin()

    def wait(seconds: float) -> None:  # the sender's backoff: the store is back by its end
        waits.append(seconds)
        outage.end()

    sink = Sink(fail_store)
    try:
        with smtp_server(sink) as port:
            report = smtp_send(
                newsroom, port, edition_id, sleep=wait, smtp_connections=2, store_retry_seconds=600
            )
    finally:
        outage.end()
    assert waits  # it did wait for the store
    assert sorted(sink.recipients) == sorted(everyone)  # each once
    assert report.status == "complete" and statuses(newsroom, edition_id) == {"sent": len(everyone)}


def test_a_sendgrid_request_is_not_posted_when_the_store_cannot_be_written(newsroom, mail_api) -> None:
    add_readers(newsroom, 3)
    edition_id = prepared(newsroom)
    settings = sendgrid_settings(newsroom, mail_api, sendgrid_batch=3, concurrency=2, store_retry_seconds=0)
    outage = Outage(newsroom)

    def fail_store(number: int) -> bool:
        if number == 1:
            outage.begin()
        return True

    mail_api.on_accepted = fail_store
    try:
        with pytest.raises(StoreUnavailable):
            Sender(settings, newsroom.factory, SendGridProvider(settings), FAST).send(edition_id)
    finally:
        outage.end()
    assert mail_api.requests == 1  # the batch's second request never went
    recover_as_the_next_sender(newsroom, edition_id)
    found = deliveries(newsroom, edition_id)
    posted = set(mail_api.recipients())
    assert {address for address, (status, _d) in found.items() if status == "uncertain"} == posted
    assert {status for address, (status, _d) in found.items() if address not in posted} == {"pending"}


# --- a sender lost mid-batch ----------------------------------------------------------------------


def test_a_sendgrid_sender_lost_mid_batch_leaves_uncertain_only_the_request_posted(
    newsroom, mail_api
) -> None:
    add_readers(newsroom, 3)
    edition_id = prepared(newsroom)
    settings = sendgrid_settings(newsroom, mail_api, sendgrid_batch=3, concurrency=2)
    after: dict[str, dict[str, tuple[str, str | None]]] = {}

    def lost(number: int) -> bool:
        if number == 1:  # the sender dies now, its first request posted, the second not
            recover_as_the_next_sender(newsroom, edition_id)
            after["recovered"] = deliveries(newsroom, edition_id)
        return True

    mail_api.on_request = lost
    Sender(settings, newsroom.factory, SendGridProvider(settings), FAST).send(edition_id)
    report = Sender(settings, newsroom.factory, SendGridProvider(settings), FAST).send(edition_id)
    recovered = after["recovered"]
    first = {p["to"][0]["email"] for p in mail_api.payloads[0]["personalizations"]}
    assert {a for a, (status, _d) in recovered.items() if status == "uncertain"} == first
    assert sum(status == "pending" for status, _d in recovered.values()) == len(recovered) - len(first)
    # The living sender, told "accepted", records it; the claims it lost it does not post.
    assert sorted(mail_api.recipients()) == sorted(recovered)  # each once
    assert report.status == "complete"


def test_an_smtp_message_whose_answer_is_lost_is_uncertain_after_recovery(newsroom) -> None:
    add_readers(newsroom, 6)
    edition_id = prepared(newsroom)
    after: dict[str, object] = {}

    def lost(number: int, tos: list[str]) -> None:
        if number == 3:  # its DATA is in, the answer not given: the sender dies now
            recover_as_the_next_sender(newsroom, edition_id)
            after["recovered"] = deliveries(newsroom, edition_id)
            after["on the wire"] = tos[0]

    sink = Sink(lost)
    with smtp_server(sink) as port:
        smtp_send(newsroom, port, edition_id, smtp_connections=1)  # lives on: what it lost is not its own
        report = smtp_send(newsroom, port, edition_id, smtp_connections=1)  # the next sender
    recovered = after["recovered"]
    first_two, wire = sink.recipients[:2], after["on the wire"]
    assert {a: recovered[a][0] for a in first_two} == dict.fromkeys(first_two, "sent")
    assert recovered[wire] == ("uncertain", ledger.IN_FLIGHT)  # never silently sent again
    assert sum(status == "pending" for status, _d in recovered.values()) == len(recovered) - 3
    assert sorted(sink.recipients) == sorted(recovered)  # each once
    assert report.status == "complete"


def test_the_scheduled_job_reports_a_store_outage_mid_send_and_keeps_going(newsroom) -> None:
    add_readers(newsroom, 10)
    outage = Outage(newsroom)

    def fail_store(number: int, _tos: list[str]) -> None:
        if number == 3:
            outage.begin()

    sink = Sink(fail_store)
    try:
        with smtp_server(sink) as port:
            settings = smtp_settings(newsroom, port, smtp_connections=1, store_retry_seconds=0)
            runtime = Runtime(settings, newsroom.engine, newsroom.factory)
            run = schedule.run_edition(
                runtime, "weekly", WEEKLY_NOV_23 + timedelta(minutes=5), threading.Event()
            )
    finally:
        outage.end()
    assert run.action == "stopped" and "cannot write to the database" in (run.problem or "")
    assert len(sink.recipients) <= 3 + 1


def test_a_sendgrid_request_whose_hand_over_cannot_be_written_is_not_posted(newsroom, mail_api) -> None:
    add_readers(newsroom, 6)
    edition_id = prepared(newsroom)
    settings = sendgrid_settings(newsroom, mail_api, sendgrid_batch=2, concurrency=1)
    with newsroom.factory() as session:
        ids = [d.id for d in session.scalars(select(Delivery).where(Delivery.edition_id == edition_id))]
    with unit_of_work(newsroom.factory) as session:
        ledger.claim(session, edition_id, "me#1", len(ids))
    batch = (
        BatchBuilder(settings, newsroom.factory, Links.from_settings(settings), edition_id, "weekly")
        .build(ids)
        .messages
    )
    handed: list[list[int]] = []

    def hand(messages) -> set[int]:
        if handed:  # the second request's hand-over: the store is gone
            raise OperationalError("UPDATE deliveries", {}, Exception("database or disk is full"))
        handed.append([m.delivery_id for m in messages])
        return {m.delivery_id for m in messages}

    provider = SendGridProvider(settings)
    outcomes: list = []
    with pytest.raises(OperationalError):
        provider.send(batch, outcomes.extend, hand)
    provider.close()
    assert mail_api.requests == 1  # the first request only
    assert sorted(o.delivery_id for o in outcomes) == sorted(handed[0])
