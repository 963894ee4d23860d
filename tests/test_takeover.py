"""A dead sender's work is picked up within its lease (a minute), by any live sender or scheduler,
and nobody says "sent" before it is: in process, a rival sender's claims made silent at a time
of the test's choosing."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from newsletter.sending.pace import Pace
from newsletter.sending.providers import Handing, Report
from newsletter.sending.providers.outbox import OutboxProvider
from newsletter.sending.sender import OTHERS_POLL, Sender
from newsletter.services import schedule, timetable
from newsletter.settings import Settings
from newsletter.store import ledger
from newsletter.store.db import unit_of_work
from newsletter.store.ledger import Mark
from newsletter.store.models import Delivery, Edition
from newsletter.store.statuses import DeliveryStatus, EditionStatus
from tests.conftest import WEEKLY_NOV_23
from tests.support.editions import tally, weekly_edition

pytestmark = pytest.mark.both_databases

FAST = Pace(retry_delay=0.05, max_delay=0.05, base_delay=0.01)
RIVAL = "far.example:4242:1#1"  # another host's sender: only its silence tells it is dead
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


def rival_claims(
    runtime, edition_id: int, claims: int, handed: int, silent_since: datetime | None
) -> list[int]:
    """Another sender claims `claims` deliveries and hands `handed` of them to its provider; its
    heartbeat last spoke at `silent_since` (None: just now, it is alive)."""
    with unit_of_work(runtime.factory) as session:
        ids = ledger.claim(session, edition_id, RIVAL, claims)
        ledger.hand(session, ids[:handed], RIVAL, "weekly")
        if silent_since is not None:
            session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(claimed_at=silent_since))
    return ids


class Contested(OutboxProvider):
    """The outbox, five at a time; while it takes its first batch a rival claims some of the rest."""

    batch_size = 5

    def __init__(
        self, runtime, edition_id: int, claims: int, handed: int, silent_since: datetime | None
    ) -> None:
        super().__init__(runtime.settings.outbox_dir)
        self.rival = lambda: rival_claims(runtime, edition_id, claims, handed, silent_since)
        self.rivals: list[int] = []

    def send(self, batch, report: Report, handing: Handing | None = None) -> None:
        if not self.rivals:
            self.rivals = self.rival()
        super().send(batch, report, handing)


def written(runtime) -> int:
    return len(list(runtime.settings.outbox_dir.glob("edition-*/*.eml")))


def test_a_sender_takes_over_a_rival_gone_silent_mid_send(newsroom) -> None:
    edition_id = weekly_edition(newsroom, 30)
    readers = sum(tally(newsroom, edition_id).values())
    provider = Contested(newsroom, edition_id, claims=10, handed=4, silent_since=LONG_AGO)
    report = Sender(newsroom.settings, newsroom.factory, provider, FAST).send(edition_id)
    # What the rival never handed over is sent here; what it did may have gone: uncertain, not sent.
    assert tally(newsroom, edition_id) == {"sent": readers - 4, "uncertain": 4}
    assert written(newsroom) == readers - 4  # nobody twice
    assert (report.status, report.recovered, report.uncertain) == ("partial", 6, 4)


def test_a_sender_waits_for_a_live_rival_and_takes_nothing_of_it(newsroom) -> None:
    edition_id = weekly_edition(newsroom, 30)
    readers = sum(tally(newsroom, edition_id).values())
    provider = Contested(newsroom, edition_id, claims=5, handed=5, silent_since=None)
    waits: list[float] = []

    def rival_answers(seconds: float) -> None:  # while this sender waits, the rival's provider answers
        waits.append(seconds)
        with unit_of_work(newsroom.factory) as session:
            ledger.record(session, [Mark(i, DeliveryStatus.SENT, "rival") for i in provider.rivals])

    report = Sender(newsroom.settings, newsroom.factory, provider, FAST, sleep=rival_answers).send(edition_id)
    assert waits == [OTHERS_POLL]  # looked again soon: it did not leave before the rival was done
    assert (report.status, report.recovered, report.uncertain) == ("complete", 0, 0)
    assert tally(newsroom, edition_id) == {"sent": readers}
    assert written(newsroom) == readers - 5  # the rival's five went through its own provider


def test_status_check_tells_of_claims_silent_past_their_lease_and_the_scheduler_takes_them_over(
    newsroom,
) -> None:
    edition_id = weekly_edition(newsroom, 30)
    readers = sum(tally(newsroom, edition_id).values())
    with unit_of_work(newsroom.factory) as session:
        session.get_one(Edition, edition_id).status = EditionStatus.SENDING
    rival_claims(newsroom, edition_id, claims=10, handed=4, silent_since=None)
    with newsroom.factory() as session:
        spoke = session.scalar(select(func.max(Delivery.claimed_at)))
    held = "has 10 deliveries held by a sender silent since"
    assert not [p for p in timetable.problems(newsroom, spoke + timedelta(seconds=59)) if held in p]
    late = spoke + timedelta(seconds=61)  # the lease is a minute
    assert [p for p in timetable.problems(newsroom, late) if held in p] == [
        f"the weekly edition of 2026-11-23 07:00 CET {held} "
        f"{spoke.astimezone(newsroom.settings.zone):%Y-%m-%d %H:%M:%S %Z} (past its lease): a live sender "
        f"or `newsletter run` takes them over (at once: `newsletter send --edition {edition_id}`)"
    ]
    with unit_of_work(newsroom.factory) as session:  # as the scheduler sees it a minute later
        session.execute(update(Delivery).where(Delivery.claimed_by == RIVAL).values(claimed_at=LONG_AGO))
    runs = schedule.take_over(newsroom, late, threading.Event())
    assert [(run.action, run.newsletter, run.slot) for run in runs] == [("partial", "weekly", WEEKLY_NOV_23)]
    assert "4 uncertain" in (runs[0].problem or "")  # said, not "sent"
    assert tally(newsroom, edition_id) == {"sent": readers - 4, "uncertain": 4}
    assert not [p for p in timetable.problems(newsroom, late) if "held by a sender" in p]
    assert schedule.take_over(newsroom, late, threading.Event()) == []


def test_the_scheduler_says_sent_only_of_a_complete_edition(newsroom) -> None:
    weekly_edition(newsroom, 30)
    stop = threading.Event()
    stop.set()  # a shutdown: the sender gives its batch back and stops
    run = schedule.run_edition(newsroom, "weekly", WEEKLY_NOV_23 + timedelta(minutes=3), stop)
    assert run.action == "unfinished" and run.problem and "pending" in run.problem
    done = schedule.run_edition(newsroom, "weekly", WEEKLY_NOV_23 + timedelta(minutes=4), threading.Event())
    assert done.action == "sent" and done.report and done.report.status == "complete"


def test_the_lease_is_a_minute_unless_the_settings_say_otherwise() -> None:
    assert Pace.from_settings(Settings().sending).lease == timedelta(minutes=1)
    assert Pace.from_settings(Settings(sending={"lease_minutes": 5}).sending).lease == timedelta(minutes=5)


def test_a_heartbeat_does_not_wait_for_a_claim_being_marked(newsroom) -> None:
    """A beat renews what it can at once; a row another transaction holds (the sender's own mark
    being written) is left to it: on PostgreSQL a beat waiting there could close a deadlock."""
    edition_id = weekly_edition(newsroom, 6)
    with unit_of_work(newsroom.factory) as session:
        ids = ledger.claim(session, edition_id, "here:1:1#1", 6)
        session.execute(update(Delivery).where(Delivery.id.in_(ids)).values(claimed_at=LONG_AGO))
    if newsroom.factory.kw["bind"].dialect.name != "postgresql":  # SQLite: one writer, no row locks
        with unit_of_work(newsroom.factory) as session:
            ledger.renew(session, edition_id, "here:1:1")
    else:
        with newsroom.factory() as marking, marking.begin():
            marking.execute(
                update(Delivery).where(Delivery.id == ids[0]).values(detail="being marked")
            )  # holds that row's lock until the end of this block
            beat = threading.Thread(target=_beat, args=(newsroom, edition_id))
            beat.start()
            beat.join(timeout=10)
            assert not beat.is_alive(), "the heartbeat waited for a row another transaction holds"
    with newsroom.factory() as session:
        renewed = session.scalars(
            select(Delivery.id).where(Delivery.id.in_(ids), Delivery.claimed_at > LONG_AGO)
        )
        stale = set(ids) - set(renewed)
    assert stale == ({ids[0]} if newsroom.factory.kw["bind"].dialect.name == "postgresql" else set())


def _beat(runtime, edition_id: int) -> None:
    with unit_of_work(runtime.factory) as session:
        ledger.renew(session, edition_id, "here:1:1")
