"""The provider's word is kept, whenever it comes.

A SendGrid sender dies after the API accepted its requests, before it wrote their answers: its
deliveries are still `sending`. The Event Webhook's events come in then; they are kept on each
delivery (which event, when, the message id) and settle it, so the next send, once
`uncertain_minutes` have passed, mails nobody twice and the ledger says `sent`. A live sender's
later mark (a retry, a doubt, a failure) never undoes the provider's word; a bounce, a drop or a
complaint settles a dead sender's delivery as well."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, update

from newsletter.sending.pace import Pace
from newsletter.sending.providers import Handing, Outcome, Outgoing, Report
from newsletter.sending.providers.sendgrid import SendGridProvider
from newsletter.sending.sender import Sender
from newsletter.settings import Settings
from newsletter.store import ledger
from newsletter.store.db import make_engine, unit_of_work
from newsletter.store.ledger import Mark
from newsletter.store.models import DELIVERIES, Delivery, ProviderEvent, Subscriber, Suppression
from newsletter.store.statuses import DeliveryStatus
from tests.sendgrid_server import MailAPI
from tests.support.crash import Killed
from tests.support.sending import Sleeps, add_readers, prepared, recipients_of, sendgrid_settings, statuses
from tests.support.store import migrate
from tests.support.webhook import WebhookKeys, deliver, entry, with_webhook

pytestmark = pytest.mark.both_databases

# When the events come: the store's own times are the wall clock's; the webhook's window is this.
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
PROVIDER_EVENTS = ProviderEvent.__table__


@pytest.fixture(scope="module")
def keys() -> WebhookKeys:
    return WebhookKeys.make()


class DiesAfterAccepted(SendGridProvider):
    """SendGrid, whose sender dies once the API has accepted `requests` requests: the answers
    of that request and of any other then in flight are never written, though the API took them."""

    def __init__(self, settings: Settings, api: MailAPI, requests: int) -> None:
        super().__init__(settings)
        self.dead = threading.Event()

        def accepted(number: int) -> bool:
            if number >= requests:
                self.dead.set()
            return True

        api.on_accepted = accepted

    def send(self, batch: Sequence[Outgoing], report: Report, handing: Handing | None = None) -> None:
        def write(outcomes: list[Outcome]) -> None:
            if self.dead.is_set():
                raise Killed
            report(outcomes)

        super().send(batch, write, handing)


def sender(settings: Settings, runtime, provider: SendGridProvider) -> Sender:
    return Sender(settings, runtime.factory, provider, Pace.from_settings(settings.sending), sleep=Sleeps())


def time_passes(runtime, edition_id: int, by: timedelta) -> None:
    """The dead sender's claims and hand-overs are `by` older: its lease and `uncertain_minutes`
    have passed."""
    with unit_of_work(runtime.factory) as session:
        rows = session.execute(
            select(Delivery.id, Delivery.claimed_at, Delivery.handed_at).where(
                Delivery.edition_id == edition_id, Delivery.status == DeliveryStatus.SENDING
            )
        ).all()
        for delivery_id, claimed_at, handed_at in rows:
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(
                    claimed_at=claimed_at and claimed_at - by,
                    handed_at=handed_at and handed_at - by,
                )
            )


def test_a_dead_senders_deliveries_confirmed_by_events_are_sent_and_nobody_gets_two(
    newsroom, mail_api, keys
) -> None:
    site = with_webhook(newsroom, keys)
    add_readers(site, 200)
    edition_id = prepared(site)
    expected = recipients_of(site, edition_id)
    settings = sendgrid_settings(site, mail_api, sendgrid_batch=10, concurrency=2)
    settings = settings.model_copy(update={"sendgrid_webhook_public_key": keys.public})
    dying = DiesAfterAccepted(settings, mail_api, requests=6)
    try:
        with pytest.raises(Killed):
            sender(settings, site, dying).send(edition_id)
    finally:
        mail_api.on_accepted = None
        dying.close()
    with site.factory() as session:
        abandoned = set(
            session.scalars(
                select(Delivery.id).where(Delivery.edition_id == edition_id, Delivery.status == "sending")
            )
        )
    accepted = {int(e["delivery_id"]): e for e in mail_api.events}
    confirmed = abandoned & set(accepted)
    assert len(confirmed) >= 10  # at least the request the sender died on

    report = deliver(site, keys, mail_api.events, NOW)
    assert report.outcomes["settled"] == len(confirmed) and report.outcomes["duplicate"] == 0
    with site.factory() as session:
        for delivery_id in confirmed:
            told = session.get_one(Delivery, delivery_id)
            assert (told.status, told.provider_event) == ("sent", "processed")
            assert told.provider_event_at is not None
            assert told.provider_message_id == accepted[delivery_id]["sg_message_id"].split(".")[0]

    time_passes(site, edition_id, timedelta(days=2))  # past the lease and uncertain_minutes
    again = sender(settings, site, SendGridProvider(settings))
    try:
        finished = again.send(edition_id)
    finally:
        again.provider.close()
    assert finished.status == "complete"
    mailed = mail_api.recipients()
    assert len(mailed) == len(set(mailed)), "somebody was mailed twice"
    assert sorted(mailed) == expected
    assert statuses(site, edition_id) == {"sent": len(expected)}


def test_events_that_come_while_a_live_sender_waits_outlast_its_doubt(newsroom, mail_api, keys) -> None:
    """The API takes the second request, its events come in, then the answer is lost: the live
    sender marks those readers uncertain, but the provider's word stands. The edition ends
    complete, nobody is held uncertain or mailed twice."""
    site = with_webhook(newsroom, keys)
    add_readers(site, 40)
    edition_id = prepared(site)
    expected = recipients_of(site, edition_id)
    settings = sendgrid_settings(site, mail_api, sendgrid_batch=5, concurrency=1)
    settings = settings.model_copy(update={"sendgrid_webhook_public_key": keys.public})

    lost: list[int] = []

    def told_then_lost(number: int) -> bool:
        if number != 2:
            return True
        words = mail_api.events[-len(mail_api.payloads[-1]["personalizations"]) :]  # this request's
        lost.extend(int(word["delivery_id"]) for word in words)
        deliver(site, keys, words, NOW)  # while the sender waits for the answer
        return False  # which never reaches it: a connection error, "uncertain"

    mail_api.on_accepted = told_then_lost
    provider = SendGridProvider(settings)
    try:
        report = sender(settings, site, provider).send(edition_id)
    finally:
        provider.close()
    assert report.status == "complete"
    assert sorted(mail_api.recipients()) == expected
    assert statuses(site, edition_id) == {"sent": len(expected)}
    with site.factory() as session:
        told = session.scalars(select(Delivery).where(Delivery.provider_event.is_not(None))).all()
    assert sorted(d.id for d in told) == sorted(lost) and lost
    assert {d.detail for d in told} == {"settled by the provider's processed event"}


def claimed_and_handed(runtime, edition_id: int, count: int) -> tuple[list[Delivery], dict[int, str]]:
    """`count` deliveries claimed by a sender and handed to the API: `sending`; their addresses."""
    token = "elsewhere:1:1#1"
    with unit_of_work(runtime.factory) as session:
        ids = ledger.claim(session, edition_id, token, count)
        ledger.hand(session, ids, token, "weekly")
    with runtime.factory() as session:
        rows = session.execute(
            select(Delivery, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.id)
        ).all()
    return [row[0] for row in rows], {row[0].id: row[1] for row in rows}


def ledger_of(runtime, ids: list[int]) -> list[tuple[str, str | None, str | None]]:
    with runtime.factory() as session:
        return [
            (str(d.status), d.provider_event, d.provider_message_id)
            for d in (session.get_one(Delivery, i) for i in ids)
        ]


def test_a_live_senders_later_mark_never_undoes_the_providers_word(newsroom, keys) -> None:
    """The events come while the sender still waits for its answers; whatever it then writes
    (a retry, a doubt, a failure), the delivery the provider took stays sent: nobody is mailed
    again; a drop stays failed even when the sender heard 202."""
    site = with_webhook(newsroom, keys)
    edition_id = prepared(site)
    rows, emails = claimed_and_handed(site, edition_id, 5)
    retried, doubted, failed, answered, dropped = rows
    words = [entry("processed", d, emails[d.id], "req1", NOW) for d in rows]
    words.append(entry("dropped", dropped, emails[dropped.id], "req1", NOW, reason="Spam Content"))
    report = deliver(site, keys, words, NOW)
    assert report.outcomes["settled"] == 5 and report.outcomes["dropped"] == 1
    with unit_of_work(site.factory) as session:
        ledger.record(
            session,
            [
                Mark(retried.id, DeliveryStatus.PENDING, None, "HTTP 503"),
                Mark(doubted.id, DeliveryStatus.UNCERTAIN, None, "uncertain: TimeoutError"),
                Mark(failed.id, DeliveryStatus.FAILED, None, "HTTP 400"),
                Mark(answered.id, DeliveryStatus.SENT, "req1"),
                Mark(dropped.id, DeliveryStatus.SENT, "req1"),
            ],
        )
    assert ledger_of(site, [d.id for d in rows]) == [
        ("sent", "processed", "req1"),
        ("sent", "processed", "req1"),
        ("sent", "processed", "req1"),
        ("sent", "processed", "req1"),
        ("failed", "dropped", "req1"),
    ]
    with unit_of_work(site.factory) as session:
        assert ledger.recover(session, edition_id, timedelta(0), "here:2:2") == (0, 0)
        assert ledger.resend_uncertain(session, edition_id, None) == {}
        assert ledger.claim(session, edition_id, "here:2:2#1", 100)  # the others, never these
    assert ledger_of(site, [d.id for d in rows])[0][0] == "sent"


def test_bounces_drops_and_complaints_settle_a_dead_senders_deliveries(newsroom, keys) -> None:
    site = with_webhook(newsroom, keys)
    edition_id = prepared(site)
    rows, emails = claimed_and_handed(site, edition_id, 4)
    bounced, complained, dropped, gone = rows
    words = [
        entry("bounce", bounced, emails[bounced.id], "req1", NOW, type="bounce", reason="550 5.1.1 no user"),
        entry("spamreport", complained, emails[complained.id], "req1", NOW),
        entry("dropped", dropped, emails[dropped.id], "req1", NOW, reason="Spam Content"),
        entry("dropped", gone, emails[gone.id], "req1", NOW, reason="Bounced Address"),
    ]
    report = deliver(site, keys, words, NOW)
    assert report.outcomes["bounced"] == 2 and report.outcomes["complained"] == 1
    with unit_of_work(site.factory) as session:
        assert ledger.recover(session, edition_id, timedelta(0), "here:2:2") == (0, 0)
    assert ledger_of(site, [d.id for d in rows]) == [
        ("sent", "bounce", "req1"),  # it went; the mailbox refused it
        ("sent", "spamreport", "req1"),
        ("failed", "dropped", "req1"),  # the provider will not send it
        ("failed", "dropped", "req1"),
    ]
    with site.factory() as session:
        assert (
            session.get_one(Delivery, dropped.id).detail
            == "settled by the provider's dropped event: Spam Content"
        )
        suppressed = set(session.scalars(select(Suppression.email)))
    assert suppressed == {emails[bounced.id], emails[complained.id], emails[gone.id]}


def test_an_event_for_a_delivery_sent_under_another_message_id_is_a_counted_duplicate(newsroom, keys) -> None:
    site = with_webhook(newsroom, keys)
    edition_id = prepared(site)
    rows, emails = claimed_and_handed(site, edition_id, 1)
    with unit_of_work(site.factory) as session:
        ledger.record(session, [Mark(rows[0].id, DeliveryStatus.SENT, "second")])
    report = deliver(site, keys, [entry("processed", rows[0], emails[rows[0].id], "first", NOW)], NOW)
    assert report.outcomes["duplicate"] == 1
    assert ledger_of(site, [rows[0].id]) == [("sent", "processed", "second")]


def test_a_word_kept_but_not_acted_on_is_never_sent_again_by_the_operators_resend(newsroom) -> None:
    """As the upgrade that began keeping the provider's word leaves a store: deliveries still
    sending or uncertain whose events came before. `send --resend-uncertain` makes them sent
    (failed for a drop), never pending; what no event told of goes again."""
    edition_id = prepared(newsroom)
    rows, _emails = claimed_and_handed(newsroom, edition_id, 4)
    sending, uncertain, dropped, unknown = (d.id for d in rows)
    with unit_of_work(newsroom.factory) as session:
        session.execute(
            update(Delivery).where(Delivery.id.in_([uncertain, unknown])).values(status="uncertain")
        )
        for delivery_id, word in ((sending, "processed"), (uncertain, "delivered"), (dropped, "dropped")):
            session.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id)
                .values(provider_event=word, provider_event_at=NOW)
            )
    with unit_of_work(newsroom.factory) as session:
        assert ledger.resend_uncertain(session, None, None) == {edition_id: 1}
    assert [status for status, _word, _id in ledger_of(newsroom, [sending, uncertain, dropped, unknown])] == [
        "sent",
        "sent",
        "failed",
        "pending",
    ]


def test_the_upgrade_keeps_the_word_of_events_that_came_before_and_recovery_settles_them(newsroom) -> None:
    """A store from before this revision: a dead sender's deliveries whose events came while
    they were sending (counted, nothing recorded), one already uncertain, one put back to be
    sent again, one dropped. The upgrade gives each its word; the next send's recovery settles
    them (the one put back at once) instead of sending them again."""
    edition_id = prepared(newsroom)
    rows, _emails = claimed_and_handed(newsroom, edition_id, 5)
    sending, uncertain, put_back, dropped, unmatched = rows
    engine = make_engine(newsroom.settings.database_url)
    try:
        migrate(engine, "downgrade", "0012-1")  # as the store was before
        with engine.begin() as connection:
            connection.execute(
                update(DELIVERIES).where(DELIVERIES.c.id == uncertain.id).values(status="uncertain")
            )
            connection.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id == put_back.id)
                .values(status="pending", detail=f"{ledger.RESENT}: nothing told whether it went")
            )
            told = [
                (sending, "processed", "confirmed"),
                (uncertain, "delivered", "confirmed"),
                (put_back, "processed", "confirmed"),
                (dropped, "processed", "confirmed"),
                (dropped, "dropped", "dropped"),
                (unmatched, "processed", "unmatched"),  # its delivery id, another reader's address
            ]
            connection.execute(
                insert(PROVIDER_EVENTS),
                [
                    {
                        "provider": "sendgrid",
                        "event_id": f"e{number}",
                        "event": kind,
                        "delivery_id": delivery.id,
                        "edition_id": delivery.edition_id,
                        "subscriber_id": delivery.subscriber_id,
                        "happened_at": NOW + timedelta(seconds=number),
                        "received_at": NOW + timedelta(seconds=number),
                        "outcome": outcome,
                    }
                    for number, (delivery, kind, outcome) in enumerate(told)
                ],
            )
        migrate(engine, "upgrade", "head")
    finally:
        engine.dispose()
    ids = [d.id for d in rows]
    assert [(status, word) for status, word, _id in ledger_of(newsroom, ids)] == [
        ("sending", "processed"),
        ("uncertain", "delivered"),
        ("sent", "processed"),  # nobody held it: settled by the upgrade itself
        ("sending", "dropped"),
        ("sending", None),
    ]
    with unit_of_work(newsroom.factory) as session:
        assert ledger.recover(session, edition_id, timedelta(0), "here:2:2") == (0, 1)  # the unmatched
    assert [status for status, _word, _id in ledger_of(newsroom, ids)] == [
        "sent",
        "sent",
        "sent",
        "failed",
        "uncertain",
    ]
