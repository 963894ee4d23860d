"""`make bench`: speed and memory of the main jobs, each case in its own process, as a table.

Each case prints one JSON line; peak memory is the child's maximum resident set size (for a
start-up case, the command's).
"""

from __future__ import annotations

import functools
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tests.support.population import populate, sample_store, store
from tests.support.serving import one_click, serve_process

CASES: dict[str, Callable[[Path], dict[str, object]]] = {}


def case(name: str) -> Callable:
    def register(function: Callable[[Path], dict[str, object]]) -> Callable:
        CASES[name] = function
        return function

    return register


def big_feed(entries: int) -> bytes:
    """A WordPress-style feed of `entries` posts with ~4 KB bodies, like the live site's."""
    start = datetime(2026, 11, 22, tzinfo=UTC)
    paragraph = "<p>" + "The Council and Parliament reached a provisional agreement. " * 10 + "</p>"
    items = []
    for i in range(entries):
        link = f"https://www.europeantimes.example/2026/11/post-{i}/"
        items.append(
            f"<item><title>Article number {i} about European affairs</title><link>{link}</link>"
            f"<dc:creator><![CDATA[Author {i % 17}]]></dc:creator>"
            f"<pubDate>{format_datetime(start - timedelta(minutes=20 * i))}</pubDate>"
            f"<category><![CDATA[{['Politics', 'Health', 'Europe', 'Business', 'Culture', 'Technology'][i % 6]}]]></category>"
            f"<category><![CDATA[Tag {i % 50}]]></category>"
            f'<guid isPermaLink="false">https://www.europeantimes.example/?p={10000 + i}</guid>'
            f"<description><![CDATA[Summary of article {i}. [&#8230;]]]></description>"
            f'<content:encoded><![CDATA[<img src="/wp-content/uploads/{i}.jpg">{paragraph * 6}'
            f'<a href="/related/{i}/">Related</a>]]></content:encoded>'
            f"<slash:comments>{i % 40}</slash:comments></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:slash="http://purl.org/rss/1.0/modules/slash/">'
        "<channel><title>Big</title><link>https://www.europeantimes.example</link><language>en-US</language>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


# Fresh processes per start-up case: the median is their wall time.
STARTS = 7


def _starts(workdir: Path, *args: str) -> dict[str, object]:
    """`newsletter ARGS` as an operator types it, a fresh process STARTS times after one to warm
    the page cache, with the package compiled as an installed one is (whatever
    PYTHONDONTWRITEBYTECODE says): the median wall time, the median CPU time and the largest
    resident size of the command itself."""
    import compileall
    import statistics

    import newsletter

    compileall.compile_dir(Path(newsletter.__file__).parent, quiet=1)
    script = Path(sys.executable).parent / "newsletter"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "newsletter"]
    clean = {name: value for name, value in os.environ.items() if not name.startswith("NEWSLETTER_")}
    load = os.getloadavg()[0]
    walls, cpus, peaks = [], [], []
    for run in range(STARTS + 1):
        with (workdir / "stderr.log").open("wb") as stderr:
            began = time.perf_counter()
            process = subprocess.Popen(
                [*command, *args], stdout=subprocess.DEVNULL, stderr=stderr, env=clean, cwd=workdir
            )
            _pid, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - began
        if os.waitstatus_to_exitcode(status):
            said = (workdir / "stderr.log").read_text(errors="replace").strip()
            raise RuntimeError(f"newsletter {' '.join(args)}: {said[-300:]}")
        if run:
            walls.append(wall)
            cpus.append(usage.ru_utime + usage.ru_stime)
            peaks.append(usage.ru_maxrss / 1024)
    return {
        "seconds": statistics.median(walls),
        "peak_mb": max(peaks),
        "note": f"median of {STARTS} fresh processes (fastest {min(walls):.2f} s); CPU "
        f"{statistics.median(cpus):.2f} s (user + system); load average before {load:.1f}",
    }


@case("start-up: `newsletter --help`")
def help_start(workdir: Path) -> dict[str, object]:
    return _starts(workdir, "--help")


@case("start-up: `newsletter status` on a small SQLite store (sample articles, 1,000 readers, migrated)")
def status_start(workdir: Path) -> dict[str, object]:
    runtime = _populated(workdir, 1_000)  # migrated and filled beforehand: the command is measured
    settings = runtime.settings
    feeds = "".join(f'[[feeds]]\nurl = "{feed.url}"\n' for feed in settings.feeds)
    (workdir / "newsletter.toml").write_text(
        f'database_url = "{settings.database_url}"\ntimezone = "{settings.timezone}"\n{feeds}'
    )
    runtime.close()
    return _starts(workdir, "status", "--config", str(workdir / "newsletter.toml"))


@case("fetch: bundled sample (6 feeds, 58 articles)")
def fetch_sample(workdir: Path) -> dict[str, object]:
    from newsletter.ingest.run import fetch_feeds
    from newsletter.settings import load_settings

    sample = load_settings(Path("config/demo.toml"))
    runtime = store(workdir, [f.model_dump() for f in sample.feeds])
    began = time.perf_counter()
    reports = fetch_feeds(runtime.settings, runtime.factory)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "note": f"{sum(r.new for r in reports)} new articles"}


@case("fetch: 1,000-entry feed over loopback HTTP, first and second time")
def fetch_big(workdir: Path) -> dict[str, object]:
    from newsletter.ingest.run import fetch_feeds
    from tests.feedserver import Route, start

    state, server = start()
    body = big_feed(1000)
    state.routes["/feed/"] = Route(body=body)
    runtime = store(workdir, [{"url": state.url("/feed/")}])
    began = time.perf_counter()
    [first] = fetch_feeds(runtime.settings, runtime.factory)
    middle = time.perf_counter()
    [second] = fetch_feeds(runtime.settings, runtime.factory)
    end = time.perf_counter()
    server.shutdown()
    return {
        "seconds": middle - began,
        "note": f"{len(body) / 1e6:.1f} MB, {first.new} new; the same bytes again (no validators) "
        f"{(end - middle) * 1000:.0f} ms, {second.status}",
    }


@case("fetch: 50 refreshes, a hanging feed and two 10 MB garbage feeds (resident MB)")
def fetch_garbage(workdir: Path) -> dict[str, object]:
    """The scheduled job's memory over refreshes (issue #19: 134 MB grew to 377 MB in 7)."""
    from newsletter.ingest.run import fetch_feeds
    from tests.feedserver import Route, start
    from tests.support.memory import resident_mb

    state, server = start()
    garbage = os.urandom(10_000_000)
    state.routes["/hangs/"] = Route(body=b"<rss/>", delay=3600)
    state.routes["/garbage-1/"] = Route(body=garbage)
    state.routes["/garbage-2/"] = Route(body=garbage[::-1])
    del garbage
    feeds = [{"url": state.url(path)} for path in ("/hangs/", "/garbage-1/", "/garbage-2/")]
    runtime = store(workdir, feeds)
    runtime.settings.fetch.timeout_seconds = 1.0
    before = resident_mb()
    began = time.perf_counter()
    fetch_feeds(runtime.settings, runtime.factory)  # the warm-up: the store's caches, the pool
    fetch_feeds(runtime.settings, runtime.factory)
    first = resident_mb()
    sizes = []
    for _ in range(50):
        fetch_feeds(runtime.settings, runtime.factory)
        sizes.append(resident_mb())
    seconds = time.perf_counter() - began
    server.shutdown()
    return {
        "seconds": seconds / 52,
        "note": f"per refresh; resident {before:.0f} MB before, {first:.0f} after a warm-up and one, "
        f"at most {max(sizes):.0f} over the next 50 ({max(sizes) / first - 1:+.0%}), {sizes[-1]:.0f} at the end",
    }


