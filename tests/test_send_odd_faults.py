"""Faults a send meets at its edges, found by a review of the sending path: an answer that breaks
oddly after the API took the request, a sender thought dead that hands over while it is being
recovered, a store outage seen by the recorder's own thread, a stop while requests wait in the
pool. In each, the ledger says what happened and nobody is mailed twice."""

from __future__ import annotations

import http.client
import logging
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from newsletter.errors import StoreUnavailable
from newsletter.sending.providers.sendgrid import SendGridProvider
from newsletter.sending.sender import Sender
from newsletter.store import ledger
from newsletter.store.db import unit_of_work
from newsletter.store.models import DELIVERIES, Delivery, utcnow
from tests.support.sending import (
    FAST,
    Outage,
    Sink,
    add_readers,
    prepared,
    sendgrid_settings,
    smtp_send,
    smtp_server,
    statuses,
)
from tests.support.waiting import within


@pytest.mark.both_databases
def test_an_answer_cut_short_after_the_api_took_the_request_is_uncertain_not_sent_again(
    newsroom, mail_api, monkeypatch
) -> None:
    add_readers(newsroom, 4)
    edition_id = prepared(newsroom)
    settings = sendgrid_settings(newsroom, mail_api, sendgrid_batch=2, concurrency=1)
    real = http.client.HTTPResponse.read
    posted: list[int] = []

    def read(self, *args, **kwargs):
        posted.append(1)
        answer = real(self, *args, **kwargs)
        if len(posted) == 2:  # the API took it; its answer's body is cut short
            raise http.client.IncompleteRead(b"")
        return answer

    monkeypatch.setattr(http.client.HTTPResponse, "read", read)
    provider = SendGridProvider(settings)
    try:
        Sender(settings, newsroom.factory, provider, FAST).send(edition_id)
    finally:
        provider.close()
    assert statuses(newsroom, edition_id).get("uncertain", 0) >= 1  # that request's readers
    monkeypatch.setattr(http.client.HTTPResponse, "read", real)
    provider = SendGridProvider(settings)
    try:
        Sender(settings, newsroom.factory, provider, FAST).send(edition_id)
    finally:
        provider.close()
    assert max(Counter(mail_api.recipients()).values()) == 1


@pytest.mark.both_databases
def test_a_sender_thought_dead_that_hands_over_meanwhile_keeps_what_it_handed(newsroom) -> None:
    """Recovery reads the claims, then writes: a silent sender waking in between and handing its
    batch over is not put back to pending (it would be claimed and mailed again)."""
    if newsroom.engine.dialect.name != "postgresql":
        pytest.skip("the race needs two writers at once (PostgreSQL)")
    add_readers(newsroom, 2)
    edition_id = prepared(newsroom)
    silent = "otherhost:1:1:1#1"
    with unit_of_work(newsroom.factory) as session:
        ids = ledger.claim(session, edition_id, silent, 100)
        long_ago = utcnow() - timedelta(minutes=5)
        session.execute(update(DELIVERIES).where(DELIVERIES.c.id.in_(ids)).values(claimed_at=long_ago))
    handed: list[int] = []

    def wakes(_conn, _cursor, statement, _params, _context, _many) -> None:
        words = statement.upper().replace(" ", "")
        if words.startswith("UPDATEDELIVERIESSETSTATUS") and "CLAIMED_AT=" in words and not handed:
            with unit_of_work(newsroom.factory) as other:  # its gate hands the batch over, commits
                handed.extend(ledger.hand(other, ids, silent, "weekly")[0])

    event.listen(newsroom.engine, "before_cursor_execute", wakes)
    try:
        with unit_of_work(newsroom.factory) as session:
            ledger.recover(session, edition_id, timedelta(minutes=1), "me:2:2:1")
    finally:
        event.remove(newsroom.engine, "before_cursor_execute", wakes)
    assert handed
    with newsroom.factory() as session:
        found = session.scalars(select(Delivery.status).where(Delivery.id.in_(handed))).all()
    assert "pending" not in found


def test_a_store_outage_met_by_the_recorders_thread_logs_no_traceback(newsroom, caplog) -> None:
    add_readers(newsroom, 4)
    edition_id = prepared(newsroom)
    outage = Outage(newsroom)

    def met(_records=caplog.records) -> bool:
        return any("writing outcomes to the ledger failed" in r.getMessage() for r in list(_records))

    def on_data(number: int, _to: list[str]) -> None:
        if number == 1:
            outage.begin()
        else:  # the other connection's answer is slow: the recorder's thread may write first
            within(met, 0.3)

    caplog.set_level(logging.INFO)
    try:
        with smtp_server(Sink(on_data)) as port, pytest.raises(StoreUnavailable):
            smtp_send(newsroom, port, edition_id, smtp_connections=2, store_retry_seconds=0)
    finally:
        outage.end()
    assert not [record.getMessage() for record in caplog.records if record.exc_info]


def test_a_stop_posts_no_request_that_waits_in_the_pool(newsroom, mail_api) -> None:
    add_readers(newsroom, 10)
    edition_id = prepared(newsroom)
    settings = sendgrid_settings(newsroom, mail_api, sendgrid_batch=1, concurrency=1)
    stop = threading.Event()

    def on_request(number: int) -> bool:
        if number == 2:
            stop.set()  # SIGTERM while the second request is with the API
        return True

    mail_api.latency = 0.2
    mail_api.on_request = on_request
    provider = SendGridProvider(settings, stop)
    try:
        Sender(settings, newsroom.factory, provider, FAST, stop=stop).send(edition_id)
    finally:
        provider.close()
    assert mail_api.requests <= 3  # the one in flight and at most the one being posted
    assert "uncertain" not in statuses(newsroom, edition_id)  # what never went is pending
