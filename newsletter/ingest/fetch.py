"""Getting a feed's bytes: one deadline for the whole exchange, a size cap, redirects followed
hop by hop, conditional GET, and no connection to a private address unless the settings allow it.

feedparser has no timeout of its own, so it never touches the network here.
"""

from __future__ import annotations

import mimetypes
import os
import socket
import ssl
import stat
import threading
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import httpcore
import httpx

from newsletter.errors import FeedError
from newsletter.settings import FetchSettings
from newsletter.text import display_url, printable

IPAddress = IPv4Address | IPv6Address
# When the current exchange must end (time.monotonic()); set by `fetch` around each feed.
_DEADLINE: ContextVar[float | None] = ContextVar("fetch_deadline", default=None)
# Set to cut the current exchange short (a scheduler shutting down); set by `fetch` too.
_STOP: ContextVar[threading.Event | None] = ContextVar("fetch_stop", default=None)
# How often a read waiting on a silent server looks at the stop event.
STOP_CHECK_SECONDS = 0.2
# IPv6 ranges whose last 32 bits are an IPv4 address reached through them: NAT64, IPv4-compatible.
_CARRYING_IPV4 = (ip_network("64:ff9b::/96"), ip_network("::/96"))


@dataclass(frozen=True)
class Fetched:
    """What a fetch returned; `content` is None when the server said 304 Not Modified.

    `url` is where the content came from after redirects, without credentials: the base for
    the feed's relative links."""

    url: str
    status: int
    content: bytes | None
    headers: dict[str, str]
    etag: str | None
    last_modified: str | None


class FetchStopped(Exception):
    """The exchange was cut short by its stop event: not the feed's failure, nothing to record."""


def _stopped() -> bool:
    stop = _STOP.get()
    return stop is not None and stop.is_set()


class RefusedAddress(Exception):
    """A host resolved to an address the client may not connect to; `fetch` reports it."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} is at {address}")
        self.host = host
        self.address = address


def is_public(address: IPAddress) -> bool:
    """A globally routable unicast address; an IPv6 address carrying an IPv4 one (mapped, 6to4,
    NAT64, IPv4-compatible) is judged by the IPv4 address, which is where it leads."""
    if isinstance(address, IPv6Address):
        carried = address.ipv4_mapped or address.sixtofour
        if carried is None and any(address in network for network in _CARRYING_IPV4):
            carried = IPv4Address(int(address) & 0xFFFF_FFFF)
        if carried is not None:
            return is_public(carried)
        if address.is_site_local:
            return False
    return address.is_global and not address.is_multicast


class AddressGuard(httpcore.NetworkBackend):
    """Connects only to addresses `allowed` accepts, and to exactly the addresses it checked: the
    name is resolved once, so a second, rebinding DNS answer is never asked for. Every read,
    write and TLS handshake on its connections ends by the current exchange's deadline."""

    def __init__(self, allowed: Callable[[IPAddress], bool]) -> None:
        self._allowed = allowed
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        for address in addresses:
            if not self._allowed(ip_address(address)):
                raise RefusedAddress(host, address)
        failure = httpcore.ConnectError(f"no address for {host}")
        for address in addresses:
            try:
                within = _within(timeout, httpcore.ConnectTimeout)
                stream = self._sockets.connect_tcp(address, port, within, local_address, socket_options)
            except httpcore.ConnectError as exc:
                failure = exc
                continue
            return _Bounded(stream)
        raise failure


class _Bounded(httpcore.NetworkStream):
    """A connection whose every operation ends by the exchange's deadline: a server sending a
    byte a second never trips a per-read timeout, but it does trip this."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Waits in short slices while a stop event is set up, so a silent server holds a
        shutdown up for a fifth of a second, not for the whole deadline."""
        within = _within(timeout, httpcore.ReadTimeout)
        if _STOP.get() is None:
            return self._stream.read(max_bytes, within)
        ends = None if within is None else time.monotonic() + within
        while True:
            if _stopped():
                raise httpcore.ReadError("stopped")
            left = STOP_CHECK_SECONDS if ends is None else min(ends - time.monotonic(), STOP_CHECK_SECONDS)
            if left <= 0:
                raise httpcore.ReadTimeout("timed out")
            try:
                return self._stream.read(max_bytes, left)
            except httpcore.ReadTimeout:  # a timed-out recv consumed nothing: wait again
                continue

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _within(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        within = _within(timeout, httpcore.ConnectTimeout)
        return _Bounded(self._stream.start_tls(ssl_context, server_hostname, within))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


def _within(timeout: float | None, late: type[Exception]) -> float | None:
    """An operation's own timeout, cut to what is left before the deadline."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise late("the exchange's deadline has passed")
    return left if timeout is None else min(timeout, left)


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport over an AddressGuard. httpx 0.28 has no public way to choose the
    network backend (encode/httpx#3180): the pool it builds is replaced by one that differs only
    in the backend. The private-address tests fail if a new httpx renames `_pool`."""

    def __init__(self, guard: AddressGuard) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            keepalive_expiry=5.0,
            network_backend=guard,
        )


