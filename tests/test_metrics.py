"""`/metrics` for Prometheus: scraped over real HTTP during and after a send, its figures are the
store's own; its counters count what happened once; it is refused to an address not allowed, to
a proxied stranger and to a wrong token; `serve --workers 2` sums its workers' counters."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from newsletter.ingest.run import fetch_feeds
from newsletter.metrics.exposition import (
    FOLDER_PREFIX,
    MULTIPROCESS_VARIABLE,
    MetricsServer,
    registry,
    shared_counters,
)
from newsletter.metrics.gauges import StoreCollector
from newsletter.sending.providers.outbox import OutboxProvider
from newsletter.sending.report import SendReport
from newsletter.sending.sender import Sender
from newsletter.services import readers
from newsletter.settings import FeedSettings
from newsletter.store.db import unit_of_work
from newsletter.store.models import Delivery, Edition, Subscriber
from newsletter.store.runtime import Runtime
from newsletter.subscribers.links import Links, token_of
from newsletter.web import serving
from tests.conftest import ROOT, SAMPLE, WEEKLY_NOV_23
from tests.support.clock import FixedClock
from tests.support.run import editions, project, start, stop
from tests.support.sending import add_readers, fast, prepared, statuses
from tests.support.serving import one_click
from tests.support.waiting import until
from tests.support.web import process
from tests.support.web import serve as serving_site
from tests.support.webhook import WebhookKeys, deliver, entry, with_webhook

serve = contextmanager(serving_site)  # the pages on loopback, for a `with`
AFTER_SLOT = WEEKLY_NOV_23.astimezone(UTC) + timedelta(minutes=45)
TOKEN = "Zq3-metrics-8xYv1LpW0rT5"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parsed(text: str) -> Samples:
    """Every sample of a scrape by name and labels, read by prometheus_client's own parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(url: str, **headers: str) -> Samples:
    answer = httpx.get(f"{url}/metrics", headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return parsed(answer.text)


def collected(runtime: Runtime, now: datetime) -> Samples:
    made = CollectorRegistry()
    made.register(StoreCollector(runtime, lambda: now))
    return parsed(generate_latest(made).decode())


@pytest.mark.both_databases
def test_a_scrape_during_and_after_a_send_counts_what_the_store_holds(newsroom, tmp_path) -> None:
    add_readers(newsroom, 45)
    edition_id = prepared(newsroom)
    total = statuses(newsroom, edition_id)["pending"]  # the sample's readers and these
    clock = FixedClock(AFTER_SLOT)
    with serve(newsroom, tmp_path, clock=clock, listening=True) as site:
        before = scrape(site.url)
        assert value(before, "newsletter_store_up") == 1
        assert value(before, "newsletter_deliveries_due", newsletter="weekly") == total
        assert value(before, "newsletter_oldest_due_delivery_age_seconds", newsletter="weekly") == 45 * 60
        during: list[tuple[int, float, int]] = []

        def progress(_report: SendReport) -> None:  # between batches, the next maybe on its way
            sent_before = statuses(newsroom, edition_id).get("sent", 0)
            samples = scrape(site.url)
            sent_after = statuses(newsroom, edition_id).get("sent", 0)
            counted = sum(
                value(samples, "newsletter_deliveries", newsletter="weekly", status=s) for s in STATUSES
            )
            assert counted == total
            during.append(
                (
                    sent_before,
                    value(samples, "newsletter_deliveries", newsletter="weekly", status="sent"),
                    sent_after,
                )
            )

        provider = OutboxProvider(newsroom.settings.outbox_dir)
        provider.batch_size = 10
        report = Sender(
            newsroom.settings, newsroom.factory, provider, fast(newsroom.settings), progress
        ).send(edition_id)
        assert report.status == "complete" and report.sent == total
        assert len(during) >= 4 and all(low <= seen <= high for low, seen, high in during)
        assert any(0 < seen < total for _low, seen, _high in during)  # some were caught mid-send
        after = scrape(site.url)
    store = statuses(newsroom, edition_id)
    for status in STATUSES:
        assert value(after, "newsletter_deliveries", newsletter="weekly", status=status) == store.get(
            status, 0
        )
    sent = ("newsletter_messages_sent_total", (("newsletter", "weekly"), ("provider", "outbox")))
    assert after.get(sent, 0) - before.get(sent, 0) == total
    assert value(after, "newsletter_deliveries_due", newsletter="weekly") == 0
    assert value(after, "newsletter_oldest_due_delivery_age_seconds", newsletter="weekly") == 0
    assert value(after, "newsletter_edition_duration_seconds", newsletter="weekly") >= 0
    with newsroom.factory() as session:
        finished = session.get_one(Edition, edition_id).finished_at
    assert finished is not None
    assert value(
        after, "newsletter_edition_finished_timestamp_seconds", newsletter="weekly"
    ) == pytest.approx(finished.timestamp())
    with newsroom.factory() as session:
        active = len(session.scalars(select(Subscriber.id).where(Subscriber.status == "active")).all())
    assert value(after, "newsletter_readers", status="active") == active


STATUSES = ("pending", "sending", "sent", "uncertain", "failed", "skipped", "suppressed")


@pytest.mark.both_databases
def test_due_is_what_may_go_now_and_waits_since_its_slot_or_its_retry(newsroom) -> None:
    add_readers(newsroom, 6)
    edition_id = prepared(newsroom)
    early = collected(newsroom, WEEKLY_NOV_23.astimezone(UTC) - timedelta(minutes=5))
    assert value(early, "newsletter_deliveries_due", newsletter="weekly") == 0  # its slot has not come
    pending = statuses(newsroom, edition_id)["pending"]
    assert value(early, "newsletter_deliveries", newsletter="weekly", status="pending") == pending
    now = AFTER_SLOT
    with unit_of_work(newsroom.factory) as session:
        ids = session.scalars(
            select(Delivery.id).where(Delivery.edition_id == edition_id).order_by(Delivery.id)
        ).all()
        later = update(Delivery).where(Delivery.id.in_(ids[:2]))
        session.execute(later.values(retry_at=now + timedelta(minutes=10)))  # asked for a later try
        session.execute(
            update(Delivery).where(Delivery.id.in_(ids[2:])).values(retry_at=now - timedelta(minutes=5))
        )
    found = collected(newsroom, now)
    assert value(found, "newsletter_deliveries_due", newsletter="weekly") == pending - 2
    assert value(found, "newsletter_oldest_due_delivery_age_seconds", newsletter="weekly") == 5 * 60
    with unit_of_work(newsroom.factory) as session:
        session.execute(update(Delivery).where(Delivery.id == ids[-1]).values(retry_at=None))
    found = collected(newsroom, now)
    assert value(found, "newsletter_oldest_due_delivery_age_seconds", newsletter="weekly") == 45 * 60
    with unit_of_work(newsroom.factory) as session:  # a sender died with two claims, one handed over
        dead = dict(
            status="sending", claimed_by="dead#1", claimed_at=now - timedelta(minutes=5), retry_at=None
        )
        session.execute(update(Delivery).where(Delivery.id.in_(ids[:2])).values(**dead))
        session.execute(
            update(Delivery).where(Delivery.id == ids[1]).values(handed_at=now - timedelta(minutes=5))
        )
    found = collected(newsroom, now)
    assert (
        value(found, "newsletter_deliveries_due", newsletter="weekly") == pending - 1
    )  # the other: uncertain
    with unit_of_work(newsroom.factory) as session:
        session.get_one(Edition, edition_id).held_at = now  # an editor's hold: not the job's delay
    held = collected(newsroom, now)
    assert value(held, "newsletter_deliveries_due", newsletter="weekly") == 0
    assert value(held, "newsletter_deliveries_due", newsletter="daily") == 0  # every newsletter named


def test_a_local_time_wave_still_ahead_is_not_due_and_one_that_came_is_due_since_its_moment(
    newsroom,
) -> None:
    """A local-time edition's readers each have their moment (`Delivery.due_at`): a wave ahead is
    not late (the operator's alert must not fire for New York at Brussels' breakfast)."""
    add_readers(newsroom, 6)
    edition_id = prepared(newsroom)
    pending = statuses(newsroom, edition_id)["pending"]
    now = AFTER_SLOT
    with unit_of_work(newsroom.factory) as session:
        ids = session.scalars(
            select(Delivery.id).where(Delivery.edition_id == edition_id).order_by(Delivery.id)
        ).all()
        session.execute(update(Delivery).values(due_at=now + timedelta(hours=6)))  # ahead
        session.execute(
            update(Delivery).where(Delivery.id.in_(ids[:2])).values(due_at=now - timedelta(minutes=7))
        )
    found = collected(newsroom, now)
    assert value(found, "newsletter_deliveries_due", newsletter="weekly") == 2
    assert value(found, "newsletter_oldest_due_delivery_age_seconds", newsletter="weekly") == 7 * 60
    later = collected(newsroom, now + timedelta(hours=6))
    assert value(later, "newsletter_deliveries_due", newsletter="weekly") == pending


def test_a_feed_s_last_fetch_its_outcome_and_time(make_runtime, tmp_path) -> None:
    good = ROOT / "tests" / "fixtures" / "latin1.xml"
    missing = tmp_path / "gone.xml"
    secret = "https://reader:hunter2secret@feeds.example/private.xml"
    runtime = make_runtime(feeds=[{"url": str(good)}, {"url": str(missing)}])
    fetch_feeds(runtime.settings, runtime.factory)
    runtime.settings.feeds.append(FeedSettings(url=secret))  # configured, never fetched yet
    found = collected(runtime, datetime.now(UTC))
    assert value(found, "newsletter_feed_last_fetch_status", feed=str(good), status="ok") == 1
    assert value(found, "newsletter_feed_last_fetch_status", feed=str(missing), status="error") == 1
    assert value(found, "newsletter_feed_last_fetch_status", feed=str(missing), status="ok") == 0
    assert value(found, "newsletter_feed_last_success_timestamp_seconds", feed=str(missing)) == 0
    assert value(found, "newsletter_feed_last_success_timestamp_seconds", feed=str(good)) > 0
    assert ("newsletter_feed_last_fetch_duration_seconds", (("feed", str(good)),)) in found
    assert not any("hunter2secret" in str(labels) for _name, labels in found)


def test_a_store_that_cannot_be_read_is_a_gauge_not_a_failed_scrape(make_runtime) -> None:
    runtime = make_runtime()
    runtime.engine.dispose()
    runtime.factory.configure(bind=_unreachable())
    found = collected(runtime, AFTER_SLOT)
    assert value(found, "newsletter_store_up") == 0
    assert not any(name.startswith("newsletter_deliveries") for name, _labels in found)


def _unreachable():  # a PostgreSQL URL nothing answers on
    from newsletter.store.db import make_engine

    port = _closed_port()
    return make_engine(f"postgresql://nobody@127.0.0.1:{port}/none?connect_timeout=2")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.both_databases
def test_one_clicks_sign_ups_and_confirmations_are_counted_once_written(newsroom, tmp_path) -> None:
    add_readers(newsroom, 3)
    with newsroom.factory() as session:
        ids = session.scalars(select(Subscriber.id).order_by(Subscriber.id)).all()[-3:]
    links = Links.from_settings(newsroom.settings)
    with serve(newsroom, tmp_path, clock=FixedClock(AFTER_SLOT), listening=True) as site:
        before = scrape(site.url)
        for reader in [*ids, ids[0]]:  # the first one twice: one newsletter left once
            assert (
                one_click(
                    links.unsubscribe(reader, "weekly").replace(
                        str(newsroom.settings.public_url).rstrip("/"), site.url
                    )
                )
                == 200
            )
        kind = readers.sign_up(
            newsroom,
            readers.SignUp(email="new.reader@example.com", newsletters=["weekly"], language="en"),
            AFTER_SLOT,
        )
        assert kind == "confirm"
        after = scrape(site.url)
    left = ("newsletter_unsubscribes_total", (("source", "one-click"),))
    assert after[left] - before.get(left, 0) == 3
    signed = ("newsletter_signups_total", (("outcome", "confirm"),))
    assert after[signed] - before.get(signed, 0) == 1


@pytest.fixture
def metrics_site(newsroom, tmp_path, monkeypatch):
    """The pages on loopback with `[metrics] allow` not naming loopback, a token set, and the
    proxies on loopback trusted."""
    extra = '[metrics]\nallow = ["10.0.0.0/8"]\n'
    readers_table = 'trusted_proxies = ["127.0.0.1"]'
    with serve(
        newsroom,
        tmp_path,
        readers=readers_table,
        extra=extra,
        env={"NEWSLETTER_METRICS_TOKEN": TOKEN},
        listening=True,
    ) as site:
        yield site


def test_metrics_are_refused_to_others_and_a_wrong_token(metrics_site) -> None:
    url = f"{metrics_site.url}/metrics"
    assert httpx.get(url).status_code == 403  # loopback is not in this allow list
    wrong = httpx.get(url, headers={"authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 403 and "newsletter_" not in wrong.text
    assert httpx.get(url, headers={"authorization": f"Basic {TOKEN}"}).status_code == 403
    assert httpx.get(url, headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200
    # Behind the trusted proxy: the client it names decides.
    assert httpx.get(url, headers={"x-forwarded-for": "10.1.2.3"}).status_code == 200
    assert httpx.get(url, headers={"x-forwarded-for": "10.1.2.3, 203.0.113.9"}).status_code == 403


def test_a_request_forwarded_by_an_untrusted_proxy_is_not_taken_for_a_local_one(newsroom, tmp_path) -> None:
    with serve(newsroom, tmp_path, listening=True) as site:  # default: loopback allowed, no proxy trusted
        url = f"{site.url}/metrics"
        assert httpx.get(url).status_code == 200
        assert httpx.get(url, headers={"x-forwarded-for": "203.0.113.9"}).status_code == 403
        assert httpx.get(url, headers={"forwarded": "for=203.0.113.9"}).status_code == 403
        assert httpx.get(url, headers={"x-real-ip": "203.0.113.9"}).status_code == 403


def test_run_s_own_port_answers_the_same_and_refuses_the_same(make_runtime) -> None:
    runtime = make_runtime(metrics={"allow": ["10.0.0.0/8"], "port": 0}, metrics_token=TOKEN)
    server = MetricsServer(
        runtime.settings, registry(runtime, lambda: AFTER_SLOT), serving.listen("127.0.0.1", 0)
    )
    server.start()
    try:
        url = server.address
        assert httpx.get(url).status_code == 403
        assert httpx.get(url, headers={"authorization": "Bearer wrong-token-here"}).status_code == 403
        answer = httpx.get(url, headers={"authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200
        samples = parsed(answer.text)
        assert value(samples, "newsletter_store_up") == 1
        assert (
            httpx.get(
                url.replace("/metrics", "/other"), headers={"authorization": f"Bearer {TOKEN}"}
            ).status_code
            == 404
        )
    finally:
        server.stop()


def test_run_s_own_port_holds_a_bounded_number_of_connections_and_no_traceback_for_one_gone(
    make_runtime, monkeypatch, capfd
) -> None:
    """Idle connections beyond the cap are closed at once (no thread each); a client that goes
    before its answer is a debug line, not a traceback on standard error."""
    from newsletter.metrics import exposition

    monkeypatch.setattr(exposition, "MAX_SCRAPES", 2)
    runtime = make_runtime(metrics={"port": 0})
    server = MetricsServer(
        runtime.settings, registry(runtime, lambda: AFTER_SLOT), serving.listen("127.0.0.1", 0)
    )
    server.start()
    host, port = server.sock.getsockname()[:2]
    idle = [socket.create_connection((host, port)) for _ in range(2)]
    try:
        extra = socket.create_connection((host, port))
        extra.settimeout(5)
        assert extra.recv(1) == b""  # closed unanswered: both slots are held
        extra.close()
        for held in idle:
            held.sendall(b"GET /metrics HTTP/1.1\r\n")  # never finished
            held.close()
        gone = socket.create_connection((host, port))
        gone.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        gone.close()  # before the answer
        for _ in range(50):  # the slots come back as their threads end
            try:
                answer = httpx.get(server.address, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert answer.status_code == 200
    finally:
        server.stop()
    assert "Traceback" not in capfd.readouterr().err


def test_a_guessable_token_is_refused(make_runtime) -> None:
    from newsletter.errors import SettingsError

    with pytest.raises(SettingsError, match="NEWSLETTER_METRICS_TOKEN"):
        make_runtime(metrics_token="change-me-your-secret-token")


@pytest.mark.e2e
def test_serve_with_two_workers_sums_their_counters(newsroom, tmp_path) -> None:
    """Each worker process counts in its own files of a private folder the command made; a scrape,
    whichever worker answers it, sums them; the folder goes when the command stops."""
    add_readers(newsroom, 12)
    with newsroom.factory() as session:
        ids = session.scalars(select(Subscriber.id).order_by(Subscriber.id)).all()[-12:]
    temp = Path(tempfile.gettempdir())
    before = set(os.listdir(temp))
    with process(newsroom, tmp_path, "serve", "--workers", "2") as url:
        links = Links.from_settings(newsroom.settings)
        base = str(newsroom.settings.public_url).rstrip("/")
        for reader in ids:  # new connections each: both workers answer some
            assert one_click(links.unsubscribe(reader, "weekly").replace(base, url)) == 200
        folders = [name for name in set(os.listdir(temp)) - before if name.startswith("newsletter-metrics-")]
        assert len(folders) == 1 and os.listdir(temp / folders[0])  # the workers' counters' files

        def summed() -> bool:
            samples = scrape(url)
            return value(samples, "newsletter_unsubscribes_total", source="one-click") == 12

        until(summed, 30)
        samples = scrape(url)
        assert value(samples, "newsletter_deliveries_due", newsletter="weekly") == 0
    assert not (temp / folders[0]).exists()  # removed once the workers stopped


def test_a_confirmation_is_counted_once(make_runtime) -> None:
    runtime = make_runtime()
    made = registry(runtime, lambda: AFTER_SLOT)
    before = parsed(generate_latest(made).decode())
    notices: list[partial[object]] = []
    asked = readers.SignUp(email="clara@example.com", newsletters=["weekly"], language="en")
    assert readers.sign_up(runtime, asked, AFTER_SLOT, notices.append) == "confirm"
    token = token_of(str(notices[0].args[4]))  # the confirmation link the notice carries
    readers.confirm(runtime, token, AFTER_SLOT)
    readers.confirm(runtime, token, AFTER_SLOT)  # followed again: already active
    after = parsed(generate_latest(made).decode())
    confirmed = ("newsletter_confirmations_total", ())
    assert after[confirmed] - before.get(confirmed, 0) == 1
    asked_once = ("newsletter_signups_total", (("outcome", "confirm"),))
    assert after[asked_once] - before.get(asked_once, 0) == 1


@pytest.mark.both_databases
def test_webhook_events_are_counted_by_type_once_each(newsroom) -> None:
    keys = WebhookKeys.make()
    with_webhook(newsroom, keys)
    add_readers(newsroom, 2)
    edition_id = prepared(newsroom)
    Sender(newsroom.settings, newsroom.factory, OutboxProvider(newsroom.settings.outbox_dir)).send(edition_id)
    with newsroom.factory() as session:
        rows = session.execute(
            select(Delivery, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.edition_id == edition_id)
            .limit(2)
        ).all()
    made = registry(newsroom, lambda: AFTER_SLOT)
    before = parsed(generate_latest(made).decode())
    now = datetime.now(UTC)
    posted = [
        entry("delivered", rows[0][0], rows[0][1], "m1", now),
        entry("open", rows[0][0], rows[0][1], "m1", now),
        entry("delivered", rows[1][0], rows[1][1], "m2", now),
        entry("made_up_kind", rows[1][0], rows[1][1], "m2", now),
    ]
    deliver(newsroom, keys, posted, now)
    deliver(newsroom, keys, posted, now + timedelta(seconds=1))  # SendGrid's retry: the same events
    after = parsed(generate_latest(made).decode())

    def counted(kind: str) -> float:
        key = ("newsletter_webhook_events_total", (("event", kind), ("provider", "sendgrid")))
        return after.get(key, 0) - before.get(key, 0)

    assert (counted("delivered"), counted("open"), counted("other")) == (2, 1, 1)
    assert not any("made_up_kind" in str(labels) for _name, labels in after)


def test_the_dashboard_alerts_and_readme_name_only_metrics_a_scrape_gives(newsroom) -> None:
    """Docs stay honest: a renamed metric fails here, not on an operator's empty panel."""
    add_readers(newsroom, 1)
    Sender(newsroom.settings, newsroom.factory, OutboxProvider(newsroom.settings.outbox_dir)).send(
        prepared(newsroom)
    )
    text = generate_latest(registry(newsroom, lambda: AFTER_SLOT)).decode()
    families = {family.name for family in text_string_to_metric_families(text)}  # counters: no _total
    given = families | {f"{name}_total" for name in families}
    dashboard = json.loads((ROOT / "config" / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    alerts = yaml.safe_load((ROOT / "config" / "prometheus-alerts.yml").read_text())
    expressions += [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Metrics") : readme.index("## Benchmarks")]
    named = {name for text in [*expressions, section] for name in re.findall(r"\bnewsletter_[a-z_]+\b", text)}
    assert named and named <= given, named - given
    shown = {name for text in expressions for name in re.findall(r"\bnewsletter_[a-z_]+\b", text)}
    ours = {name for name in families if name.startswith("newsletter_") and not name.endswith("_created")}
    unshown = ours - {n.removesuffix("_total") for n in shown}
    assert unshown == {"newsletter_edition_finished_timestamp_seconds"}  # every other one on the dashboard


@pytest.mark.e2e
def test_run_answers_on_its_metrics_port_what_it_sent(tmp_path) -> None:
    """`newsletter run` without the pages: its own port answers /metrics while it sends a due
    edition, and once it is sent its counter of accepted messages is the ledger's count."""
    config = project(tmp_path, readers=30)
    job = start(config, tmp_path, NEWSLETTER_METRICS__PORT="0")
    try:
        said = "".join(job.said)
        url = re.search(r"metrics for Prometheus on (http://127\.0\.0\.1:\d+)/metrics", said)
        assert url, said

        def sent() -> bool:
            samples = scrape(url[1])
            return value(samples, "newsletter_deliveries_due", newsletter="weekly") == 0 and bool(
                value(samples, "newsletter_deliveries", newsletter="weekly", status="sent")
            )

        until(sent, 60)
        samples = scrape(url[1])
    finally:
        stop(job)
    [(status, counts)] = editions(config)
    assert status == "complete"
    assert value(samples, "newsletter_deliveries", newsletter="weekly", status="sent") == counts["sent"]
    assert (
        value(samples, "newsletter_messages_sent_total", newsletter="weekly", provider="outbox")
        == counts["sent"]
    )
    assert (
        value(samples, "newsletter_feed_last_fetch_status", feed=str(SAMPLE / "site.xml"), status="ok")
        + value(
            samples, "newsletter_feed_last_fetch_status", feed=str(SAMPLE / "site.xml"), status="not-modified"
        )
        == 1
    )


def test_the_workers_counters_folder_is_private_fresh_and_removed(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = tmp_path / f"{FOLDER_PREFIX}{gone.stdout.strip()}-abc"  # a killed command's
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"\0" * 16)
    running = tmp_path / f"{FOLDER_PREFIX}{os.getpid()}-xyz"  # a command still running
    running.mkdir()
    with shared_counters() as folder:
        assert os.environ[MULTIPROCESS_VARIABLE] == str(folder)
        assert folder.parent == tmp_path and not os.listdir(folder)
        assert folder.stat().st_mode & 0o777 == 0o700
        assert not stale.exists() and running.exists()
    assert MULTIPROCESS_VARIABLE not in os.environ and not folder.exists()


def test_odd_authorization_headers_are_refused_never_a_failure(metrics_site) -> None:
    url = f"{metrics_site.url}/metrics"
    for value in (
        b"Bearer \xff\xfe" + TOKEN.encode(),  # not ASCII
        b"Bearer",
        b"Bearer " + TOKEN.encode() + b"x",
        b"Bearer " + TOKEN[:-1].encode(),
        b"Token " + TOKEN.encode(),
        b"Bearer " + b"a" * 8000,
    ):
        assert httpx.get(url, headers=[(b"authorization", value)]).status_code == 403, value
    twice = [(b"authorization", f"Bearer {TOKEN}".encode())] * 2
    assert httpx.get(url, headers=twice).status_code == 403
    assert (
        httpx.get(url, headers={"authorization": f"bearer  {TOKEN}"}).status_code == 200
    )  # the scheme's case is free


def test_an_empty_token_is_no_token(make_runtime) -> None:
    assert make_runtime(metrics_token="").settings.metrics_token is None