@case("compose: edition for 100,000 subscribers in 200 variants (prepare: plan, compose, ledger)")
def compose_edition(workdir: Path) -> dict[str, object]:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from newsletter.editions import variants
    from newsletter.editions.compose import Composer
    from newsletter.editions.edition import open_edition
    from newsletter.editions.prepare import prepare

    runtime = _populated(workdir, 100_000)
    composer = Composer(runtime.settings.templates_path())
    slot = datetime(2026, 11, 23, 7, tzinfo=ZoneInfo("Europe/Brussels"))
    # The parts timed where prepare calls them: planning each kind of reader's digest, and
    # composing each digest (its view, templates and premailer); the rest is the ledger's. Each
    # in wall and CPU seconds (prepare runs in this one thread).
    spent = {"plan": [0.0, 0.0], "compose": [0.0, 0.0]}
    running: list[str] = []  # a digest's first build plans the whole list's, for its feed link

    def timed(part: str, function: Callable) -> Callable:
        def timing(*args: object, **kwargs: object) -> object:
            running.append(part)
            began = (time.perf_counter(), time.process_time())
            try:
                return function(*args, **kwargs)
            finally:
                took = (time.perf_counter() - began[0], time.process_time() - began[1])
                running.pop()
                for index, seconds in enumerate(took):
                    spent[part][index] += seconds
                    if running:  # each part counted once: the inner one's time is not the outer's
                        spent[running[-1]][index] -= seconds

        return timing

    variants.plan_digest = timed("plan", variants.plan_digest)
    variants.Variants.build = timed("compose", variants.Variants.build)
    began = (time.perf_counter(), time.process_time())
    with runtime.factory() as session, session.begin():
        edition = open_edition(session, runtime.settings, "weekly", slot)
        prepared = prepare(session, runtime.settings, edition, composer)
    whole = (time.perf_counter() - began[0], time.process_time() - began[1])
    compose, plan = spent["compose"], spent["plan"]
    rest = [whole[i] - compose[i] - plan[i] for i in (0, 1)]
    return {
        "seconds": whole[0],
        "note": f"{prepared.recipients} recipients, {prepared.variants} variants; wall (CPU) seconds: "
        f"compose {compose[0]:.2f} ({compose[1]:.2f}), {compose[0] / max(prepared.variants, 1) * 1000:.1f} ms "
        f"a variant; plan {plan[0]:.2f} ({plan[1]:.2f}); ledger and the rest {rest[0]:.2f} ({rest[1]:.2f}); "
        f"prepare {whole[0]:.2f} ({whole[1]:.2f})",
    }


@case("editors: the next edition's page, 200 variants, 100,000 readers (GET over HTTP, stored variants)")
def upcoming_page(workdir: Path) -> dict[str, object]:
    import re
    import statistics
    import threading
    from zoneinfo import ZoneInfo

    import httpx
    import uvicorn

    from newsletter.editions.compose import Composer
    from newsletter.editions.edition import open_edition
    from newsletter.editions.prepare import prepare
    from newsletter.services import accounts
    from newsletter.web.app import create_app
    from tests.conftest import free_port

    runtime = _populated(workdir, 100_000)
    slot = datetime(2026, 11, 23, 7, tzinfo=ZoneInfo("Europe/Brussels"))
    with runtime.factory() as session, session.begin():
        prepared = prepare(
            session,
            runtime.settings,
            open_edition(session, runtime.settings, "weekly", slot),
            Composer(runtime.settings.templates_path()),
        )
    now = slot - timedelta(hours=1)
    accounts.add(runtime, "bench@example.com", "correct horse battery staple", now)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime, lambda: now), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=60) as client:
        login = client.get("/editor/login").text
        token = re.search(r'name="csrf" value="([^"]+)"', login)
        assert token is not None
        client.post(
            "/editor/login",
            data={
                "csrf": token.group(1),
                "email": "bench@example.com",
                "password": "correct horse battery staple",
            },
        )
        timings, frames = [], []
        for _ in range(21):
            began = time.perf_counter()
            page = client.get("/editor/upcoming/weekly")
            timings.append(time.perf_counter() - began)
            assert page.status_code == 200 and page.text.count("?variant=") == prepared.variants
            began = time.perf_counter()
            assert client.get(re.findall(r'src="([^"]+/frame)"', page.text)[0]).status_code == 200
            frames.append(time.perf_counter() - began)
    server.should_exit = True
    first, rest = timings[0], sorted(timings[1:])
    return {
        "seconds": statistics.median(rest),
        "note": f"median of 20 (first {first * 1000:.0f} ms, p95 {rest[18] * 1000:.0f} ms) for "
        f"{prepared.variants} variants; a frame {statistics.median(frames) * 1000:.0f} ms",
    }


@case("personalize: 100,000 readers, clicks tracked (click token, signed links + substitution; MIME copy)")
def personalize_all(workdir: Path) -> dict[str, object]:
    """A reader's copy as a send makes it (Links.urls, ClickLinks.readers: the signers the batch
    builder sets up once per batch), in a variant whose article links are tracked: the
    click-token HMAC alone, then the whole personalization, each in microseconds of CPU a reader
    (CPU, not wall time: other work on the machine does not count)."""
    from newsletter.editions.compose import Card, Composer, DigestView, Markers
    from newsletter.editions.personalize import Personalizable, Reader
    from newsletter.sending.messages import MessageTemplate
    from newsletter.settings import Settings
    from newsletter.subscribers.links import ClickLinks, Links

    key = b"benchmark-secret-key-0123"
    base = "https://n.example"
    settings = Settings()
    markers = Markers.fresh()
    clicks = ClickLinks(base, key)
    readers = 100_000
    edition_id = 1234

    def card(number: int) -> Card:
        return Card(
            clicks.url(edition_id, number, markers.token("click")),  # a tracked link, as variants.py makes it
            "A headline of usual length for the site",
            "Author",
            "23 November 2026",
            "An excerpt " * 20,
            "https://x.example/i.jpg",
            "Politics",
            3,
            None,
        )

    view = DigestView(
        settings.newsletter("weekly"),
        settings.site,
        "en",
        "23 November 2026",
        [card(i) for i in range(3)],
        [("Politics", [card(i) for i in range(3, 8)]), ("Health", [card(i) for i in range(8, 13)])],
        ["Politics", "Health"],
    )
    composed = Composer(settings.templates_path()).compose(view, markers)
    html = Personalizable(composed.html, True, composed.markers)
    text = Personalizable(composed.text, False, composed.markers)
    links = Links(base, key)
    click = clicks.readers(edition_id)
    began = time.process_time()
    for i in range(readers):
        click(i)
    hmac_seconds = time.process_time() - began
    unsubscribe, preferences = links.urls("unsubscribe", "weekly"), links.urls("preferences")
    began = time.process_time()
    for i in range(readers):
        values = Reader(f"Reader {i}", unsubscribe(i), preferences(i), "en", click(i)).values()
        html.fill(values)
        text.fill(values)
    substitution = time.process_time() - began
    template = MessageTemplate(
        subject=composed.subject,
        html=composed.html,
        text=composed.text,
        from_name="The European Times",
        from_address="n@x.example",
        reply_to="e@x.example",
        list_name="Weekly",
        list_id="weekly.x.example",
        unsubscribe_mailto="e@x.example",
        markers=composed.markers,
    )
    began = time.process_time()
    for i in range(20_000):
        reader = Reader(f"Reader {i}", unsubscribe(i), preferences(i), "en", click(i))
        template.render(f"reader{i}@example.com", reader.name, reader, f"1.{i}")
    mime = (time.process_time() - began) / 20_000
    tracked = composed.html.count(markers.token("click"))
    return {
        "seconds": substitution,
        "note": f"click-token HMAC {hmac_seconds / readers * 1e6:.1f} µs a reader; personalization "
        f"(3 signed links + both parts filled) {substitution / readers * 1e6:.1f} µs a reader "
        f"({len(composed.html) // 1000} KB HTML, {tracked} tracked links); a complete RFC 5322 "
        f"copy {mime * 1e6:.0f} µs a reader",
    }


