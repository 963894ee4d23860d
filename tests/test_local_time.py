"""Local-time delivery (issue #25, point 2): a weekly with `local_time = true` reaches readers in
Helsinki, Lisbon and New York each at 07:00 their time, exactly once, in waves: across restarts,
with two schedulers, a manual send in between, a zone change and an unsubscribe between waves,
a wave missed while the job was down, and the changes of time per zone."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from newsletter.cli.output import waves_line
from newsletter.editions.waves import moment
from newsletter.services import editions, history, sending, subscribers, timetable
from newsletter.store import waves
from newsletter.store.models import Delivery, Edition, Subscriber, SubscriberNewsletter
from newsletter.store.statuses import DeliveryStatus, EditionStatus
from tests.conftest import WEEKLY_NOV_23
from tests.support.schedule import runner
from tests.support.sending import with_settings

ZONES = ("Europe/Helsinki", "Europe/Lisbon", "America/New_York")
# Monday 23 November 2026, 07:00 in each zone (the site's slot is 07:00 Brussels, 06:00 UTC).
HELSINKI = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
LISBON = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
NEW_YORK = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def local(runtime, **weekly: object) -> None:
    """The weekly in local time, and its active readers spread over the three zones."""
    newsletters = runtime.settings.model_dump()["newsletters"]
    newsletters["weekly"] = {**newsletters["weekly"], "local_time": True, **weekly}
    runtime.settings = with_settings(runtime, newsletters=newsletters)
    with runtime.factory.begin() as session:
        ids = session.scalars(
            select(Subscriber.id)
            .join(SubscriberNewsletter, SubscriberNewsletter.subscriber_id == Subscriber.id)
            .where(Subscriber.status == "active", SubscriberNewsletter.newsletter == "weekly")
            .order_by(Subscriber.id)
        ).all()
        for n, subscriber_id in enumerate(ids):
            session.execute(
                update(Subscriber).where(Subscriber.id == subscriber_id).values(timezone=ZONES[n % 3])
            )


def sent(runtime) -> dict[str, list[str]]:
    """The addresses mailed so far, by zone (each address as many times as it was mailed)."""
    found: dict[str, list[str]] = {}
    folder = runtime.settings.outbox_dir
    for path in sorted(folder.glob("edition-*/*.eml")) if folder.is_dir() else []:
        found.setdefault("all", []).append(path.name)
    with runtime.factory() as session:
        for email, zone in session.execute(
            select(Subscriber.email, Subscriber.timezone)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.status == DeliveryStatus.SENT)
        ):
            found.setdefault(zone or "site", []).append(email)
    return found


def edition(runtime) -> Edition:
    with runtime.factory() as session:
        return session.scalars(
            select(Edition).where(Edition.newsletter == "weekly", Edition.slot == "2026-11-23T07:00")
        ).one()


def job(runtime, at: datetime):
    return runner(runtime, at).edition("weekly", reschedule=False)


def wake(runtime, at: datetime) -> datetime:
    return {j.job_id: j.next_run for j in timetable.jobs(runtime, at)}["edition:weekly"]


@pytest.mark.both_databases
def test_three_zones_each_mailed_at_seven_their_time_once_in_waves(newsroom) -> None:
    local(newsroom)
    assert wake(newsroom, HELSINKI - timedelta(hours=3)) == HELSINKI  # prepared for the first wave
    assert job(newsroom, HELSINKI - timedelta(minutes=1)).action == "nothing"
    assert job(newsroom, HELSINKI).action == "wave"
    first = sent(newsroom)
    assert set(first) == {"all", "Europe/Helsinki"} and len(first["all"]) == len(first["Europe/Helsinki"]) > 0
    assert wake(newsroom, HELSINKI) == LISBON
    # A restart before the next wave, a manual send, the job waking early: nothing more goes.
    assert job(newsroom, LISBON - timedelta(minutes=1)).action == "nothing"
    report = sending.send(
        newsroom,
        "weekly",
        LISBON - timedelta(minutes=1),
        edition(newsroom).id,
        due_by=LISBON - timedelta(minutes=1),
    )
    assert report.sent == 0 and sent(newsroom) == first
    assert job(newsroom, LISBON).action == "wave"
    second = sent(newsroom)
    assert set(second) == {"all", "Europe/Helsinki", "Europe/Lisbon"}
    assert edition(newsroom).status == EditionStatus.SENDING
    summary = editions.edition(newsroom, edition(newsroom).id)
    shown = summary.waves
    assert shown and (shown.done, shown.total, shown.next, shown.last) == (2, 3, NEW_YORK, NEW_YORK)
    told = waves_line(summary, newsroom.settings.zone)  # `editions`, `deliveries` and `status` say
    assert told == (
        f"edition {summary.edition.id} in waves: 2 of 3 done; next 2026-11-23 13:00 CET "
        f"({shown.waiting} readers waiting); last 2026-11-23 13:00 CET"
    )
    assert history.report(newsroom, summary.edition.id).edition.waves == shown  # the editors' page
    assert wake(newsroom, LISBON) == NEW_YORK
    assert job(newsroom, NEW_YORK).action == "sent"
    last = sent(newsroom)
    assert set(last) == {"all", *ZONES} and len(last["all"]) == len(set(last["all"]))  # each once
    assert sum(len(last[z]) for z in ZONES) == len(last["all"])
    assert edition(newsroom).status == EditionStatus.COMPLETE
    assert job(newsroom, NEW_YORK + timedelta(minutes=5)).action == "nothing"
    assert wake(newsroom, NEW_YORK) > NEW_YORK + timedelta(days=6)  # the next Monday's first wave


@pytest.mark.both_databases
def test_a_zone_change_and_an_unsubscribe_between_waves_are_honoured(newsroom, tmp_path) -> None:
    local(newsroom)
    assert job(newsroom, HELSINKI).action == "wave"
    with newsroom.factory() as session:
        by_zone = {
            zone: session.scalars(
                select(Subscriber.email).where(Subscriber.timezone == zone).order_by(Subscriber.email)
            ).all()
            for zone in ZONES
        }
    mover, leaver = by_zone["Europe/Lisbon"][0], by_zone["America/New_York"][0]
    imported = by_zone["Europe/Lisbon"][1]  # moved by an import
    subscribers.add(newsroom, mover, LISBON - timedelta(hours=1), timezone="America/New_York")
    (tmp_path / "moved.csv").write_text(f"email,timezone\n{imported},America/New_York\n")
    assert subscribers.import_file(newsroom, tmp_path / "moved.csv").updated == 1
    subscribers.remove(newsroom, leaver, LISBON + timedelta(hours=1))
    job(newsroom, LISBON)
    after_lisbon = sent(newsroom)
    assert not any(
        who in after_lisbon[zone] for zone in ZONES if zone in after_lisbon for who in (mover, imported)
    )
    job(newsroom, NEW_YORK)
    mailed = sent(newsroom)
    assert mover in mailed["America/New_York"] and leaver not in mailed["America/New_York"]
    assert imported in mailed["America/New_York"]
    with newsroom.factory() as session:
        left = session.scalar(select(Delivery.status).join(Subscriber).where(Subscriber.email == leaver))
    assert left == DeliveryStatus.SUPPRESSED
    assert edition(newsroom).status == EditionStatus.COMPLETE


@pytest.mark.both_databases
def test_a_missed_wave_is_recorded_and_one_within_the_grace_goes(newsroom) -> None:
    local(newsroom)
    week_before = HELSINKI - timedelta(days=7)
    assert job(newsroom, week_before + timedelta(hours=3)).action == "nothing"  # before its first edition
    with newsroom.factory.begin() as session:  # the newsletter began the week before
        session.add(
            Edition(
                newsletter="weekly",
                slot="2026-11-16T07:00",
                window_start=week_before - timedelta(days=7),
                window_end=week_before,
                status=EditionStatus.COMPLETE,
            )
        )
    late = LISBON + timedelta(minutes=10)  # down since before Helsinki's wave; back inside Lisbon's grace
    assert (
        runner(newsroom, late, misfire_grace_minutes=60, alerts_to="ops@example.org")
        .edition("weekly", reschedule=False)
        .action
        == "wave"
    )
    mailed = sent(newsroom)
    assert "Europe/Helsinki" not in mailed and mailed["Europe/Lisbon"]
    with newsroom.factory() as session:
        details = set(
            session.scalars(
                select(Delivery.detail).join(Subscriber).where(Subscriber.timezone == "Europe/Helsinki")
            )
        )
    assert details == {waves.MISSED}
    job(newsroom, NEW_YORK)
    assert edition(newsroom).status == EditionStatus.COMPLETE


@pytest.mark.both_databases
def test_two_schedulers_send_each_wave_once(newsroom) -> None:
    local(newsroom)
    newsroom.settings = with_settings(
        newsroom, sending={**newsroom.settings.sending.model_dump(), "lease_minutes": 0.1}
    )
    for at in (HELSINKI, LISBON, NEW_YORK):
        jobs = [runner(newsroom, at), runner(newsroom, at)]
        threads = [threading.Thread(target=j.edition, args=("weekly", False)) for j in jobs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    mailed = sent(newsroom)
    assert len(mailed["all"]) == len(set(mailed["all"])) == sum(len(mailed[z]) for z in ZONES)
    assert edition(newsroom).status == EditionStatus.COMPLETE


@pytest.mark.parametrize(
    ("zone", "day", "at", "instant"),
    [
        # spring forward: an hour the clocks skip goes when the wall clock would have shown it
        ("America/New_York", "2027-03-14", "02:30", datetime(2027, 3, 14, 7, 30, tzinfo=UTC)),
        ("Europe/Lisbon", "2027-03-28", "01:30", datetime(2027, 3, 28, 1, 30, tzinfo=UTC)),
        ("Europe/Helsinki", "2027-03-28", "03:30", datetime(2027, 3, 28, 1, 30, tzinfo=UTC)),
        # autumn: the repeated hour goes once, at its first occurrence
        ("America/New_York", "2026-11-01", "01:30", datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
        ("Europe/Lisbon", "2026-10-25", "01:30", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        ("Europe/Helsinki", "2026-10-25", "03:30", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        # a plain day either side of the change
        ("Europe/Helsinki", "2026-11-23", "07:00", HELSINKI),
    ],
)
def test_each_zone_keeps_the_slot_rules_through_the_changes_of_time(zone, day, at, instant) -> None:
    assert moment(f"{day}T07:00", at, ZoneInfo(zone)) == instant


def test_the_weekly_slot_is_on_the_readers_own_date() -> None:
    assert WEEKLY_NOV_23.astimezone(UTC) == datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    assert moment("2026-11-23T07:00", "07:00", ZoneInfo("Pacific/Auckland")) == datetime(
        2026, 11, 22, 18, 0, tzinfo=UTC
    )


@pytest.mark.both_databases
def test_a_held_edition_misses_no_wave_and_released_sends_those_passed(newsroom) -> None:
    local(newsroom)
    assert job(newsroom, HELSINKI).action == "wave"
    with newsroom.factory.begin() as session:
        session.execute(update(Edition).values(held_at=HELSINKI, held_by="ed@example.org"))
    assert job(newsroom, LISBON + timedelta(hours=2)).action == "held"
    assert set(sent(newsroom)) == {"all", "Europe/Helsinki"}
    with newsroom.factory.begin() as session:
        session.execute(update(Edition).values(released_at=LISBON + timedelta(hours=3)))
    assert job(newsroom, LISBON + timedelta(hours=3)).action == "wave"  # Lisbon's, late but not missed
    assert set(sent(newsroom)) == {"all", "Europe/Helsinki", "Europe/Lisbon"}


@pytest.mark.both_databases
def test_a_begun_wave_s_tail_and_a_deferred_reader_go_however_late(newsroom) -> None:
    """A wave some sender began is not missed when its tail goes past the grace (a long wave, a
    second scheduler coming late), nor is a reader whose mailbox asked for a later try."""
    local(newsroom)
    assert job(newsroom, HELSINKI).action == "wave"
    with newsroom.factory.begin() as session:
        ids = session.scalars(
            select(Delivery.id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.timezone == "Europe/Helsinki", Delivery.status == DeliveryStatus.SENT)
            .order_by(Delivery.id)
        ).all()
        assert len(ids) >= 3
        tail = dict(status=DeliveryStatus.PENDING, attempts=0, sent_at=None, handed_at=None)
        session.execute(update(Delivery).where(Delivery.id.in_(ids[1:-1])).values(**tail))  # never claimed
        deferred = dict(tail, attempts=3, detail="451 greylisted", retry_at=LISBON - timedelta(minutes=1))
        session.execute(update(Delivery).where(Delivery.id == ids[-1]).values(**deferred))
    job(newsroom, LISBON)  # more than the grace after Helsinki's wave
    with newsroom.factory() as session:
        found = dict(session.execute(select(Delivery.id, Delivery.status).where(Delivery.id.in_(ids))).all())
    assert set(found.values()) == {DeliveryStatus.SENT}, found


def test_a_grace_of_zero_misses_no_wave_run_a_moment_late(newsroom) -> None:
    local(newsroom)
    scheduler = newsroom.settings.model_dump()["scheduler"]
    newsroom.settings = with_settings(newsroom, scheduler={**scheduler, "misfire_grace_minutes": 0})
    assert job(newsroom, HELSINKI).action == "wave"
    assert job(newsroom, LISBON + timedelta(milliseconds=5)).action == "wave"
    assert sent(newsroom)["Europe/Lisbon"]
    with newsroom.factory() as session:
        assert waves.MISSED not in set(session.scalars(select(Delivery.detail)))


@pytest.mark.both_databases
def test_a_wave_a_day_from_the_site_s_slot_still_goes(newsroom) -> None:
    """A daily from Auckland (+13) to Pago Pago (-11): a reader's 07:00 is 24 hours after the
    site's, past the next slot; the job still sends that wave and completes the edition."""
    newsletters = newsroom.settings.model_dump()["newsletters"]
    newsletters["weekly"] = {
        **newsletters["weekly"],
        "local_time": True,
        "days": "*",
        "at": "07:00",
        "first_window_days": 366,
    }
    newsroom.settings = with_settings(newsroom, newsletters=newsletters, timezone="Pacific/Auckland")
    with newsroom.factory.begin() as session:  # half of them there, half in the site's zone
        ids = session.scalars(select(Subscriber.id).order_by(Subscriber.id)).all()
        session.execute(
            update(Subscriber).where(Subscriber.id.in_(ids[1::2])).values(timezone="Pacific/Pago_Pago")
        )
    at = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    while at < datetime(2026, 11, 25, 20, 0, tzinfo=UTC):
        runner(newsroom, at).edition("weekly", reschedule=False)
        at += timedelta(minutes=30)
    with newsroom.factory() as session:
        stuck = session.scalars(
            select(Edition.slot).where(
                Edition.status.in_((EditionStatus.READY, EditionStatus.SENDING)),
                Edition.slot < "2026-11-24",
            )
        ).all()
        left = session.scalar(
            select(func.count()).where(
                Delivery.status == DeliveryStatus.PENDING,
                Delivery.due_at < datetime(2026, 11, 25, 12, tzinfo=UTC),
            )
        )
    assert stuck == [] and left == 0
    assert sent(newsroom)["Pacific/Pago_Pago"]
