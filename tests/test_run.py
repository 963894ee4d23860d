"""`newsletter run` as an operator runs it: a real process, real time, real signals.

The schedule puts a slot a few minutes before now, so a job started now is inside the grace
and sends at once; SIGTERM stops it between batches; a restart finishes what was left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE
from tests.support.cli import run_cli

SECRET = "test-secret-key-0123456789"


def project(
    tmp_path: Path, readers: int = 0, database: str = "sqlite:///../subscribers/newsletter.db", **extra: str
) -> Path:
    """A site whose weekly newsletter's slot was five minutes ago, with the demo's readers and
    `readers` more; the settings file's path."""
    folder = tmp_path / "project"
    (folder / "config").mkdir(parents=True)
    slot = datetime.now(UTC) - timedelta(minutes=5)
    sending = "".join(f"{key} = {value}\n" for key, value in extra.items())
    config = folder / "config" / "newsletter.toml"
    config.write_text(
        f'database_url = "{database}"\noutbox_dir = "../outbox"\ntimezone = "UTC"\n'
        '[site]\ncategories = ["Politics", "Health", "Europe", "Business", "Technology", "Culture", "Human Rights"]\n'
        f'[newsletters.weekly]\ntitle = "Weekly"\ndays = "*"\nat = "{slot:%H:%M}"\nfirst_window_days = 366\n'
        f"[sending]\n{sending}"
        "[scheduler]\nrefresh_minutes = 60.0\n"
        + "".join(f'[[feeds]]\nurl = "{SAMPLE / name}"\n' for name in ("site.xml", "trending.xml"))
    )
    csv = folder / "readers.csv"
    demo = (ROOT / "subscribers" / "demo-subscribers.csv").read_text()
    rows = (
        demo.replace("weekly;daily", "weekly").replace(",daily,", ",weekly,").splitlines()
    )  # one newsletter
    rows += [f"reader{i:04d}@example.com,Reader {i},en,,weekly,active" for i in range(readers)]
    csv.write_text("\n".join(rows) + "\n")
    env = environment()
    assert run_cli("--config", str(config), "fetch", env=env, cwd=tmp_path).returncode == 0
    imported = run_cli(
        "--config", str(config), "subscribers", "import", str(csv), "--confirmed", env=env, cwd=tmp_path
    )
    assert imported.returncode == 0, imported.stderr
    return config


def environment() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return {**base, "NEWSLETTER_SECRET_KEY": SECRET, "COLUMNS": "200"}


def start(config: Path, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--config", str(config), "run"],
        env=environment(),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def until(condition: Callable[[], bool], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> tuple[str, str]:
    began = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert time.monotonic() - began < 20  # a clean exit within seconds
    return out, err


def files(config: Path) -> list[Path]:
    return sorted((config.parent.parent / "outbox").glob("edition-*/*.eml"))


def editions(config: Path) -> list[tuple[str, dict[str, int]]]:
    """Each edition's status and its deliveries per status (that are not 0)."""
    listed = run_cli("--config", str(config), "editions", "--json", env=environment(), cwd=config.parent)
    return [
        (e["status"], {status: n for status, n in e["deliveries"].items() if n})
        for e in json.loads(listed.stdout)
    ]


def test_run_sends_a_due_slot_once_from_another_directory_and_stops_cleanly(tmp_path) -> None:
    config = project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    job = start(config, elsewhere)
    until(lambda: len(files(config)) == 10)
    out, _err = stop(job)
    assert "edition:weekly: next" in out
    assert (config.parent.parent / "subscribers" / "newsletter.db").is_file()
    assert list(elsewhere.iterdir()) == []
    again = start(config, elsewhere)  # a restart: the slot is sent, nothing goes twice
    time.sleep(3)
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
    from tests.conftest import _truncate

    _truncate(postgres_database)
    config = project(tmp_path, readers=300, database=postgres_database)
    jobs = [start(config, tmp_path), start(config, tmp_path)]
    until(lambda: len(files(config)) == 310)
    time.sleep(1)
    for job in jobs:
        stop(job)
    names = [path.name for path in files(config)]
    assert len(names) == len(set(names)) == 310
    assert editions(config) == [("complete", {"sent": 310})]


def test_status_check_tells_a_monitoring_system(tmp_path) -> None:
    config = project(tmp_path)
    env = environment()
    checked = run_cli("--config", str(config), "status", "--check", env=env, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout  # inside the grace: nothing wrong yet
    late = config.read_text().replace("[scheduler]\n", "[scheduler]\nmisfire_grace_minutes = 1.0\n")
    config.write_text(late)
    checked = run_cli("--config", str(config), "status", "--check", env=env, cwd=tmp_path)
    assert checked.returncode == 1 and "has not gone out" in checked.stdout
