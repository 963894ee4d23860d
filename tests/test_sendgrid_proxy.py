"""The SendGrid transport goes through the proxy the environment names (HTTP_PROXY, HTTPS_PROXY,
NO_PROXY), as the official client over urllib did: a site behind an outbound proxy keeps sending."""

from __future__ import annotations

import base64
import socket
import threading

import pytest

from newsletter.sending.providers.sendgrid import MailSend, Unreachable


class Proxy:
    """A listener on loopback that keeps each request's head and answers 202 (or, to a CONNECT,
    closes: the test only looks at what was asked)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.heads: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            client, _ = self.server.accept()
            with client:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = client.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                self.heads.append(head.split(b"\r\n\r\n")[0])
                if not head.startswith(b"CONNECT"):
                    client.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Proxy:
    for name in (
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    return Proxy()


def test_a_plain_api_url_is_posted_through_http_proxy_with_its_login(proxy, monkeypatch) -> None:
    monkeypatch.setenv("http_proxy", f"http://me:s%40cret@127.0.0.1:{proxy.port}")
    answer = MailSend("http://api.sendgrid.invalid", "SG.key", 5).post(b"{}")
    assert answer.status == 202
    (head,) = proxy.heads
    assert head.startswith(b"POST http://api.sendgrid.invalid/v3/mail/send HTTP/1.1")
    assert b"Proxy-Authorization: Basic " + base64.b64encode(b"me:s@cret") in head


def test_an_https_api_is_reached_through_a_tunnel_the_proxy_is_asked_for(proxy, monkeypatch) -> None:
    monkeypatch.setenv("https_proxy", f"http://me:pw@127.0.0.1:{proxy.port}")
    with pytest.raises(Unreachable):  # the listener closes the tunnel: the request never went
        MailSend("https://api.sendgrid.invalid", "SG.key", 5).post(b"{}")
    (head,) = proxy.heads
    assert head.startswith(b"CONNECT api.sendgrid.invalid:443 HTTP/1.")
    assert b"Proxy-Authorization: Basic " + base64.b64encode(b"me:pw") in head
    assert b"SG.key" not in head  # the API key goes inside the tunnel, never to the proxy


def test_no_proxy_spares_the_host(proxy, monkeypatch) -> None:
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("no_proxy", "api.sendgrid.invalid")
    with pytest.raises(Unreachable):  # straight to a host that does not exist
        MailSend("http://api.sendgrid.invalid", "SG.key", 5).post(b"{}")
    assert proxy.heads == []
