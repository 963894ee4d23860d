"""The scheduled job's decisions, taken from the database with a clock of the test's own: one
edition per slot whoever asks, a missed slot told and its news kept, partial editions and failing
feeds alerted, old delivery rows pruned with their counts kept."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from newsletter.services import editions, timetable
from newsletter.store.models import Delivery, Edition
from newsletter.store.statuses import DeliveryStatus, EditionStatus
from tests.conftest import WEEKLY_NOV_23, ZONE
from tests.support.schedule import mails, runner
from tests.support.sending import add_readers, recipients_of, statuses, with_settings


@pytest.mark.both_databases
def test_a_slot_goes_out_once_whoever_asks(newsroom) -> None:
    job = runner(newsroom, WEEKLY_NOV_23 + timedelta(minutes=3))
    first = job.edition("weekly", reschedule=False)
    assert first.action == "sent" and first.report and first.report.status == "complete"
    assert job.edition("weekly", reschedule=False).action == "nothing"  # the refresh that follows
    job.refresh()
    with newsroom.factory() as session:
        assert (
            session.scalar(select(func.count()).select_from(Edition).where(Edition.newsletter == "weekly"))
            == 1
        )


@pytest.mark.both_databases
def test_two_schedulers_at_the_same_slot_send_each_reader_once(newsroom) -> None:
    at = WEEKLY_NOV_23 + timedelta(seconds=5)
    # A lease of 6 s: the scheduler that finds the other's batch in flight looks again every
    # quarter lease (1.5 s), not every 5 s; the heartbeat still speaks four times a lease.
    newsroom.settings = with_settings(
        newsroom, sending={**newsroom.settings.sending.model_dump(), "lease_minutes": 0.1}
    )
    jobs = [runner(newsroom, at), runner(newsroom, at)]
    threads = [threading.Thread(target=job.edition, args=("weekly", False)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    [edition] = editions.editions(newsroom)
    assert edition.edition.status == "complete" and edition.counts == {DeliveryStatus.SENT: 9}
    folder = newsroom.settings.outbox_dir / f"edition-{edition.edition.id}"
    assert len(list(folder.glob("*.eml"))) == 9


def test_a_slot_missed_inside_the_grace_goes_out_and_outside_it_is_told(newsroom) -> None:
    inside = runner(newsroom, WEEKLY_NOV_23 + timedelta(minutes=50), misfire_grace_minutes=60)
    assert inside.edition("weekly", reschedule=False).action == "sent"
    late = WEEKLY_NOV_23 + timedelta(days=7, minutes=61)  # the 30 November slot, an hour and a minute late
    outside = runner(newsroom, late, misfire_grace_minutes=60, alerts_to="ops@example.org")
    run = outside.edition("weekly", reschedule=False)
    assert run.action == "missed"
    with newsroom.factory() as session:
        missed = session.scalars(select(Edition).where(Edition.slot == "2026-11-30T07:00")).one()
        assert missed.status == EditionStatus.MISSED
        assert (
            session.scalar(select(func.count()).select_from(Delivery).where(Delivery.edition_id == missed.id))
            == 0
        )
    assert any("2026-11-30 07:00 CET is missed" in problem for problem in timetable.problems(newsroom, late))
    [alerted] = mails(newsroom)
    assert alerted["To"] == "ops@example.org" and "was missed" in alerted["Subject"]
    # The next edition covers the missed week: nothing of it is lost.
    following = editions.next_edition(newsroom, "weekly", late).edition
    assert following.slot == "2026-12-07T07:00"
    assert following.window_start == WEEKLY_NOV_23


@pytest.mark.both_databases
def test_a_new_site_has_missed_nothing_before_its_first_edition(newsroom) -> None:
    """The issue's first hour: the slots of 16 November (weekly and daily) passed, past the
    grace, before either newsletter's first edition. `status` sees no problem, the first run
    records nothing missed and tells nobody; the first edition is the next slot's."""
    late = WEEKLY_NOV_23 - timedelta(days=7) + timedelta(hours=3)
    assert timetable.problems(newsroom, late) == []  # `status` before the first run
    job = runner(newsroom, late, alerts_to="ops@example.org")
    job.refresh()  # what `newsletter run` does first: fetch, then each newsletter's slot
    with newsroom.factory() as session:
        assert session.scalars(select(Edition)).all() == []  # nothing missed on the past editions page
    assert mails(newsroom) == [] and timetable.problems(newsroom, late) == []
    assert editions.next_edition(newsroom, "weekly", late).edition.slot == "2026-11-23T07:00"
    on_time = runner(newsroom, WEEKLY_NOV_23 + timedelta(minutes=5), alerts_to="ops@example.org")
    assert on_time.edition("weekly", reschedule=False).action == "sent"  # the first edition
    assert mails(newsroom) == []


def test_a_partial_edition_sends_the_operators_an_email(newsroom) -> None:
    with newsroom.factory() as session, session.begin():
        from newsletter.store.models import Subscriber

        session.scalars(
            select(Subscriber).where(Subscriber.email == "tom.obrien@example.ie")
        ).one().email = "re:tom@example.ie"  # a row from before addresses were validated: it fails alone
    job = runner(newsroom, WEEKLY_NOV_23 + timedelta(minutes=1), alerts_to="ops@example.org")
    run = job.edition("weekly", reschedule=False)
    assert run.report and run.report.status == "partial"
    [alerted] = mails(newsroom)
    assert "ended partial" in alerted["Subject"]
    assert (
        f"newsletter deliveries {run.report.edition_id} --status failed"
        in alerted.get_body(("plain",)).get_content()
    )


