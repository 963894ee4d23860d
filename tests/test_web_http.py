"""HTTP at the edge (issue #22, points 3 and 9), `newsletter serve`'s app in this process: the client
is read from every X-Forwarded-For line a trusted proxy passes on, the limits and the audit log
count that client; HEAD answers like GET without the body, `/healthz` included; a 405 names
every method its address serves; a trailing-slash redirect goes to the public URL, whatever
Host the request named."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from newsletter.services import accounts
from tests.support.clock import NOW
from tests.support.editors import ED, LOGIN, PASSWORD, login_form
from tests.support.web import PARTNER, Site, serve

# A sign-up from a partner's page: no cookie needed.
SIGN_UP = {"email": "someone@example.net", "newsletters": "weekly", "language": "en"}
PROXY = "203.0.113.8"  # what a proxy adding its own line (HAProxy's `option forwardfor`) sees


@pytest.fixture
def site(newsroom, tmp_path) -> Iterator[Site]:
    yield from serve(newsroom, tmp_path)


@pytest.fixture
def proxied(newsroom, tmp_path) -> Iterator[Site]:
    """Behind a proxy on this host that adds its own X-Forwarded-For line; one editor."""
    accounts.add(newsroom, ED, PASSWORD, NOW)
    readers = f'signup_origins = ["{PARTNER}"]\ntrusted_proxies = ["127.0.0.1"]\nclient_per_minute = 3\n'
    yield from serve(newsroom, tmp_path, readers)


def forwarded(forged: str) -> list[tuple[str, str]]:
    """A client's forged line, then the line the proxy added: two X-Forwarded-For headers."""
    return [("x-forwarded-for", forged), ("x-forwarded-for", PROXY)]


def test_every_forwarded_for_line_is_read(proxied: Site) -> None:
    for i in range(3):
        data = {**SIGN_UP, "email": f"r{i}@example.net"}
        answer = proxied.post(
            "/subscribe", data=data, headers=[("origin", PARTNER), *forwarded(f"198.51.100.{i}")]
        )
        assert answer.status_code == 200, answer.text
    over = proxied.post(
        "/subscribe", data=SIGN_UP, headers=[("origin", PARTNER), *forwarded("198.51.100.99")]
    )
    assert over.status_code == 429  # the fourth from the client the proxy saw, however it signs
    with proxied.client() as browser:
        form = login_form(browser)
        answer = browser.post(
            LOGIN,
            data={"csrf": form["csrf"], "email": ED, "password": PASSWORD},
            headers=forwarded("198.51.100.7"),
        )
        assert answer.status_code == 303
    log = proxied.cli("editors", "log", "--json")
    assert json.loads(log.stdout)[0]["client"] == PROXY
