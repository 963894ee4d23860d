"""A stop (the scheduler's SIGTERM) ends work within seconds, in process: an SMTP send hands no
further message over and gives the rest back, a feed that hangs is cut short and not blamed."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from aiosmtpd.controller import Controller

from newsletter.ingest.fetch import FetchStopped, fetch, make_client
from newsletter.ingest.run import fetch_feeds
from newsletter.sending.pace import Pace
from newsletter.sending.providers.smtp import SMTPProvider
from newsletter.sending.sender import Sender
from newsletter.services.feeds import feed_states
from newsletter.settings import FetchSettings, Settings
from tests.conftest import SAMPLE, free_port
from tests.feedserver import FeedServer, Route
from tests.support.editions import tally, weekly_edition
from tests.support.waiting import until

pytestmark = pytest.mark.both_databases

CONNECTIONS = 2


class StopAfter:
    """An SMTP sink that sets `stop` once it has taken `count` messages (a SIGTERM mid-send)."""

    def __init__(self, count: int, stop: threading.Event) -> None:
        self.count, self.stop = count, stop
        self.taken: list[str] = []

    async def handle_DATA(self, server, session, envelope):
        self.taken += envelope.rcpt_tos
        if len(self.taken) >= self.count:
            self.stop.set()
        return "250 OK"


def test_a_stop_mid_send_hands_nothing_more_over_and_gives_the_rest_back(newsroom) -> None:
    edition_id = weekly_edition(newsroom, 60)  # one batch: 100 a connection
    readers = sum(tally(newsroom, edition_id).values())
    stop = threading.Event()
    sink = StopAfter(5, stop)
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    settings = Settings(
        **{
            **newsroom.settings.model_dump(),
            "provider": "smtp",
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_tls": "none",
            "sending": {"smtp_connections": CONNECTIONS},
        }
    )
    provider = SMTPProvider(settings, stop)
    try:
        report = Sender(settings, newsroom.factory, provider, Pace(), stop=stop).send(edition_id)
    finally:
        provider.close()
        controller.stop()
    # What was on the wire finished and is recorded; nothing else went, and it is pending again.
    assert report.status == "sending" and 5 <= len(sink.taken) <= 5 + CONNECTIONS
    assert tally(newsroom, edition_id) == {"sent": len(sink.taken), "pending": readers - len(sink.taken)}


@pytest.fixture
def hanging(feed_server: FeedServer) -> FeedServer:
    feed_server.routes["/hangs/"] = Route(body=(SAMPLE / "site.xml").read_bytes(), delay=60)
    return feed_server


def test_a_stop_cuts_a_hanging_fetch_short(hanging: FeedServer) -> None:
    settings = FetchSettings(allow_private=True, timeout_seconds=60)
    stop = threading.Event()
    with make_client(settings) as client, ThreadPoolExecutor(1) as pool:
        fetching = pool.submit(fetch, client, hanging.url("/hangs/"), settings, stop=stop)
        until(lambda: hanging.requests_to("/hangs/"))
        stop.set()
        began = time.monotonic()
        with pytest.raises(FetchStopped):
            fetching.result(timeout=10)
        assert time.monotonic() - began < 1


def test_a_refresh_stopped_during_a_hanging_feed_blames_no_feed(make_runtime, hanging: FeedServer) -> None:
    runtime = make_runtime(feeds=[{"url": hanging.url("/hangs/")}, {"url": str(SAMPLE / "site.xml")}])
    stop = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        refreshing = pool.submit(fetch_feeds, runtime.settings, runtime.factory, stop=stop)
        until(lambda: hanging.requests_to("/hangs/"))
        stop.set()
        assert refreshing.result(timeout=10) == []  # the rest is left for the next refresh
    assert [state.status for state in feed_states(runtime)] == [None]  # not recorded as failing
