"""The editors' sign-in (issue #13, parts 1 and 9), `newsletter serve`'s app in this process: a wrong
password and an unknown account get the same answer; a missing or foreign CSRF token, an idle
session and a run of guessed passwords are refused; logout and `editors remove` end a session;
no page under /editor/ shows anything without one; the audit log says who and when, never a
password."""

from __future__ import annotations

import html
import json
import logging
import re
import textwrap
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest

from newsletter.services import accounts
from tests.conftest import ROOT
from tests.support.clock import NOW
from tests.support.editors import ED, LOGIN, PASSWORD, login_form, shut_out, sign_in, signed_in
from tests.support.web import PARTNER, Forms, Site, serve

WRONG = "incorrect donkey battery staple"
FORM = {"content-type": "application/x-www-form-urlencoded"}
README_ACTION = "https://news.example.com/subscribe"  # where README's sign-up form posts


@pytest.fixture
def desk(make_runtime, tmp_path) -> Iterator[Site]:
    """A server with one editor, and room for a few wrong passwords."""
    runtime = make_runtime()
    accounts.add(runtime, ED, PASSWORD, NOW)
    yield from serve(
        runtime, tmp_path, extra="[editors]\nattempts_per_account = 10\nattempts_per_client = 40\n"
    )


def audit_log(site: Site) -> list[dict]:
    result = site.cli("editors", "log", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_an_editor_signs_in_sees_the_log_and_signs_out(desk) -> None:
    with desk.client() as client:
        shut_out(client.get("/editor/"))
        answer = sign_in(client)
        assert answer.status_code == 303 and answer.headers["location"] == "/editor/"
        cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("newsletter-editor="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # public_url is http here
        home = client.get("/editor/")
        assert home.status_code == 200
        assert f"Signed in as {ED}." in home.text and "sign-in" in home.text
        assert home.headers["cache-control"] == "no-store"
        assert client.get(LOGIN).headers["location"] == "/editor/"  # signed in already
        stolen = dict(client.cookies)
        logout = Forms(home.text).form("/editor/logout")
        answer = client.post("/editor/logout", data=logout)
        assert answer.status_code == 303 and answer.headers["location"] == LOGIN
        shut_out(client.get("/editor/"))
    with desk.client(cookies=stolen) as other:  # the old cookie, replayed: the session is over
        shut_out(other.get("/editor/"))
    actions = [(e["action"], e["editor"]) for e in audit_log(desk)]
    assert actions[:2] == [("sign-out", ED), ("sign-in", ED)]
    assert audit_log(desk)[0]["client"] == "127.0.0.1"


def test_a_wrong_password_and_an_unknown_account_get_the_same_answer(desk) -> None:
    def attempt(email: str, password: str) -> tuple[int, str, float]:
        with desk.client() as client:
            form = login_form(client)
            started = time.monotonic()
            answer = client.post(LOGIN, data={"csrf": form["csrf"], "email": email, "password": password})
            took = time.monotonic() - started
            assert (
                "set-cookie" not in answer.headers or "newsletter-editor=" not in answer.headers["set-cookie"]
            )
            return answer.status_code, answer.text.replace(form["csrf"], "").replace(email, ""), took

    wrong = [attempt(ED, WRONG) for _ in range(3)]
    unknown = [attempt("nobody.here@example.com", WRONG) for _ in range(3)]
    assert {status for status, _text, _took in wrong + unknown} == {400}
    assert wrong[0][1] == unknown[0][1]  # the same page, word for word
    assert "do not match" in wrong[0][1]
    # A password hash is checked either way: the unknown account answers no faster.
    fastest_wrong = min(took for *_rest, took in wrong)
    fastest_unknown = min(took for *_rest, took in unknown)
    assert fastest_unknown > fastest_wrong * 0.5, (wrong, unknown)
    entries = audit_log(desk)
    assert [e["action"] for e in entries[:6]] == ["sign-in-failed"] * 6
    assert {e["target"] for e in entries[:6]} == {ED, "nobody.here@example.com"}
    assert WRONG not in json.dumps(entries)


def test_forms_without_their_token_are_refused(desk) -> None:
    with desk.client() as client:
        login_form(client)
        missing = client.post(LOGIN, data={"email": ED, "password": PASSWORD})
        assert missing.status_code == 403
    with desk.client() as client, desk.client() as other:
        foreign = login_form(other)["csrf"]  # a token for another browser's cookie
        login_form(client)
        answer = client.post(LOGIN, data={"csrf": foreign, "email": ED, "password": PASSWORD})
        assert answer.status_code == 403
        form = login_form(client)
        cross = client.post(
            LOGIN,
            data={"csrf": form["csrf"], "email": ED, "password": PASSWORD},
            headers={"origin": "https://evil.example"},
        )
        assert cross.status_code == 403
    with desk.client() as first, desk.client() as second:
        signed_in(first)
        signed_in(second)
        theirs = Forms(second.get("/editor/").text).form("/editor/logout")["csrf"]
        assert first.post("/editor/logout", data={}).status_code == 403
        assert first.post("/editor/logout", data={"csrf": theirs}).status_code == 403
        assert first.get("/editor/").status_code == 200  # still signed in
        ours = Forms(first.get("/editor/").text).form("/editor/logout")
        cross = first.post("/editor/logout", data=ours, headers={"origin": "null"})
        assert cross.status_code == 403
        assert first.post("/editor/logout", data=ours).status_code == 303
        assert second.get("/editor/").status_code == 200  # only that session ended


def test_no_page_under_editor_shows_anything_without_a_session(desk) -> None:
    forged = {"newsletter-editor": "A" * 43}
    for cookies in ({}, forged):
        with desk.client(cookies=cookies) as client:
            for path in ("/editor", "/editor/", "/editor/editions", "/editor/x/y?z=1", "/editor/%2e%2e/"):
                shut_out(client.get(path))
            shut_out(client.post("/editor/logout", data={"csrf": "x"}))
            shut_out(client.post("/editor/", data={}))
    with desk.client() as client:
        german = client.get(LOGIN, headers={"accept-language": "de-DE,de;q=0.9"})
        assert "Redaktion: Anmelden" in german.text and "Passwort" in german.text
        signed_in(client)
        assert client.get("/editor/nothing-here").status_code == 404
        assert f"Angemeldet als {ED}." in client.get("/editor/?lang=de").text


def test_a_run_of_guessed_passwords_is_refused(make_runtime, tmp_path) -> None:
    runtime = make_runtime()
    accounts.add(runtime, ED, PASSWORD, NOW)
    limits = "[editors]\nattempts_per_account = 3\nattempts_per_client = 6\n"
    for site in serve(runtime, tmp_path, extra=limits):
        with site.client() as client:
            for guess in ("guess number one", "guess number two", "guess number three"):
                assert sign_in(client, password=guess).status_code == 400
            refused = sign_in(client)  # the right password, too late
            assert refused.status_code == 429 and refused.headers["retry-after"] == "900"
            assert "Too many attempts" in refused.text
            assert sign_in(client, "other.one@example.com", WRONG).status_code == 400
            assert sign_in(client, "other.two@example.com", WRONG).status_code == 400
            assert sign_in(client, "other.three@example.com", WRONG).status_code == 429  # the client's limit
        failed = [e for e in audit_log(site) if e["action"] == "sign-in-failed"]
        assert len(failed) == 5  # refusals reach no password check and write nothing


def test_another_spelling_of_the_address_is_the_same_account_to_the_limit(make_runtime, tmp_path) -> None:
    """Full-width letters, an ideographic full stop, capitals: the account lookup finds the same
    editor for each, so each counts with the others rather than getting guesses of its own."""
    runtime = make_runtime()
    accounts.add(runtime, "editor1@example.com", PASSWORD, NOW)
    limits = "[editors]\nattempts_per_account = 5\nattempts_per_client = 100\n"
    for site in serve(runtime, tmp_path, extra=limits):
        with site.client() as client:
            for _ in range(5):
                assert sign_in(client, "editor1@example.com", WRONG).status_code == 400
            for spelling in (
                "editor1@example.com",
                "editor1@\uff45xample.com",  # a full-width e
                "editor1@example\u3002com",  # an ideographic full stop
                "editor1@ex\uff41mple.com",  # a full-width a
                "Editor1@EXAMPLE.com",
            ):
                assert sign_in(client, spelling, PASSWORD).status_code == 429, spelling
            assert sign_in(client, "editor2@example.com", WRONG).status_code == 400  # another account


def test_an_idle_session_ends(make_runtime, tmp_path) -> None:
    runtime = make_runtime()
    accounts.add(runtime, ED, PASSWORD, NOW)
    for site in serve(runtime, tmp_path, extra="[editors]\nidle_minutes = 0.05\n"):  # 3 seconds
        with site.client() as client:
            signed_in(client)
            assert client.get("/editor/").status_code == 200
            site.clock.advance(seconds=1.5)
            assert client.get("/editor/").status_code == 200  # in use: still live
            site.clock.advance(seconds=3.5)
            shut_out(client.get("/editor/"))


def test_removing_an_editor_or_changing_the_password_ends_their_sessions(desk) -> None:
    with desk.client() as client:
        signed_in(client)
        result = desk.cli("editors", "passwd", ED, "--password-stdin", stdin=PASSWORD + " again\n")
        assert result.returncode == 0, result.stderr
        assert "1 session(s) ended" in result.stdout
        shut_out(client.get("/editor/"))
        assert sign_in(client, password=PASSWORD).status_code == 400
        assert sign_in(client, password=PASSWORD + " again").status_code == 303
        assert client.get("/editor/").status_code == 200
        result = desk.cli("editors", "remove", ED)
        assert result.returncode == 0, result.stderr
        shut_out(client.get("/editor/"))
        assert sign_in(client, password=PASSWORD + " again").status_code == 400


def test_over_https_the_cookie_is_secure_and_host_only(make_runtime, tmp_path) -> None:
    runtime = make_runtime()
    accounts.add(runtime, ED, PASSWORD, NOW)
    for site in serve(runtime, tmp_path, env={"NEWSLETTER_PUBLIC_URL": "https://news.example"}):
        with site.client() as client:
            page = client.get(LOGIN)
            csrf_cookie = page.cookies["__Host-newsletter-csrf"]
            form = Forms(page.text).form(LOGIN)
            answer = client.post(
                LOGIN,
                data={"csrf": form["csrf"], "email": ED, "password": PASSWORD},
                headers={"cookie": f"__Host-newsletter-csrf={csrf_cookie}"},
            )
            assert answer.status_code == 303, answer.text
            [cookie] = [c for c in answer.headers.get_list("set-cookie") if "newsletter-editor=" in c]
            assert cookie.startswith("__Host-newsletter-editor=")
            for attribute in ("HttpOnly", "SameSite=strict", "Secure", "Path=/"):
                assert attribute in cookie
            assert "Domain" not in cookie


class _Snippet(HTMLParser):
    """What a browser posts from a sign-up form as it first shows: the checked boxes, the
    selected options and the hidden fields (the reader types the address)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.action = ""
        self.fields: list[tuple[str, str]] = []
        self._select = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.action = values["action"]
        elif tag == "input" and (values.get("type") == "hidden" or "checked" in values):
            self.fields.append((values["name"], values["value"]))
        elif tag == "select":
            self._select = values["name"]
        elif tag == "option" and "selected" in values:
            self.fields.append((self._select, values["value"]))


def readme_snippet() -> str:
    """The sign-up form of README's "The readers' pages"."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## The readers' pages") : text.index("## The editors' pages")]
    found = re.search(r"```html\n(.*?)\n *```", section, re.S)
    assert found, "README shows no sign-up form"
    return textwrap.dedent(found.group(1))


def test_the_signup_form_to_copy_is_accepted_from_a_listed_origin(desk, caplog) -> None:
    """Issue #21, 8: an editor's page gives the HTML of a sign-up form for another page of the
    site (README shows the same form); posted from an origin listed in `[readers]
    signup_origins` it signs the reader up; from another, the log line names the setting."""
    with desk.client() as client:
        shut_out(client.get("/editor/signup-form"))
        signed_in(client)
        assert 'href="/editor/signup-form"' in client.get("/editor/").text
        shown = client.get("/editor/signup-form")
    assert shown.status_code == 200 and PARTNER in shown.text and "[readers] signup_origins" in shown.text
    # a page of this service's own origin is not a partner's: it links to /subscribe instead
    assert f"Not for pages served at {desk.url} itself: there, link to the sign-up page" in shown.text
    code = re.search(r"<pre[^>]*><code>(.*?)</code></pre>", shown.text, re.S)
    assert code and "<form" not in code.group(1)  # shown as text to copy, never as a form
    snippet = html.unescape(code.group(1))
    assert Forms(shown.text).forms[-1]["action"] == "/editor/logout"  # no form of it on the page
    action = f"{desk.url}/subscribe"
    assert _Snippet(snippet).action == action
    assert readme_snippet() == snippet.replace(action, README_ACTION)
    for n, form in enumerate((snippet, readme_snippet())):
        reader = f"copied{n}@example.net"
        fields = _Snippet(form).fields
        assert ("language", "en") in fields and ("lang", "en") in fields
        chosen = [("newsletters", "daily"), ("categories", "health")]  # what the reader ticks
        answer = desk.post(
            "/subscribe",
            content=urlencode([("email", reader), ("name", "Copied"), *chosen, *fields]),
            headers={"origin": PARTNER, "referer": f"{PARTNER}/about", **FORM},
        )
        assert answer.status_code == 200, answer.text
        assert desk.subscriber(reader).status == "pending"
        assert desk.subscriptions(reader) == {"daily": "active"}
    with caplog.at_level(logging.WARNING, logger="newsletter.web"):
        refused = desk.post(
            "/subscribe",
            content=urlencode([("email", "elsewhere@example.net"), *_Snippet(snippet).fields]),
            headers={"origin": "https://Elsewhere.example", **FORM},
        )
    assert refused.status_code == 403 and "This form may only be sent from our own pages." in refused.text
    [line] = [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "sign-up" in r.getMessage()
    ]
    assert "https://elsewhere.example" in line and "[readers] signup_origins" in line
