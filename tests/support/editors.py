"""An editor as the pages know one: the account, the sign-in form filled and sent, and what a
page under /editor/ answers someone without a session."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote

import httpx

from tests.support.web import Forms

ED = "ed.itor@example.com"
PASSWORD = "correct horse battery staple"
LOGIN = "/editor/login"


def login_form(client: httpx.Client) -> dict[str, str]:
    page = client.get(LOGIN)
    assert page.status_code == 200
    return Forms(page.text).form(LOGIN)


def sign_in(client: httpx.Client, email: str = ED, password: str = PASSWORD) -> httpx.Response:
    form = login_form(client)
    return client.post(LOGIN, data={"csrf": form["csrf"], "email": email, "password": password})


def signed_in(client: httpx.Client) -> None:
    answer = sign_in(client)
    assert answer.status_code == 303 and answer.headers["location"] == "/editor/", answer.text


def shut_out(answer: httpx.Response) -> None:
    """Sent to the login page (told to return to the page a GET asked for), and shown nothing."""
    assert answer.status_code == 303, answer.text
    location, _, query = answer.headers["location"].partition("?")
    assert location == LOGIN
    if query:
        asked = answer.request.url
        assert answer.request.method == "GET" and asked.path != "/editor/", query
        [(name, target)] = parse_qsl(query, strict_parsing=True)
        assert name == "next" and target == unquote(asked.raw_path.decode())
    assert answer.content == b""
