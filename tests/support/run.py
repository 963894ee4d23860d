"""`newsletter run` as an operator runs it: a project whose weekly slot was five minutes ago, the
job started as a real process and told when it is ready, stopped by SIGTERM."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from newsletter.cli.run import READY
from tests.conftest import ROOT, SAMPLE
from tests.support.waiting import until

__all__ = ["until"]  # the tests of processes wait with it too

SECRET = "test-secret-key-0123456789"


def environment(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return {**base, "NEWSLETTER_SECRET_KEY": SECRET, "COLUMNS": "200", **extra}


def cli(*args: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        env=environment(**extra),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def project(
    tmp_path: Path,
    readers: int = 0,
    database: str = "sqlite:///../subscribers/newsletter.db",
    weekly: str = "",
    zone: str = "",
    **extra: str,
) -> Path:
    """A site whose weekly newsletter's slot was five minutes ago, with the demo's readers and
    `readers` more (in time zone `zone`: empty, the site's); the settings file's path. `weekly`
    goes in the newsletter's table, `extra` in its [sending] table."""
    folder = tmp_path / "project"
    (folder / "config").mkdir(parents=True)
    slot = datetime.now(UTC) - timedelta(minutes=5)  # a real process runs on real time
    sending = "".join(f"{key} = {value}\n" for key, value in extra.items())
    config = folder / "config" / "newsletter.toml"
    config.write_text(
        f'database_url = "{database}"\noutbox_dir = "../outbox"\ntimezone = "UTC"\npublic_url = "https://news.example"\n'
        '[site]\ncategories = ["Politics", "Health", "Europe", "Business", "Technology", "Culture", "Human Rights"]\n'
        f'[newsletters.weekly]\ntitle = "Weekly"\ndays = "*"\nat = "{slot:%H:%M}"\nfirst_window_days = 366\n{weekly}'
        f"[sending]\n{sending}"
        "[scheduler]\nrefresh_minutes = 60.0\n"
        + "".join(f'[[feeds]]\nurl = "{SAMPLE / name}"\n' for name in ("site.xml", "trending.xml"))
    )
    csv = folder / "readers.csv"
    demo = (ROOT / "subscribers" / "demo-subscribers.csv").read_text()
    rows = (
        demo.replace("weekly;daily", "weekly").replace(",daily,", ",weekly,").splitlines()
    )  # one newsletter
    if zone:  # the demo's columns, then a timezone column: empty (the site's) on the demo's rows
        rows = [f"{rows[0]},timezone", *(f"{row}," for row in rows[1:])]
    rows += [
        f"reader{i:04d}@example.com,Reader {i},en,,weekly,active{f',{zone}' if zone else ''}"
        for i in range(readers)
    ]
    csv.write_text("\n".join(rows) + "\n")
    assert cli("--config", str(config), "fetch", cwd=tmp_path).returncode == 0
    imported = cli("--config", str(config), "subscribers", "import", str(csv), "--confirmed", cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    return config


@dataclass
class Job:
    process: subprocess.Popen
    said: list[str] = field(default_factory=list)  # standard output read before the end


def start(config: Path, cwd: Path, command: str = "run", **extra: str) -> Job:
    """`newsletter run`, once it says it is ready (its signal handlers are in place by then)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "--config", str(config), command],
        env=environment(**extra),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    job = Job(process)
    if command == "run":
        job.said = lines_until(process, READY)
    return job


def lines_until(process: subprocess.Popen, wanted: str, seconds: float = 90) -> list[str]:
    """Standard output, line by line, until a line says `wanted` (read from the pipe itself: a
    buffered reader would hold lines that no select() tells of)."""
    assert process.stdout is not None
    pipe = process.stdout.fileno()
    read = b""
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        while wanted.encode() not in read:
            left = deadline - time.monotonic()
            assert left > 0, f"never said {wanted!r}: {read!r}"
            if selector.select(left):
                chunk = os.read(pipe, 65536)
                assert chunk, f"ended without saying {wanted!r}: {read!r}"
                read += chunk
    return read.decode().splitlines(keepends=True)


def stop(job: Job, within: float = 20) -> tuple[str, str]:
    """SIGTERM, and a clean exit within `within` seconds; what it printed."""
    began = time.monotonic()
    job.process.send_signal(signal.SIGTERM)
    out, err = job.process.communicate(timeout=60)
    took = time.monotonic() - began
    assert job.process.returncode == 0, err
    assert took < within, f"took {took:.1f} s to stop: {err[-2000:]}"
    return "".join(job.said) + out, err


def files(config: Path) -> list[Path]:
    return sorted((config.parent.parent / "outbox").glob("edition-*/*.eml"))


def editions(config: Path, **extra: str) -> list[tuple[str, dict[str, int]]]:
    """Each edition's status and its deliveries per status (that are not 0)."""
    listed = cli("--config", str(config), "editions", "--json", cwd=config.parent, **extra)
    return [
        (e["status"], {status: n for status, n in e["deliveries"].items() if n})
        for e in json.loads(listed.stdout)
    ]