def _populated(workdir: Path, subscribers: int):
    """A store with `subscribers` readers, filled by a child process so its memory is not counted."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench", "--populate", str(workdir), str(subscribers)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(done.stderr)
    return sample_store(workdir)


def _sendgrid_settings(workdir: Path, port: int):
    from newsletter.settings import Settings

    runtime = sample_store(workdir)
    return runtime, Settings(
        **{
            **runtime.settings.model_dump(),
            "provider": "sendgrid",
            "sendgrid_api_key": "SG.test-key",
            "sendgrid_host": f"http://127.0.0.1:{port}",
        }
    )


def send_worker(workdir: Path, port: int, edition_id: int) -> None:
    """One sender process, as `newsletter send --edition` runs it; prints its peak memory."""
    from newsletter.sending.pace import Pace
    from newsletter.sending.providers.sendgrid import SendGridProvider
    from newsletter.sending.sender import Sender

    runtime, settings = _sendgrid_settings(workdir, port)
    report = Sender(
        settings, runtime.factory, SendGridProvider(settings), Pace.from_settings(settings.sending)
    ).send(edition_id)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(report.sent, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, flush=True)


def _send_sendgrid(
    workdir: Path, subscribers: int, workers: int = 2, latency: float = 0.0
) -> dict[str, object]:
    """Prepare in this process, then `workers` sender processes share the edition (the claim
    is atomic on SQLite too), all against a v3 API server in its own process that answers each
    request `latency` seconds after it came (a real API takes a few hundred milliseconds)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from newsletter.editions.compose import Composer
    from newsletter.editions.edition import open_edition
    from newsletter.editions.prepare import prepare

    _populated(workdir, subscribers)
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.sendgrid_server", "--latency", str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(server.stdout.readline())
    runtime, settings = _sendgrid_settings(workdir, port)
    slot = datetime(2026, 11, 23, 7, tzinfo=ZoneInfo("Europe/Brussels"))
    began = time.perf_counter()
    with runtime.factory() as session, session.begin():
        edition = open_edition(session, settings, "weekly", slot)
        prepared = prepare(session, settings, edition, Composer(settings.templates_path()))
    composed = time.perf_counter()
    senders = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.bench", "--send-worker", str(workdir), str(port), str(edition.id)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    results = [sender.communicate()[0].split() for sender in senders]
    end = time.perf_counter()
    accepted, unique, server_cpu, server_peak = _api_count(server)
    server.stdin.close()
    server.wait()
    sent = sum(int(r[0]) for r in results)
    assert accepted == unique == sent == subscribers, (accepted, unique, sent)
    worker_peak = max(float(r[1]) for r in results)
    worker_cpu = sum(float(r[2]) for r in results)
    return {
        "seconds": end - began,
        "peak_note": f"{worker_peak:.0f} MB per sender",
        "note": f"{accepted:,} accepted once each, {prepared.variants} variants; prepare "
        f"{composed - began:.1f} s + {workers} senders {end - composed:.1f} s "
        f"({accepted / (end - began):,.0f}/s end to end); CPU: senders {worker_cpu:.0f} s, "
        f"API server {server_cpu:.0f} s ({server_peak:.0f} MB); sender peak "
        f"{worker_peak:.0f} MB; {settings.sending.concurrency} requests in flight per sender",
    }


@case("send: SendGrid, 10,000 subscribers in 200 variants, end to end")
def send_10k(workdir: Path) -> dict[str, object]:
    return _send_sendgrid(workdir, 10_000)


@case("send: SendGrid, 100,000 subscribers in 200 variants, end to end")
def send_100k(workdir: Path) -> dict[str, object]:
    return _send_sendgrid(workdir, 100_000)


@case("send: SendGrid, 1,000,000 subscribers in 200 variants, end to end")
def send_1m(workdir: Path) -> dict[str, object]:
    return _send_sendgrid(workdir, 1_000_000)


# What a real mail-send request takes to be answered: the loopback API waits this long.
API_LATENCY = 0.25


@case("send: SendGrid, 100,000 subscribers in 200 variants, the API answering after 250 ms")
def send_100k_latency(workdir: Path) -> dict[str, object]:
    return _send_sendgrid(workdir, 100_000, latency=API_LATENCY)


@case("send: SendGrid, 1,000,000 subscribers in 200 variants, the API answering after 250 ms")
def send_1m_latency(workdir: Path) -> dict[str, object]:
    return _send_sendgrid(workdir, 1_000_000, latency=API_LATENCY)


SMTP_MESSAGES = int(os.environ.get("BENCH_SMTP_MESSAGES", "100000"))


def _api_count(server: subprocess.Popen) -> tuple[int, int, float, float]:
    """The loopback API's tally, asked once the senders are done: requests' readers accepted,
    how many distinct, its CPU seconds and its peak MB."""
    server.stdin.write("count\n")
    server.stdin.flush()
    accepted, unique, cpu, peak = server.stdout.readline().split()
    return int(accepted), int(unique), float(cpu), float(peak)


def _sink_count(sink: subprocess.Popen) -> tuple[int, int, float]:
    sink.stdin.write("count\n")
    sink.stdin.flush()
    messages, recipients, cpu = sink.stdout.readline().split()
    return int(messages), int(recipients), float(cpu)


@case(f"send: SMTP, {SMTP_MESSAGES:,} messages into a loopback aiosmtpd sink, as a share of a plain loop")
def send_smtp(workdir: Path) -> dict[str, object]:
    return _send_smtp(workdir)


# A distant relay: MAIL, RCPT and DATA each answered this long after they came.
RELAY_LATENCY = 0.02
# Connections as the README advises for `smtp_connections`: the rate wanted x (three answers + the
# 10 ms or so a message costs a connection besides) x 1.2, for headroom: 42 for 500 a second.
RELAY_RATE = 500
RELAY_OWN = 0.010
RELAY_CONNECTIONS = math.ceil(RELAY_RATE * (3 * RELAY_LATENCY + RELAY_OWN) * 1.2)


@case(f"send: SMTP, {SMTP_MESSAGES:,} messages into a relay answering MAIL, RCPT and DATA after 20 ms each")
def send_smtp_latency(workdir: Path) -> dict[str, object]:
    return _send_smtp(workdir, RELAY_LATENCY, RELAY_CONNECTIONS)


