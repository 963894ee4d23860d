"""`make faults`: the fault-injection run of issue #19, as one table.

Real processes (`python -m newsletter send|serve --config ...`) against loopback servers: an
aiosmtpd relay answering each command after 20 ms and the loopback SendGrid v3 API, both in
this process, each remembering what it received. Each scenario kills, stops or floods at a
chosen moment, resumes as an operator would, then holds the ledger against what the relay or
the API actually received. `make faults FAULTS_ARGS=WORD` runs the scenarios whose name has
that word. The table goes to standard output and test-artifacts/faults.md.

Columns: readers mailed after their one-click was acknowledged (200); readers mailed more than
once whom the ledger never reported `uncertain`; readers the ledger held (`uncertain` or
`sending`) after the resume who had received nothing; readers mailed twice once
`uncertain_minutes` had passed with the provider's events in (SendGrid).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table

from tests.support.population import ROOT, populate, sample_store
from tests.support.relay import Relay, start_relay
from tests.support.serving import one_click, serve_process

READERS = 2000
VARIANTS = 20
SLOT = datetime(2026, 11, 23, 7, tzinfo=ZoneInfo("Europe/Brussels"))
KEY = "faults-secret-key-0123456789"
API_KEY = "SG.test-key"
API_LATENCY = 0.25
UNCERTAIN_MINUTES = 0.05  # 3 s: the window after which an unsettled delivery is sent again
OUTAGE_SECONDS = 20
BURST = 40
PROCESS_SECONDS = 240  # no command is waited for longer; then it is killed and said so
POSTGRES_URL = os.environ.get("NEWSLETTER_TEST_POSTGRES_URL")
ARTIFACT = ROOT / "test-artifacts" / "faults.md"

COLUMNS = (
    "scenario",
    "readers",
    "mailed after unsubscribe acknowledged",
    "duplicates not reported uncertain",
    "held, never handed over",
    "mailed twice after uncertain_minutes (events in)",
    "ledger (per status) / received",
    "seconds",
    "notes",
)


@dataclass
class Row:
    scenario: str
    readers: int = READERS
    after_ack: str = "n/a"
    unreported: str = ""
    held: str = ""
    twice: str = "n/a"
    ledger: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def cells(self) -> list[str]:
        return [
            self.scenario,
            f"{self.readers:,}",
            self.after_ack,
            self.unreported,
            self.held,
            self.twice,
            self.ledger,
            f"{self.seconds:.0f}",
            "; ".join(self.notes),
        ]


def reader_id(address: str) -> int:
    return int(address.split("@")[0].removeprefix("reader"))


class Bed:
    """One scenario's bench: a folder, a store with a prepared edition, the servers and the
    processes it started (all stopped at the end, whatever happened)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: list[subprocess.Popen] = []
        self.stops: list[Callable[[], None]] = []
        self.runtime = None
        self.edition_id = 0
        self.env: dict[str, str] = {}
        self.logs = 0

    def store(self, database_url: str | None = None) -> None:
        from newsletter.editions.compose import Composer
        from newsletter.editions.edition import open_edition
        from newsletter.editions.prepare import prepare

        self.runtime = runtime = sample_store(self.folder, database_url)
        self.stops.append(runtime.close)
        populate(runtime, READERS, VARIANTS)
        with runtime.factory() as session, session.begin():
            edition = open_edition(session, runtime.settings, "weekly", SLOT)
            prepare(session, runtime.settings, edition, Composer(runtime.settings.templates_path()))
            self.edition_id = edition.id

    def config(self, provider: str, sending: dict[str, object] | None = None) -> Path:
        lines = [
            f'database_url = "{self.runtime.settings.database_url}"',
            f'outbox_dir = "{self.folder / "outbox"}"',
            'timezone = "Europe/Brussels"',
            provider,
            "[sending]",
            *(f"{name} = {json.dumps(value)}" for name, value in (sending or {}).items()),
        ]
        path = self.folder / "faults.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def cli(self, *args: str) -> subprocess.Popen:
        """`python -m newsletter ARGS --config faults.toml`, its output in a log file."""
        clean = {name: value for name, value in os.environ.items() if not name.startswith("NEWSLETTER_")}
        self.logs += 1
        log = (self.folder / f"{self.logs:02d}-{args[0]}.log").open("wb")
        running = subprocess.Popen(
            [sys.executable, "-m", "newsletter", *args, "--config", str(self.folder / "faults.toml")],
            env={**clean, "NEWSLETTER_SECRET_KEY": KEY, "PYTHONUNBUFFERED": "1", **self.env},
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        running.log = log.name  # type: ignore[attr-defined]
        log.close()
        self.processes.append(running)
        return running

    def send(self, *args: str) -> tuple[int | None, str]:
        """`newsletter send ARGS` to its end (at most PROCESS_SECONDS): exit status, last line."""
        return self.finish(self.cli("send", *args))

    def finish(self, running: subprocess.Popen, seconds: float = PROCESS_SECONDS) -> tuple[int | None, str]:
        """Its exit status (None: it had not ended after `seconds` and was killed), last line."""
        try:
            code: int | None = running.wait(seconds)
        except subprocess.TimeoutExpired:
            running.kill()
            running.wait(30)
            code = None
        return code, last_line(running)

    def statuses(self) -> dict[int, str]:
        from sqlalchemy import select

        from newsletter.store.models import Delivery

        with self.runtime.factory() as session:
            rows = session.execute(
                select(Delivery.subscriber_id, Delivery.status).where(Delivery.edition_id == self.edition_id)
            ).all()
        return {subscriber: str(status) for subscriber, status in rows}

    def close(self) -> None:
        for running in self.processes:
            if running.poll() is None:
                running.kill()
                running.wait(30)
        stops, self.stops = self.stops, []
        for stop in reversed(stops):
            try:
                stop()
            except Exception as exc:  # one server that will not stop must not keep the others up
                print(f"stopping: {exc}", file=sys.stderr)


def traceback_in(running: subprocess.Popen) -> bool:
    return "Traceback" in Path(running.log).read_text(errors="replace")  # type: ignore[attr-defined]


def last_line(running: subprocess.Popen) -> str:
    text = Path(running.log).read_text(errors="replace").strip()  # type: ignore[attr-defined]
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip()[:160] if lines else ""


class Books:
    """The ledger looked at after each resume, against what was received by then."""

    def __init__(self, bed: Bed, received: Callable[[], dict[int, int]]) -> None:
        self.bed = bed
        self.received = received
        self.ever_uncertain: set[int] = set()
        self.held_unhanded: set[int] = set()
        self.last: dict[int, str] = {}

    def look(self) -> dict[int, str]:
        self.last = self.bed.statuses()
        counts = self.received()
        for subscriber, status in self.last.items():
            if status == "uncertain":
                self.ever_uncertain.add(subscriber)
            if status in ("uncertain", "sending") and not counts.get(subscriber):
                self.held_unhanded.add(subscriber)
        return self.last

    def uncertain(self) -> int:
        return sum(status == "uncertain" for status in self.last.values())

    def fill(self, row: Row) -> Row:
        self.look()
        counts = self.received()
        twice = {subscriber for subscriber, count in counts.items() if count > 1}
        row.unreported = str(len(twice - self.ever_uncertain))
        row.held = str(len(self.held_unhanded))
        per_status = Counter(self.last.values())
        lost = sum(
            status == "sent" and not counts.get(subscriber) for subscriber, status in self.last.items()
        )
        row.ledger = (
            ", ".join(f"{status} {count}" for status, count in sorted(per_status.items()))
            + f" / {sum(counts.values())} received by {len(counts)}"
            + (f"; {lost} 'sent' never received" if lost else "")
            + (f"; {len(twice)} twice" if twice else "")
        )
        return row


def relay_counts(relay: Relay) -> Callable[[], dict[int, int]]:
    return lambda: {reader_id(address): count for address, count in relay.counts().items()}


def kill(holder: dict[str, subprocess.Popen]) -> Callable[[], None]:
    def act() -> None:
        os.kill(holder["process"].pid, signal.SIGKILL)

    return act


def smtp_line(port: int) -> str:
    return f'provider = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {port}\nsmtp_tls = "none"'


def with_relay(bed: Bed) -> tuple[Relay, int]:
    relay, controller, port = start_relay(0.02)
    bed.stops.append(controller.stop)
    return relay, port


def resume(bed: Bed, books: Books, row: Row) -> None:
    """`send --edition` again, then `send --resend-uncertain` if the ledger holds uncertain ones."""
    edition = str(bed.edition_id)
    code, line = bed.send("--edition", edition)
    row.notes.append(f"rerun exit {code} ({line})")
    books.look()
    if books.uncertain():
        held = books.uncertain()
        code, line = bed.send("--resend-uncertain", edition)
        row.notes.append(f"{held} uncertain; --resend-uncertain exit {code}")


# --- the scenarios -------------------------------------------------------------------------

SCENARIOS: dict[str, Callable[[Bed], Row]] = {}


def scenario(name: str) -> Callable:
    def register(function: Callable[[Bed], Row]) -> Callable:
        SCENARIOS[name] = function
        return function

    return register


# SMTP kill moments: as the 30th message's MAIL comes; as the 1,000th's RCPT comes; once the
# 1,500th's DATA is in, before its answer goes (the answer is lost with the sender).
SMTP_MOMENTS = {"early": ("mail", 30), "middle": ("rcpt", 1000), "after-DATA": ("data", 1500)}


def smtp_kill(bed: Bed, moment: str) -> Row:
    row = Row(f"smtp-kill {moment}")
    bed.store()
    relay, port = with_relay(bed)
    bed.config(smtp_line(port))
    victim: dict[str, subprocess.Popen] = {}
    stage, number = SMTP_MOMENTS[moment]
    relay.at(stage, number, kill(victim))
    victim["process"] = bed.cli("send", "--edition", str(bed.edition_id))
    code, _line = bed.finish(victim["process"])
    row.notes.append(f"killed at {stage} of message {number} (exit {code}), {relay.messages} received")
    books = Books(bed, relay_counts(relay))
    resume(bed, books, row)
    return books.fill(row)


for _moment in SMTP_MOMENTS:
    scenario(f"smtp-kill {_moment}")(lambda bed, moment=_moment: smtp_kill(bed, moment))


# SendGrid kill moments (20 requests of 100 readers, 8 in flight): as the 2nd request arrives
# (it is never accepted); once the 10th is accepted, its answer lost; 50 ms after the 17th's answer.
SENDGRID_MOMENTS = {"early": ("request", 2), "middle": ("accepted", 10), "after-answer": ("answered", 17)}


def key_pair() -> tuple[object, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(public).decode()


def post_events(address: str, private, entries: list[dict]) -> list[int]:
    """The API's events as the Event Webhook posts them, signed, 500 a POST; the answers."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from newsletter.sending.events import SIGNATURE_HEADER, TIMESTAMP_HEADER

    answers = []
    for first in range(0, len(entries), 500):
        body = json.dumps(entries[first : first + 500]).encode()
        timestamp = str(int(time.time()))
        signature = private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        request = urllib.request.Request(address + "/webhooks/sendgrid", data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header(SIGNATURE_HEADER, base64.b64encode(signature).decode())
        request.add_header(TIMESTAMP_HEADER, timestamp)
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                answers.append(answer.status)
        except urllib.error.HTTPError as exc:
            answers.append(exc.code)
    return answers


def events_read(bed: Bed, seconds: float = 30) -> bool:
    """Every stored event POST read by the web app (at most `seconds`)."""
    from sqlalchemy import func, select

    from newsletter.store.models import WebhookBatch

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with bed.runtime.factory() as session:
            left = session.scalar(
                select(func.count()).select_from(WebhookBatch).where(WebhookBatch.processed_at.is_(None))
            )
        if not left:
            return True
        time.sleep(0.2)
    return False


def sendgrid_kill(bed: Bed, moment: str) -> Row:
    from tests.sendgrid_server import MailAPI, start

    row = Row(f"sendgrid-kill {moment}")
    bed.store()
    private, public = key_pair()
    server, address = serve_process(
        bed.folder,
        bed.runtime.settings.database_url,
        KEY,
        1,
        {"NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY": public},
    )
    bed.processes.append(server)
    server.log = str(bed.folder / "serve.log")  # type: ignore[attr-defined]
    api, http = start(MailAPI(latency=API_LATENCY))
    http.handle_error = lambda *_: None  # type: ignore[method-assign]  # answers to a dead sender
    bed.stops.append(http.shutdown)
    bed.env = {"NEWSLETTER_SENDGRID_API_KEY": API_KEY, "NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY": public}
    provider = f'provider = "sendgrid"\nsendgrid_host = "{api.host}"'
    bed.config(provider, {"sendgrid_batch": 100})  # uncertain_minutes: the default, a day
    victim: dict[str, subprocess.Popen] = {}
    when, number = SENDGRID_MOMENTS[moment]

    def on_request(n: int) -> bool:
        if when == "request" and n == number:
            kill(victim)()
            return False
        return True

    def on_accepted(n: int) -> bool:
        if when == "accepted" and n == number:
            kill(victim)()
            return False
        if when == "answered" and n == number:
            threading.Timer(0.05, kill(victim)).start()
        return True

    api.on_request, api.on_accepted = on_request, on_accepted
    victim["process"] = bed.cli("send", "--edition", str(bed.edition_id))
    code, _line = bed.finish(victim["process"])
    time.sleep(API_LATENCY * 2 + 0.5)  # the requests still in the API are answered (to nobody)
    api.on_request = api.on_accepted = None
    with api.lock:
        taken, entries = len(api.accepted), list(api.events)
    row.notes.append(f"killed at {when} {number} (exit {code}); the API had taken {taken}")
    answers = post_events(address, private, entries)
    read = events_read(bed)
    row.notes.append(f"{len(entries)} processed events posted {dict(Counter(answers))}, read: {read}")

    def received() -> dict[int, int]:
        with api.lock:
            return dict(Counter(reader_id(address) for address in api.recipients()))

    books = Books(bed, received)
    code, line = bed.send("--edition", str(bed.edition_id))
    held = books.look()
    row.notes.append(f"rerun exit {code}: {dict(Counter(held.values()))}")
    # a day later, as it were: the window shortened to 3 s, and that long waited
    bed.config(provider, {"sendgrid_batch": 100, "uncertain_minutes": UNCERTAIN_MINUTES})
    time.sleep(UNCERTAIN_MINUTES * 60 + 1)
    before = received()
    code, line = bed.send("--edition", str(bed.edition_id))
    books.look()
    row.notes.append(f"after uncertain_minutes: exit {code} ({line})")
    again = received()
    row.twice = str(sum(count > before.get(s, 0) and before.get(s, 0) > 0 for s, count in again.items()))
    return books.fill(row)


for _moment in SENDGRID_MOMENTS:
    scenario(f"sendgrid-kill {_moment}")(lambda bed, moment=_moment: sendgrid_kill(bed, moment))


@contextmanager
def postgres_database(bed: Bed) -> Iterator[str]:
    """A database of the scenario's own on the machine's PostgreSQL, dropped at the end."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    assert POSTGRES_URL
    name = f"faults_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        bed.close()  # its processes and engines first: they hold connections
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def outage(database_url: str, seconds: float, window: list[float]) -> None:
    """The database refuses every connection for `seconds`: new ones, and those open are ended."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = make_url(database_url).database
    admin = create_engine(
        make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    ended = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(text(ended), {"name": name})
            window.append(time.time())
            time.sleep(seconds)
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            window.append(time.time())
    finally:
        admin.dispose()


@scenario("store-outage (PostgreSQL)")
def store_outage(bed: Bed) -> Row:
    row = Row("store-outage")
    with postgres_database(bed) as url:
        bed.store(url)
        relay, port = with_relay(bed)
        bed.config(smtp_line(port))
        window: list[float] = []
        stopper = threading.Thread(target=outage, args=(url, OUTAGE_SECONDS, window), daemon=True)
        relay.at("data", 500, stopper.start)
        sender = bed.cli("send", "--edition", str(bed.edition_id))
        code, line = bed.finish(sender)
        if stopper.ident is not None:  # started: the send got that far
            stopper.join(OUTAGE_SECONDS + 30)
        during = (
            sum(window[0] <= t <= window[1] for times in relay.received.values() for t in times)
            if len(window) == 2
            else "?"
        )
        row.notes.append(
            f"store down {OUTAGE_SECONDS} s from message 500: {during} messages received meanwhile; "
            f"send exit {code} ({line}{'; a traceback' if traceback_in(sender) else ''})"
        )
        books = Books(bed, relay_counts(relay))
        resume(bed, books, row)
        return books.fill(row)


@scenario("one-click-burst (SQLite)")
def one_click_burst(bed: Bed) -> Row:
    from newsletter.subscribers.tokens import sign

    row = Row("one-click-burst")
    bed.store()
    server, address = serve_process(bed.folder, bed.runtime.settings.database_url, KEY, 1)
    bed.processes.append(server)
    server.log = str(bed.folder / "serve.log")  # type: ignore[attr-defined]
    relay, port = with_relay(bed)
    bed.config(smtp_line(port))
    answers: list[tuple[int, int | str, float, float]] = []  # reader, status, acknowledged at, took

    def ask(subscriber: int) -> None:
        url = f"{address}/unsubscribe/{sign(KEY.encode(), 'unsubscribe', subscriber, scope='weekly')}"
        began = time.time()
        try:
            status: int | str = one_click(url, timeout=30)
        except OSError as exc:
            status = type(exc).__name__
        answers.append((subscriber, status, time.time(), time.time() - began))

    def burst() -> None:
        # a spread of readers whose batch is not claimed yet: each should get nothing
        waiting = sorted(s for s, status in bed.statuses().items() if status == "pending")
        chosen = waiting[:: max(1, len(waiting) // BURST)][:BURST]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(ask, chosen))

    asker = threading.Thread(target=burst, daemon=True)
    relay.at("data", 200, asker.start)
    code, line = bed.send("--edition", str(bed.edition_id))
    if asker.ident is not None:
        asker.join(120)
    row.notes.append(f"send exit {code} ({line})")
    late = []  # per reader mailed after its 200: how long after
    for subscriber, status, acknowledged, _took in answers:
        mailed = relay.received.get(f"reader{subscriber}@example.com", [])
        if status == 200 and mailed and max(mailed) > acknowledged:
            late.append(max(mailed) - acknowledged)
    row.after_ack = f"{len(late)} of {sum(a[1] == 200 for a in answers)}"
    slow = sum(a[3] > 1 for a in answers)
    refused = Counter(str(a[1]) for a in answers if a[1] != 200)
    row.notes.append(
        f"{len(answers)} one-clicks: {slow} took > 1 s (longest {max((a[3] for a in answers), default=0):.1f} s), "
        f"not 200: {dict(refused) or 0}; mailed up to {max(late, default=0):.1f} s after the 200"
    )
    books = Books(bed, relay_counts(relay))
    books.look()
    return books.fill(row)


@scenario("two-schedulers (two senders, PostgreSQL)")
def two_schedulers(bed: Bed) -> Row:
    from sqlalchemy import func, select

    from newsletter.store.models import Delivery

    row = Row("two-schedulers")
    with postgres_database(bed) as url:
        bed.store(url)
        relay, port = with_relay(bed)
        bed.config(smtp_line(port))
        victim: dict[str, subprocess.Popen] = {}
        killed: list[float] = []

        def act() -> None:
            kill(victim)()
            victim["process"].wait()  # reaped, as its parent would: a zombie's pid still answers
            killed.append(time.monotonic())

        relay.at("data", 700, act)
        victim["process"] = bed.cli("send", "--edition", str(bed.edition_id))
        survivor = bed.cli("send", "--edition", str(bed.edition_id))
        pid = victim["process"].pid
        picked, left, deadline = None, None, time.monotonic() + PROCESS_SECONDS
        while time.monotonic() < deadline:
            if killed:
                with bed.runtime.factory() as session:
                    left = session.scalar(
                        select(func.count())
                        .select_from(Delivery)
                        .where(
                            Delivery.edition_id == bed.edition_id,
                            Delivery.status == "sending",
                            Delivery.claimed_by.like(f"%:{pid}:%"),
                        )
                    )
                if not left:
                    picked = time.monotonic() - killed[0]
                    break
                if survivor.poll() is not None and time.monotonic() - killed[0] > 60:
                    break  # the survivor is gone and nobody else will pick them up now
            time.sleep(0.5)
        code, line = bed.finish(survivor)
        waited = time.monotonic() - killed[0] if killed else 0.0
        checking = bed.cli("status", "--check")
        check, _said = bed.finish(checking, 60)
        # today's own slot may be a problem too: what matters is whether it names the stuck edition
        named = "2026-11-23" in Path(checking.log).read_text(errors="replace")  # type: ignore[attr-defined]
        row.notes.append(
            "one killed at message 700; its claims "
            + (
                f"picked up after {picked:.1f} s"
                if picked is not None
                else f"not picked up in {waited:.0f} s ({left} still 'sending')"
            )
            + f"; survivor exit {code} ({line}); then `status --check` exit {check}, "
            + ("naming" if named else "not naming")
            + " the stuck edition"
        )
        books = Books(bed, relay_counts(relay))
        books.look()
        row.notes.append(f"after the survivor: {dict(Counter(books.last.values()))}")
        if any(status != "sent" for status in books.last.values()):
            resume(bed, books, row)
        return books.fill(row)


def run(name: str) -> Row:
    """One scenario in a folder of its own; FAULTS_KEEP=1 keeps the folder (logs, SQLite file)."""
    began = time.monotonic()
    keep = bool(os.environ.get("FAULTS_KEEP"))
    folder = tempfile.mkdtemp(prefix="faults-")
    bed = Bed(Path(folder))
    try:
        row = SCENARIOS[name](bed)
    except Exception as exc:
        row = Row(name, notes=[f"failed: {type(exc).__name__}: {exc}"[:300]])
    finally:
        bed.close()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    if keep:
        row.notes.append(f"kept in {folder}")
    row.seconds = time.monotonic() - began
    return row


def main() -> None:
    console = Console(width=250)
    words = sys.argv[1:]
    rows: list[Row] = []
    for name in SCENARIOS:
        if words and not any(word in name for word in words):
            continue
        if "PostgreSQL" in name and not POSTGRES_URL:
            rows.append(Row(name, notes=["skipped: NEWSLETTER_TEST_POSTGRES_URL is unset"]))
            continue
        console.print(f"running: {name}", style="dim")
        rows.append(run(name))
        console.print("  " + " | ".join(rows[-1].cells()), markup=False, style="dim")
    table = Table(title=f"newsletter fault injection ({os.cpu_count()} cores)")
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*row.cells())
    console.print(table)
    ARTIFACT.parent.mkdir(exist_ok=True)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row.cells()) + " |" for row in rows]
    ARTIFACT.write_text("# newsletter fault injection\n\n" + "\n".join(lines) + "\n")
    console.print(f"written to {ARTIFACT.relative_to(ROOT)}", style="dim")


if __name__ == "__main__":
    main()
