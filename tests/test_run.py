"""`newsletter run` as an operator runs it: a real process, real time, real signals.

The schedule puts a slot a few minutes before now, so a job started now is inside the grace
and sends at once; SIGTERM stops it between batches; a restart finishes what was left."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.cli import newsletter, run_cli
from tests.support.run import editions, environment, files, project, start, stop, until

pytestmark = pytest.mark.e2e


def test_run_sends_a_due_slot_once_from_another_directory_and_stops_cleanly(tmp_path) -> None:
    """End to end: `newsletter run` as the service manager starts it (another working directory,
    the real scheduler's timers, SIGTERM), which no in-process call shows."""
    config = project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    job = start(config, elsewhere)
    until(lambda: len(files(config)) == 10)
    out, _err = stop(job)
    assert "edition:weekly: next" in out
    assert (config.parent.parent / "subscribers" / "newsletter.db").is_file()
    assert list(elsewhere.iterdir()) == []
    again = start(config, elsewhere)  # a restart, ready: the slot is sent, nothing goes twice
    stop(again)
    assert len(files(config)) == 10
    assert editions(config) == [("complete", {"sent": 10})]


def test_sigterm_during_a_send_then_a_restart_mails_everyone_once(tmp_path) -> None:
    """The outbox takes 500 a batch; at 250 a second the sender then waits two seconds, and the
    SIGTERM comes while it waits with the next batch claimed."""
    config = project(tmp_path, readers=1200, rate="250")
    job = start(config, tmp_path)
    until(lambda: len(files(config)) >= 500)
    stop(job)
    halfway = len(files(config))
    assert 500 <= halfway < 1210
    [(status, _counts)] = editions(config)
    assert status == "sending"
    again = start(config, tmp_path)  # a started edition is finished, whatever the time
    until(lambda: len(files(config)) == 1210)
    stop(again)
    names = [path.name for path in files(config)]
    assert len(names) == len(set(names)) == 1210  # one file per reader
    assert editions(config) == [("complete", {"sent": 1210})]


@pytest.mark.postgres
def test_two_schedulers_on_one_postgresql_send_one_edition_once(tmp_path, postgres_database) -> None:
    """End to end: two `newsletter run` processes on one PostgreSQL, each its own interpreter
    and connections, fire at the same slot; each reader is mailed once."""
    from tests.conftest import _truncate

    _truncate(postgres_database)
    config = project(tmp_path, readers=300, database=postgres_database)
    jobs = [start(config, tmp_path), start(config, tmp_path)]
    until(lambda: len(files(config)) == 310)
    until(lambda: editions(config)[0][0] == "complete")  # the edition closed: nothing more comes
    for job in jobs:
        stop(job)
    names = [path.name for path in files(config)]
    assert len(names) == len(set(names)) == 310
    assert editions(config) == [("complete", {"sent": 310})]


@pytest.mark.postgres
def test_two_schedulers_on_postgresql_send_a_local_time_wave_once_and_the_next_not_early(
    tmp_path, postgres_database
) -> None:
    """End to end: two `newsletter run` processes on one PostgreSQL, a local-time weekly whose
    site-zone readers' wave came five minutes ago and whose Cape Verde readers' (UTC-1) comes
    in 55 minutes: the due wave goes once, the other waits, across a restart too."""
    from tests.conftest import _truncate

    _truncate(postgres_database)
    config = project(
        tmp_path,
        readers=50,
        database=postgres_database,
        weekly="local_time = true\n",
        zone="Atlantic/Cape_Verde",
    )
    jobs = [start(config, tmp_path), start(config, tmp_path)]
    until(lambda: len(files(config)) == 10)
    for job in jobs:
        stop(job)
    again = start(config, tmp_path)  # a restart within the grace: the wave is done, the next ahead
    stop(again)
    names = [path.name for path in files(config)]
    assert len(names) == len(set(names)) == 10
    assert editions(config) == [("sending", {"pending": 50, "sent": 10})]


def test_status_check_tells_a_monitoring_system(tmp_path) -> None:
    """End to end: the exit status a monitoring system reads from a real `newsletter status
    --check` process, beside a running job's settings. A new site's slot before its first
    edition is not late; once the newsletter has begun, a slot past the grace is."""
    config = project(tmp_path)
    env = environment()
    checked = run_cli("--config", str(config), "status", "--check", env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout  # inside the grace: nothing wrong yet
    late = config.read_text().replace("[scheduler]\n", "[scheduler]\nmisfire_grace_minutes = 1.0\n")
    config.write_text(late)
    checked = run_cli("--config", str(config), "status", "--check", env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout  # before the newsletter's first edition
    slot = re.search(r'at = "(\d\d):(\d\d)"', late)  # the weekly goes every day at this time
    assert slot is not None
    hour, minute = int(slot[1]), int(slot[2])
    now = datetime.now(UTC)  # a real process runs on real time
    today = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    yesterday = (today if today <= now else today - timedelta(days=1)) - timedelta(days=1)
    sent = newsletter("--config", str(config), "send", "--at", yesterday.isoformat(), env=env, cwd=tmp_path)
    assert sent.returncode == 0, sent.stderr  # yesterday's edition: the newsletter has begun
    checked = run_cli("--config", str(config), "status", "--check", env=env, cwd=tmp_path)
    assert checked.returncode == 1 and "has not gone out" in checked.stdout