def _send_smtp(workdir: Path, latency: float = 0.0, connections: int | None = None) -> dict[str, object]:
    """The edition through `smtp` into a sink in its own process; without latency, against the
    ceiling of one plain smtplib loop; with it, against what the connections could carry."""
    import smtplib
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from newsletter.editions.compose import Composer
    from newsletter.editions.edition import open_edition
    from newsletter.editions.prepare import prepare
    from newsletter.sending.pace import Pace
    from newsletter.sending.providers.smtp import SMTPProvider
    from newsletter.sending.sender import Sender
    from newsletter.settings import Settings

    runtime = _populated(workdir, SMTP_MESSAGES)
    sink = subprocess.Popen(
        [sys.executable, "-m", "tests.smtp_sink", "--latency", str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(sink.stdout.readline())
    sending = runtime.settings.sending.model_dump()
    if connections is not None:
        sending["smtp_connections"] = connections
    settings = Settings(
        **{
            **runtime.settings.model_dump(),
            "provider": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_tls": "none",
            "sending": sending,
        }
    )
    slot = datetime(2026, 11, 23, 7, tzinfo=ZoneInfo("Europe/Brussels"))
    with runtime.factory() as session, session.begin():
        edition = open_edition(session, settings, "weekly", slot)
        prepare(session, settings, edition, Composer(settings.templates_path()))
    if latency:  # the ceiling: every connection busy, each message three answers long
        ceiling = settings.sending.smtp_connections / (3 * latency)
    else:  # the ceiling: one plain smtplib loop sending pre-built copies of a real message
        message = _one_message(settings, runtime, edition.id)
        began = time.perf_counter()
        with smtplib.SMTP("127.0.0.1", port) as plain:
            for i in range(SMTP_MESSAGES):
                plain.sendmail("newsletter@europeantimes.example", [f"ceiling{i}@example.com"], message)
        ceiling = SMTP_MESSAGES / (time.perf_counter() - began)
        _sink_count(sink)
        sink.stdin.write("reset\n")
        sink.stdin.flush()
    provider = SMTPProvider(settings)
    began = time.perf_counter()
    report = Sender(settings, runtime.factory, provider, Pace.from_settings(settings.sending)).send(
        edition.id
    )
    seconds = time.perf_counter() - began
    provider.close()
    messages, recipients, sink_cpu = _sink_count(sink)
    sink.stdin.close()
    sink.wait()
    assert messages == recipients == report.sent == SMTP_MESSAGES, (messages, recipients, report)
    rate = SMTP_MESSAGES / seconds
    usage = resource.getrusage(resource.RUSAGE_SELF)
    against = "connections x one message per 3 answers" if latency else "plain loop"
    count = settings.sending.smtp_connections
    # What a message took a connection: the relay's three answers, and the rest the sender's own.
    cycle = (
        f", the README's advice for {RELAY_RATE} msg/s; a message every {count / rate * 1000:.0f} ms a connection"
        if latency
        else ""
    )
    return {
        "seconds": seconds,
        "note": f"{rate:,.0f} msg/s vs {against} {ceiling:,.0f} msg/s: {rate / ceiling:.2f} of the ceiling "
        f"({count} connections{cycle}; CPU: sender {usage.ru_utime + usage.ru_stime:.0f} s all in, "
        f"sink {sink_cpu:.0f} s)",
    }


def _one_message(settings, runtime, edition_id: int) -> bytes:
    """A complete message as the sender would build it, for the plain loop to repeat."""
    from sqlalchemy import select

    from newsletter.sending.batches import BatchBuilder
    from newsletter.store.models import Delivery
    from newsletter.subscribers.links import Links

    builder = BatchBuilder(settings, runtime.factory, Links.from_settings(settings), edition_id, "weekly")
    with runtime.factory() as session:
        variant_id = session.scalars(
            select(Delivery.variant_id).where(
                Delivery.edition_id == edition_id, Delivery.variant_id.is_not(None)
            )
        ).first()
        content = builder._variant(session, variant_id)
    reader = builder.readers()(1, "A Reader", content.language)
    return content.template.render("reader@example.com", "A Reader", reader, "1.1").data


UNSUBSCRIBES = 10_000
WARM_UP = 20  # more readers, unsubscribed before the load: templates compiled, threads and pool made
STAYING = 100  # readers who do not leave: the edition prepared after the load is theirs alone
LOAD_SCRIPT = Path(__file__).resolve().parent / "bench_unsubscribe.lua"
# The PostgreSQL server the PostgreSQL cases make a database of their own on (and drop).
BENCH_POSTGRES = os.environ.get(
    "NEWSLETTER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ONE_CLICK_LOAD = (
    f"web: {UNSUBSCRIBES:,} one-click unsubscribes, wrk -t2 -c50 against `newsletter serve --workers 2`"
)


@case(f"{ONE_CLICK_LOAD} (SQLite)")
def unsubscribe_load(workdir: Path) -> dict[str, object]:
    return _unsubscribe_load(workdir, None)


@case(f"{ONE_CLICK_LOAD} (PostgreSQL)")
def unsubscribe_load_postgres(workdir: Path) -> dict[str, object]:
    with _postgres_database("bench_unsubscribe") as database_url:
        if database_url is None:
            return {"skipped": f"no PostgreSQL at {BENCH_POSTGRES} (NEWSLETTER_BENCH_POSTGRES_URL)"}
        return _unsubscribe_load(workdir, database_url)


def _unsubscribe_load(workdir: Path, database_url: str | None) -> dict[str, object]:
    """RFC 8058 POSTs, each a different reader's token posted once, then every one of them
    checked in the store, and an edition prepared right after: none of them is in its ledger.
    Latency is wrk's (its coordinated-omission correction included)."""
    import secrets
    import shutil

    from sqlalchemy import distinct, func, select

    from newsletter.store.models import Consent, SubscriberNewsletter
    from newsletter.subscribers.tokens import sign

    wrk = shutil.which("wrk")
    if wrk is None:
        return {"skipped": "wrk is not installed (apt-get install wrk; .ci/run does)"}
    readers = UNSUBSCRIBES + WARM_UP + STAYING
    if database_url is None:
        runtime = _populated(workdir, readers)
    else:
        runtime = sample_store(workdir, database_url)
        populate(runtime, readers)
    key = secrets.token_urlsafe(32)
    paths = [
        f"/unsubscribe/{sign(key.encode(), 'unsubscribe', i, scope='weekly')}"
        for i in range(1, UNSUBSCRIBES + WARM_UP + 1)
    ]
    tokens = workdir / "tokens.txt"
    tokens.write_text("".join(f"{path}\n" for path in paths[:UNSUBSCRIBES]))
    server, address = serve_process(workdir, runtime.settings.database_url, key, WEB_WORKERS)
    load_before = os.getloadavg()[0]  # another job on these cores shows in the figures
    try:
        for path in paths[UNSUBSCRIBES:]:
            if one_click(address + path) != 200:
                raise RuntimeError("a one-click unsubscribe did not answer 200")
        server_cpu = _cpu_seconds(server.pid)
        load, wrk_cpu, wrk_text = _wrk(wrk, workdir, tokens, address, threads=2, connections=50)
        server_cpu = _cpu_seconds(server.pid) - server_cpu
    finally:
        server.terminate()
        server.wait(30)
    failures = (workdir / "serve.log").read_text(errors="replace").count("failed")
    with runtime.factory() as session:
        ours = (SubscriberNewsletter.subscriber_id <= UNSUBSCRIBES) & (
            SubscriberNewsletter.newsletter == "weekly"
        )
        statuses = dict(
            session.execute(
                select(SubscriberNewsletter.status, func.count())
                .where(ours)
                .group_by(SubscriberNewsletter.status)
            ).all()
        )
        consents, consenting = session.execute(
            select(func.count(), func.count(distinct(Consent.subscriber_id))).where(
                Consent.subscriber_id <= UNSUBSCRIBES, Consent.action == "unsubscribe"
            )
        ).one()
    mailed, prepared = _mailed_right_after(runtime)
    runtime.close()
    unsubscribed = statuses.get("unsubscribed", 0)
    seconds = float(load["wall_seconds"])
    latency = load["latency_ms"]
    figures = {
        "requests": load["requests"],
        "posted": load["posted"],
        "non2xx": load["non2xx"],
        "throughput": UNSUBSCRIBES / seconds if seconds > 0 else 0.0,
        "p50_ms": latency["p50"],
        "p99_ms": latency["p99"],
        "max_ms": latency["max"],
        "socket_errors": load["socket_errors"],
        "unsubscribed": unsubscribed,
        "statuses": {str(status): count for status, count in statuses.items()},
        "consents": consents,
        "mailed_by_the_next_send": mailed,
        "next_send_deliveries": prepared,
        "server_cpu_seconds": server_cpu,
        "wrk_cpu_seconds": wrk_cpu,
        "server_errors_logged": failures,
        "load_average_before": load_before,
        "wrk": wrk_text,
    }
    exact = load["requests"] == load["posted"] == UNSUBSCRIBES == unsubscribed == consents == consenting
    if not exact or seconds <= 0 or mailed or prepared != STAYING:
        raise AssertionError(f"not every token was posted once, recorded and honoured: {json.dumps(figures)}")
    return {
        **figures,
        "seconds": seconds,
        "note": f"{figures['throughput']:,.0f}/s; p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms, "
        f"max {latency['max']:.0f} ms; non-2xx {load['non2xx']}; {unsubscribed:,}/{UNSUBSCRIBES:,} "
        f"unsubscribed in the store, {mailed} in the next send's ledger; CPU: server {server_cpu:.1f} s "
        f"({server_cpu / UNSUBSCRIBES * 1000:.2f} ms a request), wrk {wrk_cpu:.1f} s; "
        f"load average before {load_before:.1f}",
    }


def _mailed_right_after(runtime) -> tuple[int, int]:
    """An edition of the weekly prepared right after the load, as a send starting then would:
    its deliveries to the readers who left (none, or an unsubscribe was not honoured), and all."""
    from zoneinfo import ZoneInfo

    from sqlalchemy import func, select

    from newsletter.editions.compose import Composer
    from newsletter.editions.edition import open_edition
    from newsletter.editions.prepare import prepare
    from newsletter.store.models import Delivery

    settings = runtime.settings
    slot = datetime(2026, 11, 23, 7, tzinfo=ZoneInfo("Europe/Brussels"))
    with runtime.factory() as session, session.begin():
        edition = open_edition(session, settings, "weekly", slot)
        prepare(session, settings, edition, Composer(settings.templates_path()))
        ledger = select(func.count()).select_from(Delivery).where(Delivery.edition_id == edition.id)
        mailed = session.scalar(ledger.where(Delivery.subscriber_id <= UNSUBSCRIBES + WARM_UP)) or 0
        return mailed, session.scalar(ledger) or 0


@contextmanager
def _postgres_database(prefix: str) -> Iterator[str | None]:
    """A database of the case's own on BENCH_POSTGRES, dropped after; None without a server."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    server = make_url(BENCH_POSTGRES).set(drivername="postgresql+psycopg")
    name = f"{prefix}_{os.getpid()}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError:
        admin.dispose()
        yield None
        return
    try:
        yield server.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


BURST = int(os.environ.get("BENCH_BURST", "2000"))
BURST_SECONDS = 20.0
BURST_READERS = 10_000


@case(
    f"web: {BURST:,} one-clicks in {BURST_SECONDS:.0f} s during a {BURST_READERS:,}-reader SMTP send "
    "(`serve --workers 2`, SQLite)"
)
def unsubscribe_during_send(workdir: Path) -> dict[str, object]:
    """A probe, not a test: while a sender process sends an edition into a loopback sink, one-click
    POSTs arrive at an even pace (each reader's own token, once); how many were answered 200
    within a second, how many 503 (with Retry-After), how many not within 60 s, and how long the
    send took, against the same send alone."""
    import asyncio
    import secrets

    from sqlalchemy import func, select

    from newsletter.store.models import SubscriberNewsletter
    from newsletter.subscribers.tokens import sign

    runtime = _populated(workdir, BURST_READERS)
    key = secrets.token_urlsafe(32)
    readers = range(BURST_READERS - BURST + 1, BURST_READERS + 1)  # the end of the list: mailed last
    paths = [f"/unsubscribe/{sign(key.encode(), 'unsubscribe', i, scope='weekly')}" for i in readers]
    alone_seconds = _timed_send(workdir / "alone", key, None)()  # first, on a store of its own
    server, address = serve_process(workdir, runtime.settings.database_url, key)
    try:
        one_click(f"{address}/unsubscribe/{sign(key.encode(), 'unsubscribe', 1, scope='weekly')}")
        sender = _timed_send(workdir, key, runtime)
        answers = asyncio.run(_paced_one_clicks(address, paths, BURST_SECONDS))
        seconds = sender()
    finally:
        server.terminate()
        server.wait(30)
    with runtime.factory() as session:
        left = session.scalar(
            select(func.count())
            .select_from(SubscriberNewsletter)
            .where(
                SubscriberNewsletter.subscriber_id.in_(list(readers)),
                SubscriberNewsletter.status == "unsubscribed",
            )
        )
    ok = [t for status, t, _retry in answers if status == 200]
    busy = [status for status, _t, retry in answers if status == 503 and retry]
    other = [status for status, _t, _retry in answers if status not in (200, 503)]
    within = sum(t <= 1.0 for t in ok)
    return {
        "seconds": seconds,
        "answered_200": len(ok),
        "within_1s": within,
        "answered_503": len(busy),
        "unanswered_or_other": len(other),
        "recorded": left,
        "send_alone_seconds": alone_seconds,
        "note": f"{within:,}/{BURST:,} answered 200 within 1 s (max {max(ok, default=0):.1f} s), "
        f"{len(busy):,} 503 + Retry-After, {len(other):,} other or no answer in 60 s; {left:,} recorded; "
        f"send {seconds:.0f} s under the burst, {alone_seconds:.0f} s alone; load average "
        f"{os.getloadavg()[0]:.1f} (other jobs on these cores show in the figures)",
    }


def _timed_send(workdir: Path, key: str, runtime) -> Callable[[], float]:
    """A sender process (SMTP into a loopback sink) for a fresh edition of `runtime`'s store, or
    of a store of its own (None: the send alone); returns a wait for its duration in seconds."""
    workdir.mkdir(exist_ok=True)
    if runtime is None:
        _populated(workdir, BURST_READERS)
    sender = subprocess.Popen(
        [sys.executable, "-m", "tests.bench", "--smtp-send-worker", str(workdir), key],
        stdout=subprocess.PIPE,
        text=True,
    )
    started = sender.stdout.readline()  # prepared: the send begins
    assert started.startswith("sending"), started

    def wait() -> float:
        out, _ = sender.communicate()
        return float(out.split()[0])

    return wait


def smtp_send_worker(workdir: Path, key: str) -> None:
    """Prepare an edition, say "sending", send it into a sink of its own; print the seconds."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from pydantic import SecretStr

    from newsletter.editions.compose import Composer
    from newsletter.editions.edition import open_edition
    from newsletter.editions.prepare import prepare
    from newsletter.sending.pace import Pace
    from newsletter.sending.providers.smtp import SMTPProvider
    from newsletter.sending.sender import Sender
    from newsletter.settings import Settings

    runtime = sample_store(workdir)
    sink = subprocess.Popen(
        [sys.executable, "-m", "tests.smtp_sink"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    port = int(sink.stdout.readline())
    settings = Settings(
        **{
            **runtime.settings.model_dump(),
            "secret_key": SecretStr(key),
            "provider": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_tls": "none",
        }
    )
    slot = datetime(2026, 11, 23, 7, tzinfo=ZoneInfo("Europe/Brussels"))
    with runtime.factory() as session, session.begin():
        edition = open_edition(session, settings, "weekly", slot)
        prepare(session, settings, edition, Composer(settings.templates_path()))
    print("sending", flush=True)
    provider = SMTPProvider(settings)
    began = time.perf_counter()
    Sender(settings, runtime.factory, provider, Pace.from_settings(settings.sending)).send(edition.id)
    print(time.perf_counter() - began, flush=True)
    provider.close()
    sink.stdin.close()
    sink.wait()


async def _paced_one_clicks(address: str, paths: list[str], seconds: float) -> list[tuple[int, float, bool]]:
    """Each path POSTed once, at an even pace over `seconds`: (status or 0 for no answer within
    60 s, seconds to the answer's headers, whether a Retry-After came). Plain sockets and bytes
    written once: the client's own CPU must not be what is measured on these two cores."""
    import asyncio
    from urllib.parse import urlsplit

    where = urlsplit(address)
    host, port = where.hostname or "127.0.0.1", where.port or 80
    body = b"List-Unsubscribe=One-Click"

    async def post(index: int, path: str) -> tuple[int, float, bool]:
        await asyncio.sleep(index * seconds / len(paths))
        began = time.perf_counter()
        asked = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode() + body
        try:
            async with asyncio.timeout(60):
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(asked)
                head = await reader.readuntil(b"\r\n\r\n")
            writer.close()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return 0, time.perf_counter() - began, False
        return int(head.split()[1]), time.perf_counter() - began, b"\nretry-after:" in head.lower()

    return await asyncio.gather(*(post(i, path) for i, path in enumerate(paths)))


@case("feed: one feed over 50 connections, half with its ETag (wrk, `serve --workers 2`)")
def feed_load(workdir: Path) -> dict[str, object]:
    """A feed as thousands of feed readers fetch it: half of them have the current ETag (304)."""
    import secrets
    import shutil
    import urllib.request
    from zoneinfo import ZoneInfo

    from newsletter.ingest.run import fetch_feeds
    from newsletter.services import sending
    from newsletter.store.db import unit_of_work
    from newsletter.subscribers.bulk import import_csv

    wrk = shutil.which("wrk")
    if wrk is None:
        return {"skipped": "wrk is not installed (apt-get install wrk; .ci/run does)"}
    runtime = sample_store(workdir)
    fetch_feeds(runtime.settings, runtime.factory)
    with unit_of_work(runtime.factory) as session:
        import_csv(session, runtime.settings, Path("subscribers/demo-subscribers.csv"), confirmed=True)
    slot = datetime(2026, 11, 23, 7, 1, tzinfo=ZoneInfo("Europe/Brussels"))
    assert sending.send(runtime, "weekly", slot).status == "complete"
    key = secrets.token_urlsafe(32)
    server, address = serve_process(workdir, runtime.settings.database_url, key, WEB_WORKERS)
    url = address + "/feeds/weekly/en.atom"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            etag, size = answer.headers["etag"], len(answer.read())
        request = urllib.request.Request(url, headers={"If-None-Match": etag})
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError("the ETag did not answer 304")
        except urllib.error.HTTPError as exc:
            assert exc.code == 304, exc.code
        load_before = os.getloadavg()[0]
        server_cpu = _cpu_seconds(server.pid)
        done = subprocess.run(
            [wrk, "-t2", "-c50", "-d10s", "--latency", "-s", "tests/bench_feed.lua", url],
            env={**os.environ, "BENCH_ETAG": etag},
            capture_output=True,
            text=True,
            timeout=60,
        )
        server_cpu = _cpu_seconds(server.pid) - server_cpu
    finally:
        server.terminate()
        server.wait(30)
    summary = next(line[6:] for line in done.stdout.splitlines() if line.startswith("BENCH "))
    load = json.loads(summary)
    rate = load["requests"] / load["seconds"]
    if load["bad_status"] or load["socket_errors"]:
        raise AssertionError(f"errors under load: {summary}")
    return {
        "seconds": load["seconds"],
        "note": f"{rate:,.0f} requests/s; p50 {load['p50_ms']:.1f} ms, p99 {load['p99_ms']:.1f} ms, "
        f"max {load['max_ms']:.0f} ms; a {size / 1000:.0f} KB feed; server CPU {server_cpu:.1f} s; "
        f"load average before {load_before:.1f}",
    }


IMPORT_ROWS = 100_000
IMPORT_DATABASE = "bench_import"


def _import_list(path: Path, rows: int) -> None:
    """A list as an operator brings one: valid addresses, one to three sections, a language,
    newsletters named or left empty (the site's default)."""
    from tests.support.population import CATEGORIES

    newsletters = ["weekly", "weekly;daily", "daily", ""]
    with path.open("w", encoding="utf-8") as handle:
        handle.write("email,name,language,categories,newsletters,status\n")
        for i in range(rows):
            chosen = ";".join(CATEGORIES[(i + k * 3) % len(CATEGORIES)] for k in range(1 + i % 3))
            handle.write(
                f"Reader.{i}@Example.com,Reader {i},{('en', 'de')[i % 2]},{chosen},{newsletters[i % 4]},\n"
            )


def _command(workdir: Path, *args: str) -> tuple[float, float, float, str]:
    """`newsletter ARGS` as an operator runs it (see `_starts`): its wall and CPU seconds, its
    peak resident MB, and what it printed."""
    script = Path(sys.executable).parent / "newsletter"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "newsletter"]
    clean = {name: value for name, value in os.environ.items() if not name.startswith("NEWSLETTER_")}
    with (workdir / "stdout.log").open("wb") as stdout, (workdir / "stderr.log").open("wb") as stderr:
        began = time.perf_counter()
        process = subprocess.Popen([*command, *args], stdout=stdout, stderr=stderr, env=clean, cwd=workdir)
        _pid, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status):
        said = (workdir / "stderr.log").read_text(errors="replace").strip()
        raise RuntimeError(f"newsletter {' '.join(args)}: {said[-300:]}")
    said = (workdir / "stdout.log").read_text() + (workdir / "stderr.log").read_text()
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, said


def _import_case(workdir: Path, database: str, step: str) -> dict[str, object]:
    """`subscribers import` of a fresh list into an empty store, the same list again, or
    `subscribers export` of the store it made: the step measured, those before it run first."""
    from tests.support.population import CATEGORIES

    url = f"sqlite:///{workdir / 'import.db'}"
    if database == "postgresql":
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import OperationalError

        server = make_url(BENCH_POSTGRES).set(drivername="postgresql+psycopg")
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {IMPORT_DATABASE} WITH (FORCE)"))
                connection.execute(text(f"CREATE DATABASE {IMPORT_DATABASE}"))
        except OperationalError as exc:
            return {"skipped": f"no PostgreSQL at {server.render_as_string()} ({exc.orig})"}
        url = server.set(database=IMPORT_DATABASE).render_as_string(hide_password=False)
    try:
        names = ", ".join(f'"{name}"' for name in CATEGORIES)
        config = workdir / "newsletter.toml"
        config.write_text(f'database_url = "{url}"\n[site]\ncategories = [{names}]\n')
        readers = workdir / "readers.csv"
        _import_list(readers, IMPORT_ROWS)
        _command(workdir, "db", "upgrade", "--config", str(config))
        steps = {
            "import": ("subscribers", "import", str(readers), "--config", str(config)),
            "again": ("subscribers", "import", str(readers), "--config", str(config)),
            "export": ("subscribers", "export", str(workdir / "export.csv"), "--config", str(config)),
        }
        expected = {
            "import": f"{IMPORT_ROWS} added, 0 updated, 0 unchanged",
            "again": f"0 added, 0 updated, {IMPORT_ROWS} unchanged",
            "export": f"{IMPORT_ROWS} subscribers written",
        }
        for before in list(steps)[: list(steps).index(step)]:
            _command(workdir, *steps[before])
        load = os.getloadavg()[0]
        wall, cpu, peak, said = _command(workdir, *steps[step])
        if expected[step] not in said:
            raise AssertionError(f"{step}: {said[-500:]}")
    finally:
        if database == "postgresql":
            with admin.connect() as connection:
                connection.execute(text(f"DROP DATABASE IF EXISTS {IMPORT_DATABASE} WITH (FORCE)"))
            admin.dispose()
    return {
        "seconds": wall,
        "peak_mb": peak,
        "note": f"{IMPORT_ROWS / wall:,.0f} rows/s; the command's CPU {cpu:.1f} s (user + system), "
        f"peak {peak:.0f} MB; load average before {load:.1f}",
    }


IMPORT_STEPS = {
    "import": f"import: `subscribers import` of {IMPORT_ROWS:,} new readers",
    "again": f"import: the same {IMPORT_ROWS:,} rows again, nothing changes",
    "export": f"import: `subscribers export` of {IMPORT_ROWS:,} readers",
}
for _database, _label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
    for _step, _name in IMPORT_STEPS.items():
        case(f"{_name} ({_label})")(functools.partial(_import_case, database=_database, step=_step))


# Readers of the workers case (on BENCH_POSTGRES, a database of its own, made and dropped).
WORKERS_READERS = 50_000


def _send_workers(workdir: Path, workers: int) -> dict[str, object]:
    """The command an operator types when the slot has come, `newsletter send --workers N`,
    from its start to its exit (start-up, prepare, the senders sharing one PostgreSQL ledger,
    the archive), on a database of its own; the API must have taken each reader once."""
    from sqlalchemy import create_engine, func, make_url, select, text

    from newsletter.store.models import Edition, Variant
    from newsletter.store.statuses import EditionStatus

    base = make_url(BENCH_POSTGRES).set(drivername="postgresql+psycopg")
    name = f"bench_workers_{workers}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    server = None
    try:
        url = base.set(database=name).render_as_string(hide_password=False)
        runtime = sample_store(workdir, url)
        populate(runtime, WORKERS_READERS)
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.sendgrid_server", "--latency", str(API_LATENCY)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        port = int(server.stdout.readline())
        settings = runtime.settings
        (workdir / "newsletter.toml").write_text(
            f'database_url = "{url}"\ntimezone = "{settings.timezone}"\nprovider = "sendgrid"\n'
            f'sendgrid_host = "http://127.0.0.1:{port}"\n'
        )
        clean = {key: value for key, value in os.environ.items() if not key.startswith("NEWSLETTER_")}
        secrets = {
            "NEWSLETTER_SECRET_KEY": settings.secret_key.get_secret_value(),
            "NEWSLETTER_SENDGRID_API_KEY": "SG.test-key",
        }
        command = [sys.executable, "-m", "newsletter", "send", "--at", "2026-11-23T07:00", "--force"]
        command += ["--workers", str(workers), "--config", str(workdir / "newsletter.toml")]
        load = os.getloadavg()[0]
        with (workdir / "send.log").open("wb") as log:
            began = time.perf_counter()
            sending = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env={**clean, **secrets}
            )
            _pid, status, usage = os.wait4(sending.pid, 0)  # its senders' usage included
            seconds = time.perf_counter() - began
        if os.waitstatus_to_exitcode(status):
            said = (workdir / "send.log").read_text(errors="replace").strip()
            raise RuntimeError(f"newsletter send --workers {workers}: {said[-300:]}")
        accepted, unique, server_cpu, _peak = _api_count(server)
        with runtime.factory() as session:
            edition = session.scalars(select(Edition)).one()
            senders = (edition.finished_at - edition.started_at).total_seconds()
            variants = session.scalar(select(func.count()).select_from(Variant))
        runtime.close()
    finally:
        if server is not None:
            server.stdin.close()
            server.wait()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    assert accepted == unique == WORKERS_READERS, (accepted, unique)
    assert edition.status == EditionStatus.COMPLETE, edition.status
    return {
        "seconds": seconds,
        "peak_mb": usage.ru_maxrss / 1024,
        "note": f"{WORKERS_READERS / seconds:,.0f} readers/s command to exit ({WORKERS_READERS / senders:,.0f}/s "
        f"from the first sender's start to the last one's end); {accepted:,} accepted once each, "
        f"{variants} variants; CPU: the command and its senders {usage.ru_utime + usage.ru_stime:.1f} s, "
        f"API server {server_cpu:.1f} s; load average before {load:.1f}",
    }


for _workers in (1, 2, 4):
    case(
        f"send: `newsletter send --workers {_workers}` on PostgreSQL, {WORKERS_READERS:,} readers, "
        "the API answering after 250 ms"
    )(functools.partial(_send_workers, workers=_workers))


def _send_command(
    workdir: Path, subscribers: int, latency: float = 0.0, workers: int = 1, concurrency: int | None = None
) -> dict[str, object]:
    """`newsletter send [--workers N]` as an operator runs it, timed from start to exit
    (start-up, prepare, send, archive) against the loopback v3 API in its own process: wall
    time, CPU and the peak resident size of the command and of any sender process it starts
    (`os.wait4` counts its children), and the API accepting each reader exactly once."""
    import compileall

    import newsletter

    compileall.compile_dir(Path(newsletter.__file__).parent, quiet=1)  # as an installed package is
    runtime = _populated(workdir, subscribers)
    settings = runtime.settings
    runtime.close()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.sendgrid_server", "--latency", str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(server.stdout.readline())
    config = workdir / "newsletter.toml"
    feeds = "".join(
        "[[feeds]]\n" + "".join(f"{name} = {json.dumps(value)}\n" for name, value in fields.items())
        for fields in (feed.model_dump(mode="json", exclude_defaults=True) for feed in settings.feeds)
    )
    config.write_text(  # JSON's strings are TOML's basic strings
        f"database_url = {json.dumps(settings.database_url)}\ntimezone = {json.dumps(settings.timezone)}\n"
        f'provider = "sendgrid"\nsendgrid_host = "http://127.0.0.1:{port}"\n'
        f"[site]\ncategories = {json.dumps(list(settings.site.categories))}\n{feeds}"
        + (f"[sending]\nconcurrency = {concurrency}\n" if concurrency else "")
    )
    script = Path(sys.executable).parent / "newsletter"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "newsletter"]
    env = {name: value for name, value in os.environ.items() if not name.startswith("NEWSLETTER_")}
    env |= {
        "NEWSLETTER_SECRET_KEY": settings.secret_key.get_secret_value(),
        "NEWSLETTER_SENDGRID_API_KEY": "SG.test-key",
    }
    load = os.getloadavg()[0]
    with (workdir / "stderr.log").open("wb") as stderr:
        began = time.perf_counter()
        process = subprocess.Popen(
            [*command, "--config", str(config), "send", "-n", "weekly", "--at", "2026-11-23T07:00"]
            + (["--workers", str(workers)] if workers > 1 else []),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            cwd=workdir,
        )
        _pid, status, usage = os.wait4(process.pid, 0)  # its sender processes' peaks included
        wall = time.perf_counter() - began
    accepted, unique, server_cpu, _server_peak = _api_count(server)
    server.stdin.close()
    server.wait()
    if os.waitstatus_to_exitcode(status):
        said = (workdir / "stderr.log").read_text(errors="replace").strip()
        raise RuntimeError(f"newsletter send: {said[-300:]}")
    assert accepted == unique == subscribers, (accepted, unique, subscribers)
    peak = usage.ru_maxrss / 1024
    return {
        "seconds": wall,
        "peak_mb": peak,
        "note": f"{accepted:,} accepted once each ({accepted / wall:,.0f}/s); CPU "
        f"{usage.ru_utime + usage.ru_stime:.1f} s (user + system), API server {server_cpu:.0f} s; "
        f"peak {peak:.0f} MB per process; {workers} sender{'s' if workers > 1 else ''}; "
        f"load average before {load:.1f}",
    }


@case("send command: `newsletter send`, SendGrid, 100,000 readers in 200 variants, start to exit")
def send_command_100k(workdir: Path) -> dict[str, object]:
    return _send_command(workdir, 100_000)


# Sender processes for a million (`--workers`): one, unless told. Two, one per core as the README
# advises, took longer on SQLite (each imports the CLI, and they share one write lock).
SEND_WORKERS = int(os.environ.get("BENCH_SEND_WORKERS", "1"))


@case(
    f"send command: `newsletter send --workers {SEND_WORKERS}`, SendGrid, 1,000,000 readers in 200 variants, start to exit"
)
def send_command_1m(workdir: Path) -> dict[str, object]:
    return _send_command(workdir, 1_000_000, workers=SEND_WORKERS)


# A slow API wants more requests in flight than the default 8 (32,000 readers a second at 250 ms):
# set explicitly, as the README advises for a million readers; the default stays for every site.
SEND_CONCURRENCY = 16


@case(
    f"send command: `newsletter send --workers {SEND_WORKERS}`, SendGrid, 1,000,000 readers, the API answering "
    f"after 250 ms, [sending] concurrency = {SEND_CONCURRENCY}"
)
def send_command_1m_latency(workdir: Path) -> dict[str, object]:
    return _send_command(
        workdir, 1_000_000, latency=API_LATENCY, workers=SEND_WORKERS, concurrency=SEND_CONCURRENCY
    )


# Readers opted in to the alerts in the alert case.
ALERT_READERS = int(os.environ.get("BENCH_ALERT_READERS", "100000"))


@case(
    f"alert: {ALERT_READERS:,} opted-in readers handed to SendGrid from the editor's confirmation, "
    "the API answering after 250 ms"
)
def alert_100k(workdir: Path) -> dict[str, object]:
    """What the editors' page does on confirmation (services.breaking: the alert opened, then
    prepared and sent by one sender), timed from the click to the last reader handed over."""
    from sqlalchemy import insert, literal, select

    from newsletter.services import breaking
    from newsletter.settings import Settings
    from newsletter.store.models import Article, Subscriber, SubscriberNewsletter
    from newsletter.store.runtime import open_runtime

    _populated(workdir, ALERT_READERS)  # readers of the weekly, in two languages
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.sendgrid_server", "--latency", str(API_LATENCY)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(server.stdout.readline())
    base, settings = _sendgrid_settings(workdir, port)
    base.close()
    settings = Settings(
        **{**settings.model_dump(), "newsletters": {"weekly": {}, "breaking": {"kind": "alert"}}}
    )
    runtime = open_runtime(settings)
    with runtime.factory() as session, session.begin():
        session.execute(
            insert(SubscriberNewsletter).from_select(
                ["subscriber_id", "newsletter", "status"],
                select(Subscriber.id, literal("breaking"), literal("active")),
            )
        )
        article = session.scalars(select(Article.key).order_by(Article.published_at.desc()).limit(1)).one()
    now = datetime.now(UTC)
    before = resource.getrusage(resource.RUSAGE_SELF)
    began = time.perf_counter()
    opened = breaking.open_by_editor(runtime, "breaking", article, now, editor="ed@example.com")
    assert opened.edition.id is not None
    report = breaking.send_alert(runtime, opened.edition.id, now)
    end = time.perf_counter()
    after = resource.getrusage(resource.RUSAGE_SELF)
    accepted, unique, server_cpu, _peak = _api_count(server)
    server.stdin.close()
    server.wait()
    assert accepted == unique == report.sent == ALERT_READERS, (accepted, unique, report.sent)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {
        "seconds": end - began,
        "note": f"{accepted:,} accepted once each ({accepted / (end - began):,.0f}/s from the click); "
        f"CPU: this process {cpu:.1f} s, API server {server_cpu:.1f} s; "
        f"{settings.sending.concurrency} requests in flight; aim: 60 s",
    }


# Web processes for the load case (`newsletter serve --workers`): one per core.
WEB_WORKERS = int(os.environ.get("BENCH_WEB_WORKERS", "2"))


def _cpu_seconds(pid: int) -> float:
    """A live process's user + system CPU time and its live children's (web workers), from /proc."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _wrk(
    wrk: str, workdir: Path, tokens: Path, address: str, threads: int, connections: int
) -> tuple[dict, float, str]:
    """wrk with the load script until every thread has its answers (wrk itself would sleep for
    the whole -d: it is sent SIGINT then); its summary, its CPU seconds and its text."""
    import signal

    done = workdir / "done"
    done.mkdir()
    env = {**os.environ, "BENCH_TOKENS": str(tokens), "BENCH_THREADS": str(threads), "BENCH_DONE": str(done)}
    command = [wrk, f"-t{threads}", f"-c{connections}", "-d120s", "--timeout", "10s", "--latency"]
    with (workdir / "wrk.out").open("wb") as out:
        load = subprocess.Popen([*command, "-s", str(LOAD_SCRIPT), address], stdout=out, stderr=out, env=env)
    stopped = False
    while True:
        pid, status, usage = os.wait4(load.pid, os.WNOHANG)
        if pid:
            break
        if not stopped and len(list(done.iterdir())) >= threads:
            load.send_signal(signal.SIGINT)
            stopped = True
        time.sleep(0.01)
    load.returncode = os.waitstatus_to_exitcode(status)
    text = (workdir / "wrk.out").read_text(errors="replace")
    summary = next((line[6:] for line in text.splitlines() if line.startswith("BENCH ")), None)
    if load.returncode or summary is None:
        raise RuntimeError(f"wrk failed ({load.returncode}): {text[-500:]}")
    return json.loads(summary), usage.ru_utime + usage.ru_stime, text.split("BENCH ")[0]


def run_case(name: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        result = CASES[name](Path(folder))
    result.setdefault("peak_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--case":
        run_case(sys.argv[2])
        return
    if len(sys.argv) == 5 and sys.argv[1] == "--send-worker":
        send_worker(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--smtp-send-worker":
        smtp_send_worker(Path(sys.argv[2]), sys.argv[3])
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--populate":
        populate(sample_store(Path(sys.argv[2])), int(sys.argv[3]))
        return
    console = Console(width=150)
    table = Table(title=f"newsletter benchmarks ({os.cpu_count()} cores)")
    for column in ("case", "seconds", "peak MB", "notes"):
        table.add_column(column)
    for name in CASES:
        if len(sys.argv) > 1 and not any(word in name for word in sys.argv[1:]):
            continue
        console.print(f"running: {name}", style="dim")
        done = subprocess.run(
            [sys.executable, "-m", "tests.bench", "--case", name], capture_output=True, text=True
        )
        if done.returncode:
            table.add_row(name, "failed", "", done.stderr.strip().splitlines()[-1][:120])
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if "skipped" in result:
            table.add_row(name, "skipped", "", str(result["skipped"]))
            continue
        table.add_row(
            name,
            f"{result['seconds']:.2f}",
            f"{result['peak_mb']:.0f}",
            str(result.get("note", "")),
        )
    console.print(table)


if __name__ == "__main__":
    main()
