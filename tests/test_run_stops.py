"""SIGTERM stops `newsletter run` within seconds (real processes, real time): mid-send against a
slow relay, what is on the wire finishes and is recorded and the rest is given back; during a
feed that hangs, the fetch is cut short."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import free_port
from tests.feedserver import FeedServer, Route
from tests.smtp_sink import Counter
from tests.support.run import editions, project, start, stop, until

pytestmark = pytest.mark.e2e
BOUND = 5.0  # seconds from SIGTERM to a clean exit


@pytest.fixture
def slow_relay() -> Iterator[tuple[Counter, int]]:
    """A relay answering each command 50 ms late: 400 messages on 4 connections take 15 s."""
    handler = Counter(latency=0.05)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def test_sigterm_mid_send_stops_within_seconds_and_the_ledger_says_what_went(tmp_path, slow_relay) -> None:
    """End to end: a real SIGTERM delivered to `newsletter run` in the middle of a send; signals
    reach only a process of its own."""
    relay, port = slow_relay
    config = project(tmp_path, readers=990)
    smtp = {
        "NEWSLETTER_PROVIDER": "smtp",
        "NEWSLETTER_SMTP_HOST": "127.0.0.1",
        "NEWSLETTER_SMTP_PORT": str(port),
        "NEWSLETTER_SMTP_TLS": "none",
    }
    job = start(config, tmp_path, **smtp)
    until(lambda: relay.messages >= 20)  # both batches with the relay
    _out, err = stop(job, within=BOUND)
    [(status, counts)] = editions(config)
    assert status == "sending" and "sending" not in counts  # nothing left claimed
    assert counts["sent"] == relay.messages  # every message the relay took is recorded, no other
    assert counts["pending"] == 1000 - relay.messages  # the rest given back
    assert "Traceback" not in err


def test_sigterm_during_a_hanging_feed_stops_within_seconds(tmp_path, feed_server: FeedServer) -> None:
    """End to end: a real SIGTERM delivered to `newsletter run` while a feed hangs; signals reach
    only a process of its own."""
    config = project(tmp_path)
    feed_server.routes["/hangs/"] = Route(body=b"<rss/>", delay=120)
    with config.open("a") as settings:  # after the project's first fetch
        settings.write(f'[[feeds]]\nurl = "{feed_server.url("/hangs/")}"\n[fetch]\nallow_private = true\n')
    job = start(config, tmp_path)
    until(lambda: feed_server.requests_to("/hangs/"))
    began = time.monotonic()
    out, err = stop(job, within=BOUND)
    assert "stopped" in out and time.monotonic() - began < BOUND
    assert "/hangs/: cut short" in err
