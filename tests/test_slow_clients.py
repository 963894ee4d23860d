"""The server over a real socket, held to `[web]`: a client that sends its headers or its body
too slowly, or headers too large or too many, loses its own connection and nobody else's; one
that goes away is a line at info, not a traceback. The deadlines are set low to keep it quick."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.clock import NOW
from tests.support.waiting import until
from tests.support.web import Site, serve
from tests.support.webhook import WebhookKeys

KEYS = WebhookKeys.make()
LIMITS = "[web]\nheader_bytes = 2048\nheader_count = 30\nheader_seconds = 1.0\nbody_seconds = 1.0\n"
WEBHOOK = "/webhooks/sendgrid"


@pytest.fixture
def site(newsroom, tmp_path) -> Iterator[Site]:
    env = {"NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY": KEYS.public}
    yield from serve(newsroom, tmp_path, env=env, extra=LIMITS, listening=True)


def connect(site: Site) -> socket.socket:
    url = urlsplit(site.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    return sock


def answer(sock: socket.socket) -> bytes:
    """What the server sent before closing the connection (b"" if it closed without a word)."""
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return got


def trickle(sock: socket.socket, stop: threading.Event, every: float = 0.2) -> threading.Thread:
    """One byte every `every` seconds until the server closes the connection or `stop` is set."""

    def run() -> None:
        while not stop.wait(every):
            try:
                sock.sendall(b"x")
            except OSError:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def answer_while_trickling(sock: socket.socket) -> tuple[bytes, float]:
    """What the server answers a connection that keeps sending a byte at a time, and how many
    seconds it took."""
    stop = threading.Event()
    trickle(sock, stop)
    began = time.monotonic()
    try:
        return answer(sock), time.monotonic() - began
    finally:
        stop.set()


def forged_post(length: int) -> bytes:
    """The head of an event POST with a well-formed signature SendGrid never made."""
    _body, headers = WebhookKeys.make().sign([], NOW)
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (
        f"POST {WEBHOOK} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{lines}\r\n"
    ).encode()


def test_slow_bodies_do_not_stall_the_webhook_and_lose_their_own_slot(site: Site, caplog) -> None:
    caplog.set_level(logging.INFO, logger="newsletter.web")
    stop = threading.Event()
    slow = [connect(site) for _ in range(4)]  # as many as the webhook reads at once
    for sock in slow:
        sock.sendall(forged_post(1_000_000) + b"[")
        trickle(sock, stop)
    time.sleep(0.3)  # the four hold the reading slots
    body, headers = KEYS.sign([], NOW)
    began = time.monotonic()
    try:
        signed = httpx.post(site.url + WEBHOOK, content=body, headers=headers, timeout=8)
    finally:
        answers = [answer(sock) for sock in slow]
        stop.set()
    assert signed.status_code == 200, signed.text
    assert time.monotonic() - began < 4  # the slow ones were cut off after about a second
    assert all(got.startswith(b"HTTP/1.1 408") for got in answers), answers
    cut = [r for r in caplog.records if "too slowly" in r.getMessage()]
    assert len(cut) == 4 and {r.levelno for r in cut} == {logging.INFO}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_strangers_queued_for_the_reading_slots_hold_a_real_post_back_no_longer_than_a_body(
    site: Site,
) -> None:
    """Twelve slow strangers, three rounds of the four slots: a signed POST waits at most
    `body_seconds` for a place, then is told to post again later (SendGrid does), never longer."""
    stop = threading.Event()
    slow = [connect(site) for _ in range(12)]
    for sock in slow:
        sock.sendall(forged_post(1_000_000) + b"[")
        trickle(sock, stop)
    time.sleep(0.3)  # four read, eight wait
    body, headers = KEYS.sign([], NOW)
    began = time.monotonic()
    try:
        answered = httpx.post(site.url + WEBHOOK, content=body, headers=headers, timeout=10)
        took = time.monotonic() - began
    finally:
        stop.set()
        for sock in slow:
            sock.close()
    assert answered.status_code in (200, 503) and took < 2.0, (answered.status_code, took)
    if answered.status_code == 503:
        assert answered.headers["retry-after"] == "5"


def test_a_client_that_goes_away_is_one_line_at_info(site: Site, caplog) -> None:
    caplog.set_level(logging.INFO)
    sock = connect(site)
    sock.sendall(forged_post(1000) + b"[1,")
    time.sleep(0.3)
    sock.close()
    until(lambda: any("went away" in r.getMessage() for r in caplog.records), 5)
    gone = [r for r in caplog.records if "went away" in r.getMessage()]
    assert len(gone) == 1 and gone[0].levelno == logging.INFO and not gone[0].exc_info
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_form_body_that_trickles_is_answered_408_and_the_pages_go_on(site: Site) -> None:
    sock = connect(site)
    head = (
        "POST /subscribe HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    )
    sock.sendall(f"{head}Content-Length: 5000\r\n\r\nemail=".encode())
    got, took = answer_while_trickling(sock)
    assert got.startswith(b"HTTP/1.1 408") and took < 4, got
    assert httpx.get(site.url + "/healthz", timeout=5).status_code == 200


def test_headers_that_trickle_lose_their_connection(site: Site) -> None:
    for first in (b"", b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n"):  # silent, then slow
        sock = connect(site)
        sock.sendall(first)
        got, took = answer_while_trickling(sock)  # the trickle's bytes are no header line: no answer
        assert got == b"" and took < 4


def test_headers_too_large_are_refused_before_they_are_all_read(site: Site) -> None:
    sock = connect(site)
    # Never finished: the server answers once it holds more than `header_bytes` of them.
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 8000)
    got = answer(sock)
    assert got.startswith(b"HTTP/1.1 400"), got
    big = httpx.get(site.url + "/healthz", headers={"X-Big": "a" * 3000}, timeout=5)
    assert big.status_code == 431  # arrived at once, it was read: the app refuses it
    assert httpx.get(site.url + "/healthz", headers={"X-Fine": "a" * 1000}, timeout=5).status_code == 200


def test_a_long_request_line_counts_against_the_header_bytes(site: Site) -> None:
    """A query string is as much the client's as a header: 3 KB of it under a 2 KB cap is 431."""
    refused = httpx.get(site.url + "/healthz?" + "q=" + "a" * 3000, timeout=5)
    assert refused.status_code == 431
    assert httpx.get(site.url + "/healthz?q=" + "a" * 500, timeout=5).status_code == 200