@pytest.mark.both_databases
def test_a_stop_between_batches_leaves_the_edition_to_the_next_run(newsroom) -> None:
    add_readers(newsroom, 1200)  # three outbox batches
    job = runner(newsroom, WEEKLY_NOV_23 + timedelta(minutes=1))
    job.stop.set()  # asked to stop before the first batch goes
    stopped = job.edition("weekly", reschedule=False)
    assert stopped.report and stopped.report.status == "sending"
    again = runner(
        newsroom, WEEKLY_NOV_23 + timedelta(hours=5)
    )  # past the grace: a started edition is finished
    finished = again.edition("weekly", reschedule=False)
    assert finished.report and finished.report.status == "complete"
    assert statuses(newsroom, finished.report.edition_id) == {
        "sent": len(recipients_of(newsroom, finished.report.edition_id))
    }


@pytest.mark.both_databases
def test_pruning_keeps_the_counts(newsroom) -> None:
    job = runner(newsroom, WEEKLY_NOV_23 + timedelta(minutes=1))
    sent = job.edition("weekly", reschedule=False)
    assert sent.report
    before = editions.edition(newsroom, sent.report.edition_id).counts
    later = runner(newsroom, WEEKLY_NOV_23 + timedelta(days=200), retention_days=180)
    later.maintain()
    with newsroom.factory() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert editions.edition(newsroom, sent.report.edition_id).counts == before == {DeliveryStatus.SENT: 9}
    assert not (newsroom.settings.outbox_dir / f"edition-{sent.report.edition_id}").exists()


def test_each_jobs_next_run_comes_from_the_schedules(newsroom) -> None:
    at = datetime(2026, 11, 25, 12, 0, tzinfo=ZONE)
    found = {job.job_id: job.next_run for job in timetable.jobs(newsroom, at)}
    assert found["edition:weekly"] == datetime(2026, 11, 30, 7, 0, tzinfo=ZONE)
    assert found["edition:daily"] == datetime(2026, 11, 26, 6, 30, tzinfo=ZONE)
    assert found["maintenance"] == datetime(2026, 11, 26, 3, 30, tzinfo=ZONE)


def test_log_lines_as_json_for_a_collector(capsys) -> None:
    import json
    import logging

    from newsletter import logs

    logs.configure(json_lines=True)
    logging.getLogger("newsletter.schedule").warning(
        "feed %s failed: %s", "https://x.example/feed", "503 \x1b[2J"
    )
    [line] = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["level"] == "warning" and record["logger"] == "newsletter.schedule"
    assert record["message"] == "feed https://x.example/feed failed: 503  [2J" and record["time"].endswith(
        "+00:00"
    )


def test_the_jobs_table_skips_an_edition_sent_early(newsroom) -> None:
    """`send --now` sent the 23 November edition on the 22nd: the weekly job's next run is the
    30 November slot, the one that will actually go."""
    from newsletter.sending.providers.outbox import OutboxProvider
    from newsletter.services import sending

    early = datetime(2026, 11, 22, 12, 0, tzinfo=ZONE)
    provider = OutboxProvider(newsroom.settings.outbox_dir)
    assert sending.publish(newsroom, provider, "weekly", early, ahead_ok=True).status == "complete"
    found = {job.job_id: job.next_run for job in timetable.jobs(newsroom, early + timedelta(minutes=5))}
    assert found["edition:weekly"] == datetime(2026, 11, 30, 7, 0, tzinfo=ZONE)


def test_run_logs_say_what_happened_with_zoned_slots(make_runtime, caplog) -> None:
    """A new site's first refresh hours after a slot: the log says why nothing went; at the next
    slot, what was prepared, counted in good English; every slot with its zone."""
    import logging

    from tests.conftest import SAMPLE, SECTIONS

    runtime = make_runtime(
        feeds=[{"url": str(SAMPLE / "site.xml")}], site={"categories": SECTIONS}, timezone="Europe/Brussels"
    )
    add_readers(runtime, 1)
    caplog.set_level(logging.INFO, logger="newsletter")
    late = runner(runtime, WEEKLY_NOV_23 - timedelta(days=7) + timedelta(hours=5))
    late.fetch()
    run = late.edition("weekly", reschedule=False)
    assert run.action == "nothing"
    said = (
        "weekly edition of 2026-11-16 07:00 CET: nothing to send: its slot came before the newsletter's "
        "first edition"
    )
    assert said in caplog.messages
    runner(runtime, WEEKLY_NOV_23 + timedelta(minutes=3)).edition("weekly", reschedule=False)
    assert "weekly edition of 2026-11-23 07:00 CET: sent" in caplog.messages
    [prepared] = [m for m in caplog.messages if "prepared" in m]
    assert prepared.startswith(
        "the weekly edition of 2026-11-23 07:00 CET prepared: 1 recipient in 1 variant,"
    )
    assert not [m for m in caplog.messages if "T07:00" in m or "07:00:00+" in m]


def test_every_commands_log_lines_are_timed_in_the_sites_zone(tmp_path) -> None:
    """Not only `run`'s: a command's log lines carry the zone its printed times carry."""
    import re

    from tests.support.cli import newsletter

    config = tmp_path / "site.toml"
    config.write_text('timezone = "America/Chicago"\n[[feeds]]\nurl = "absent.xml"\n')
    fetched = newsletter("fetch", "--config", str(config), cwd=tmp_path)
    assert fetched.returncode == 1
    [line] = [line for line in fetched.stderr.splitlines() if "absent.xml" in line]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} C[DS]T ERROR newsletter.feeds: ", line), line


def test_plain_log_lines_name_their_zone(capsys) -> None:
    import logging
    import re

    from newsletter import logs

    logs.configure(interactive=False, zone=ZONE)
    logging.getLogger("newsletter.schedule").warning("a line")
    [line] = capsys.readouterr().err.splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} CES?T WARNING newsletter.schedule: a line", line
    )