def make_client(settings: FetchSettings, allowed: Callable[[IPAddress], bool] | None = None) -> httpx.Client:
    """A client for `fetch`, connecting only where `allowed` says: by default public addresses,
    or any when fetch.allow_private is on. Proxies named in the environment are not used: a
    proxy would connect to the feed's address out of the guard's sight."""
    if allowed is None:
        allowed = (lambda _address: True) if settings.allow_private else is_public
    return httpx.Client(
        transport=_GuardedTransport(AddressGuard(allowed)),
        timeout=httpx.Timeout(settings.timeout_seconds),
        trust_env=False,
        headers={
            "User-Agent": settings.user_agent,
            "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5",
        },
    )


def fetch(
    client: httpx.Client,
    url: str,
    settings: FetchSettings,
    etag: str | None = None,
    last_modified: str | None = None,
    stop: threading.Event | None = None,
) -> Fetched:
    """Fetch a URL or read a file; every failure becomes a FeedError naming the feed, its
    credentials masked. The whole exchange, redirects included, ends by fetch.timeout_seconds,
    or raises FetchStopped within a fifth of a second of `stop` being set."""
    if not url.lower().startswith(("http://", "https://")):
        return _read_file(url, settings)
    deadline = _DEADLINE.set(time.monotonic() + settings.timeout_seconds)
    stopping = _STOP.set(stop)
    try:
        return _exchange(client, url, settings, etag, last_modified)
    finally:
        _STOP.reset(stopping)
        _DEADLINE.reset(deadline)


def _exchange(
    client: httpx.Client, url: str, settings: FetchSettings, etag: str | None, last_modified: str | None
) -> Fetched:
    shown = display_url(url)
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    redirects = 0
    try:
        target = httpx.URL(url)
        # Credentials go in a header, never in the URL that httpx logs and redirects carry.
        auth = httpx.BasicAuth(target.username, target.password) if target.userinfo else None
        request = client.build_request("GET", target.copy_with(username=None, password=None), headers=headers)
        response = client.send(request, auth=auth, stream=True)
        while response.next_request is not None:  # a redirect: each hop connects through the guard
            response.close()
            if redirects == settings.max_redirects:
                raise FeedError(shown, f"more than {settings.max_redirects} redirects (a loop?)")
            redirects += 1
            request = response.next_request
            response = client.send(request, stream=True)
        try:
            return _read_response(response, shown, settings, etag, last_modified)
        finally:
            response.close()
    except RefusedAddress as exc:
        where = exc.host if exc.host == exc.address else f"{exc.host} ({exc.address})"
        via = f"redirected to {display_url(str(request.url))}, and " if redirects else ""
        problem = f"refused: {via}{where} is not a public address (fetch.allow_private is off)"
        raise FeedError(shown, problem) from None
    except httpx.TimeoutException:
        raise FeedError(shown, f"timed out after {settings.timeout_seconds:g} s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        if _stopped():
            raise FetchStopped(shown) from None
        raise FeedError(shown, f"{type(exc).__name__}: {exc}") from None


def _read_response(
    response: httpx.Response, shown: str, settings: FetchSettings, etag: str | None, last_modified: str | None
) -> Fetched:
    if response.status_code == 304:
        return Fetched(str(response.url), 304, None, dict(response.headers), etag, last_modified)
    if response.status_code >= 400:
        raise FeedError(
            shown, f"HTTP {response.status_code} {printable(response.reason_phrase)}", response.status_code
        )
    too_large = f"larger than the {settings.max_bytes}-byte limit"
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > settings.max_bytes:  # said before a byte is read
        raise FeedError(shown, too_large)
    chunks, size = [], 0  # joined once: no second copy of the body while it grows
    for chunk in response.iter_bytes():
        if _stopped():
            raise FetchStopped(shown)
        size += len(chunk)
        if size > settings.max_bytes:
            raise FeedError(shown, too_large)
        chunks.append(chunk)
    return Fetched(
        str(response.url),
        response.status_code,
        b"".join(chunks),
        {k.lower(): v for k, v in response.headers.items()},
        response.headers.get("etag"),
        response.headers.get("last-modified"),
    )


def _read_file(url: str, settings: FetchSettings) -> Fetched:
    """A local feed, with the same size cap as a URL. Only a regular file: /dev/zero never ends,
    and a FIFO with no writer blocks forever (so it is opened non-blocking, then checked)."""
    path = Path(unquote(urlparse(url).path)) if url.startswith("file://") else Path(url)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise FeedError(url, "not a regular file (a device, FIFO or folder)")
            with open(descriptor, "rb", closefd=False) as file:
                content = file.read(settings.max_bytes + 1)  # a /proc file says it is empty, and is not
        finally:
            os.close(descriptor)
    except OSError as exc:
        raise FeedError(url, f"cannot read the file: {exc.strerror}") from None
    if len(content) > settings.max_bytes:
        raise FeedError(url, f"larger than the {settings.max_bytes}-byte limit")
    guessed = mimetypes.guess_type(path.name)[0]
    # application/* lets the XML declaration name the encoding (text/xml would force ASCII).
    content_type = "text/html" if guessed == "text/html" else "application/rss+xml"
    return Fetched(url, 200, content, {"content-type": content_type}, None, None)