def test_too_many_header_lines_are_refused(site: Site) -> None:
    many = {f"X-H{n}": "1" for n in range(40)}
    refused = httpx.get(site.url + "/healthz", headers=many, timeout=5)
    assert refused.status_code == 431 and refused.headers["connection"] == "close"
    assert (
        httpx.get(site.url + "/healthz", headers=dict(list(many.items())[:20]), timeout=5).status_code == 200
    )


def test_the_rest_of_a_body_already_refused_cannot_hold_the_connection(site: Site) -> None:
    sock = connect(site)
    head = f"POST {WEBHOOK} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n"
    sock.sendall(head.encode() + b"[")  # unsigned: refused before its body is read
    got, took = answer_while_trickling(sock)
    assert got.startswith(b"HTTP/1.1 403") and took < 4, got


def test_a_body_that_trickles_just_fast_enough_is_cut_off_all_the_same(newsroom, tmp_path) -> None:
    """Fast enough for `body_min_rate` forever (the probe's 600 bytes a second on an 8 MB body held
    a webhook slot for hours): `body_max_seconds` ends it."""
    steady = LIMITS + "body_min_rate = 1\nbody_max_seconds = 2.0\n"  # a byte each 0.2 s: fast enough
    env = {"NEWSLETTER_SENDGRID_WEBHOOK_PUBLIC_KEY": KEYS.public}
    served = serve(newsroom, tmp_path, env=env, extra=steady, listening=True)
    site = next(served)
    try:
        sock = connect(site)
        sock.sendall(forged_post(1_000_000) + b"[")
        got, took = answer_while_trickling(sock)
        assert got.startswith(b"HTTP/1.1 408") and 1.5 < took < 4, (got, took)
    finally:
        served.close()
