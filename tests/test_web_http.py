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
from tests.support.web import ANNA, PARTNER, Site, path_of, serve

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


def test_head_answers_like_get_without_the_body(site: Site) -> None:
    preferences = path_of(site.links().preferences(site.subscriber(ANNA).id))
    with site.client() as client:
        for path in ("/healthz", "/subscribe", "/site.css", preferences, "/editor/", "/no-such-page"):
            got, head = client.get(path), client.head(path)
            assert head.status_code == got.status_code, path
            assert head.content == b"", path
            for name in ("content-type", "content-length", "location", "cache-control"):
                assert head.headers.get(name) == got.headers.get(name), (path, name)
    assert site.get("/healthz").json()["status"] == "ok"


def test_a_405_names_every_method_served(site: Site) -> None:
    with site.client() as client:
        for method, path, allow in (
            ("OPTIONS", "/subscribe", "GET, HEAD, POST"),
            ("PUT", "/preferences", "GET, HEAD, POST"),
            ("DELETE", "/healthz", "GET, HEAD"),
            ("GET", "/webhooks/sendgrid", "POST"),
            ("HEAD", "/webhooks/sendgrid", "POST"),
        ):
            answer = client.request(method, path)
            assert answer.status_code == 405, (method, path)
            assert answer.headers["allow"] == allow, (method, path)


def test_a_redirect_goes_to_the_public_url_whatever_the_host(site: Site) -> None:
    evil = {"host": "evil.example"}
    with site.client() as client:
        for asked, target in (
            ("/subscribe/", "/subscribe"),
            ("/subscribe/?lang=de", "/subscribe?lang=de"),
            ("/healthz/", "/healthz"),
        ):
            answer = client.get(asked, headers=evil)
            assert answer.status_code == 307, asked
            assert answer.headers["location"] == site.url + target, asked
            assert "evil.example" not in answer.text
        assert client.post("/subscribe/", headers=evil).headers["location"] == f"{site.url}/subscribe"
        assert client.get("/no-such-page/", headers=evil).status_code == 404


def test_a_malformed_multipart_body_is_a_400_and_no_bare_log_line(site: Site, caplog) -> None:
    """The form parser's warning repeats the client's bytes in a line with no time or level;
    the request is refused all the same, and the operator's log hears nothing of it."""
    from newsletter import logs

    logs.configure(interactive=False)
    with caplog.at_level("DEBUG"):
        refused = site.post(
            "/subscribe",
            content=b"--wrong\r\nnot a part\r\n",
            headers={"content-type": "multipart/form-data; boundary=right"},
        )
    assert refused.status_code == 400
    assert not [r for r in caplog.records if r.name.startswith("python_multipart")]
