"""What a hostile or broken feed source cannot do to `newsletter fetch`: hold it past its deadline,
exhaust memory through a local device, reach private addresses, or leak a feed's credentials."""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.errors import FeedError
from newsletter.ingest.fetch import display_url, fetch, is_public, make_client
from newsletter.ingest.run import fetch_feeds
from newsletter.services.feeds import feed_states
from newsletter.settings import FeedSettings, FetchSettings
from newsletter.store.models import Feed
from tests.conftest import SAMPLE
from tests.feedserver import FeedServer, Route, TrickleServer
from tests.support.cli import newsletter

GOOD_FILE = str(SAMPLE / "category-health.xml")  # 7 entries: the feed that must carry on
FEED = (SAMPLE / "category-health.xml").read_bytes()
REFUSING = FetchSettings(allow_private=False, timeout_seconds=1)


def run(make_runtime, urls: list[str], **fetch_settings: object) -> dict[str, object]:
    fetching = {"allow_private": True, **fetch_settings}  # the test servers are on loopback
    runtime = make_runtime(feeds=[FeedSettings(url=url) for url in urls], fetch=fetching)
    return {report.url: report for report in fetch_feeds(runtime.settings, runtime.factory)}


@pytest.fixture
def trickle() -> Iterator[list[TrickleServer]]:
    started: list[TrickleServer] = []
    yield started
    for server in started:
        server.close()


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: %d\r\n\r\n" % len(FEED)


@pytest.mark.parametrize(
    "parts",
    [
        pytest.param({"slow": HEAD[:60], "rest": HEAD[60:] + FEED}, id="headers"),
        pytest.param({"fast": HEAD + FEED[:10], "slow": FEED[10:60], "rest": FEED[60:]}, id="body"),
    ],
)
def test_a_server_dripping_its_answer_is_cut_at_the_timeout(make_runtime, trickle, parts) -> None:
    """A byte every 0.25 s never trips a per-read timeout; the deadline covers the whole exchange."""
    server = TrickleServer(**parts)
    trickle.append(server)
    started = time.monotonic()
    reports = run(make_runtime, [server.url("/feed/"), GOOD_FILE], timeout_seconds=1)
    slow = reports[server.url("/feed/")]
    assert time.monotonic() - started < 1 + 2
    assert slow.status == "error" and "timed out after 1 s" in slow.problem
    assert reports[GOOD_FILE].status == "ok" and reports[GOOD_FILE].new == 7


def test_local_devices_fifos_and_folders_are_refused(make_runtime, tmp_path: Path) -> None:
    """/dev/zero would fill memory and a FIFO with no writer would block forever."""
    fifo = tmp_path / "feed.xml"
    os.mkfifo(fifo)
    reports = run(make_runtime, ["/dev/zero", str(fifo), f"file://{tmp_path}", GOOD_FILE])
    for url in ("/dev/zero", str(fifo), f"file://{tmp_path}"):
        assert reports[url].status == "error" and "not a regular file" in reports[url].problem, url
    assert reports[GOOD_FILE].status == "ok"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_a_local_file_is_read_with_the_size_cap(make_runtime) -> None:
    """A /proc file says it is empty and is not: the cap holds while reading, not only at stat."""
    reports = run(make_runtime, ["/proc/self/status"], max_bytes=100)
    assert reports["/proc/self/status"].status == "error"
    assert "larger than the 100-byte limit" in reports["/proc/self/status"].problem


def test_address_rules() -> None:
    refused = [
        "127.0.0.1",
        "127.8.8.8",
        "10.0.0.7",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "2002:7f00:1::1",
        "64:ff9b::a00:1",
    ]
    allowed = ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"]
    assert [a for a in refused if is_public(ip_address(a))] == []
    assert [a for a in allowed if not is_public(ip_address(a))] == []


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "2130706433",  # 127.0.0.1 spelled as one number
        "0.0.0.0",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "10.0.0.7",
        "192.168.1.1",
        "169.254.169.254",
        "[fe80::1]",
        "[fd00::1]",
    ],
)
def test_private_addresses_are_refused(feed_server: FeedServer, host: str) -> None:
    feed_server.routes["/feed/"] = Route(body=FEED)
    with make_client(REFUSING) as client, pytest.raises(FeedError) as caught:
        fetch(client, f"http://{host}:{feed_server.port}/feed/", REFUSING)
    assert "refused" in caught.value.problem and "fetch.allow_private" in caught.value.problem
    assert feed_server.requests == []


def test_a_refused_feed_is_recorded_and_the_others_carry_on(make_runtime, feed_server: FeedServer) -> None:
    feed_server.routes["/feed/"] = Route(body=FEED)
    url = feed_server.url("/feed/")
    runtime = make_runtime(
        feeds=[FeedSettings(url=url), FeedSettings(url=GOOD_FILE)], fetch={"allow_private": False}
    )
    refused, good = fetch_feeds(runtime.settings, runtime.factory)
    assert refused.status == "error" and "refused" in refused.problem
    assert good.status == "ok" and good.new == 7
    with runtime.factory() as session:
        row = session.scalars(select(Feed).where(Feed.url == url)).one()
        assert row.last_status == "error" and "fetch.allow_private" in row.last_error
    assert feed_server.requests == []


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/feed/",
        "http://0.0.0.0:{port}/feed/",
        "http://[::1]:{port}/feed/",
        "http://[::ffff:127.0.0.1]:{port}/feed/",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
    ],
)
def test_a_redirect_to_a_private_address_is_refused(feed_server: FeedServer, target: str) -> None:
    """Every hop is checked. The test server stands in for a public one: its own address, and only
    that, is let through; every other address is judged as in production."""
    target = target.format(port=feed_server.port)
    feed_server.routes["/feed/"] = Route(body=FEED)
    feed_server.routes["/hop/"] = Route(status=302, location="/hop2/")
    feed_server.routes["/hop2/"] = Route(status=301, location=target)
    server = ip_address("127.0.0.1")
    with make_client(REFUSING, allowed=lambda a: a == server or is_public(a)) as client:
        with pytest.raises(FeedError) as caught:
            fetch(client, feed_server.url("/hop/"), REFUSING)
        assert "refused" in caught.value.problem and "redirected to http://" in caught.value.problem
        assert [path for path, _ in feed_server.requests] == ["/hop/", "/hop2/"]
        assert fetch(client, feed_server.url("/feed/"), REFUSING).content == FEED  # the exemption works


def test_redirects_are_followed_hop_by_hop_within_max_redirects(feed_server: FeedServer) -> None:
    feed_server.routes["/old/"] = Route(status=301, location="/older/")
    feed_server.routes["/older/"] = Route(status=308, location=feed_server.url("/feed/"))
    feed_server.routes["/feed/"] = Route(body=FEED, etag='"v1"')
    settings = FetchSettings(allow_private=True, max_redirects=2)
    with make_client(settings) as client:
        fetched = fetch(client, feed_server.url("/old/"), settings)
        assert (fetched.status, fetched.content, fetched.etag) == (200, FEED, '"v1"')
        assert fetch(client, feed_server.url("/old/"), settings, etag='"v1"').status == 304
        assert feed_server.requests_to("/feed/")[-1]["if-none-match"] == '"v1"'
        one = FetchSettings(allow_private=True, max_redirects=1)
        with pytest.raises(FeedError, match="more than 1 redirects"):
            fetch(client, feed_server.url("/old/"), one)


def test_a_malformed_url_is_that_feeds_error(make_runtime) -> None:
    reports = run(make_runtime, ["http://[::1/feed/", GOOD_FILE])
    assert reports["http://[::1/feed/"].status == "error"
    assert reports[GOOD_FILE].status == "ok"


def test_display_url_hides_passwords_and_tokens() -> None:
    """A user name alone is often a token (https://TOKEN@host/), so all user information goes."""
    assert display_url("https://reader:s3cret@feeds.example/f?q=1") == "https://***@feeds.example/f?q=1"
    assert display_url("HTTPS://ghp_t0ken@feeds.example/f") == "HTTPS://***@feeds.example/f"
    assert display_url("https://a:b@c@feeds.example/f") == "https://***@feeds.example/f"
    assert (
        display_url("https://feeds.example/f?next=http://a:b@c/")
        == "https://feeds.example/f?next=http://a:b@c/"
    )
    assert display_url("http://[::1/feed/") == "http://[::1/feed/"
    assert display_url("https://feeds.example/f?next=a@b") == "https://feeds.example/f?next=a@b"
    assert display_url("/srv/feeds/site.xml") == "/srv/feeds/site.xml"


SECRETS = ("s3cret-pass", "t0ken-abc", base64.b64encode(b"reader:s3cret-pass").decode())


def test_credentials_in_a_feed_url_are_never_shown(make_runtime, feed_server: FeedServer, caplog) -> None:
    feed_server.routes["/private/"] = Route(body=FEED)
    feed_server.routes["/down/"] = Route(status=500, body=b"oops")
    with_password = f"http://reader:s3cret-pass@127.0.0.1:{feed_server.port}/private/"
    with_token = f"http://t0ken-abc@127.0.0.1:{feed_server.port}/down/"
    runtime = make_runtime(feeds=[FeedSettings(url=with_password), FeedSettings(url=with_token)])
    caplog.set_level(logging.DEBUG)
    logging.getLogger("newsletter").propagate = True  # an entry point may have turned it off
    reports = fetch_feeds(runtime.settings, runtime.factory)
    assert [r.status for r in reports] == ["ok", "error"]
    assert [r.url for r in reports] == [display_url(with_password), display_url(with_token)]
    sent = feed_server.requests_to("/private/")[0]
    assert sent["authorization"] == "Basic " + SECRETS[2]  # the credentials are still used
    shown = [caplog.text, *(f"{r.url} {r.problem}" for r in reports)]
    shown += [f"{s.url} {s.error}" for s in feed_states(runtime)]
    with runtime.factory() as session:
        shown += [str(row.last_error) for row in session.scalars(select(Feed))]
    assert "HTTP 500" in " ".join(shown)
    assert not [secret for secret in SECRETS if secret in " ".join(shown)]


def test_credentials_never_reach_the_command_output(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.routes["/private/"] = Route(body=FEED)
    feed_server.routes["/down/"] = Route(status=503, body=b"down")
    config = tmp_path / "newsletter.toml"
    config.write_text(
        f'database_url = "sqlite:///{tmp_path / "n.db"}"\n[fetch]\nallow_private = true\n'
        f'[[feeds]]\nurl = "http://reader:s3cret-pass@127.0.0.1:{feed_server.port}/private/"\n'
        f'[[feeds]]\nurl = "http://t0ken-abc@127.0.0.1:{feed_server.port}/down/"\n'
    )
    env = {"NEWSLETTER_CONFIG": str(config), "COLUMNS": "250"}
    fetched = newsletter("--verbose", "fetch", env=env, cwd=tmp_path)
    status = newsletter("status", env=env, cwd=tmp_path)
    assert fetched.returncode == 1 and "HTTP 503" in fetched.stderr and "Traceback" not in fetched.stderr
    assert "***@127.0.0.1" in status.stdout
    printed = fetched.stdout + fetched.stderr + status.stdout + status.stderr
    assert not [secret for secret in SECRETS if secret in printed]
