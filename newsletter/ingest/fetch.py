"""Getting a feed's bytes: httpx with timeouts, a size cap, few redirects and conditional GET.

feedparser has no timeout of its own, so it never touches the network here.
"""

from __future__ import annotations

import mimetypes
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from newsletter.errors import FeedError
from newsletter.settings import FetchSettings


@dataclass(frozen=True)
class Fetched:
    """What a fetch returned; `content` is None when the server said 304 Not Modified."""

    status: int
    content: bytes | None
    headers: dict[str, str]
    etag: str | None
    last_modified: str | None


def make_client(settings: FetchSettings) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(settings.timeout_seconds),
        follow_redirects=True,
        max_redirects=settings.max_redirects,
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
) -> Fetched:
    """Fetch a URL or read a file; every failure becomes a FeedError naming the feed."""
    if not url.lower().startswith(("http://", "https://")):
        return _read_file(url, settings)
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    deadline = time.monotonic() + settings.timeout_seconds * 3
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304:
                return Fetched(304, None, dict(response.headers), etag, last_modified)
            if response.status_code >= 400:
                raise FeedError(
                    url, f"HTTP {response.status_code} {response.reason_phrase}", response.status_code
                )
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > settings.max_bytes:
                    raise FeedError(url, f"larger than the {settings.max_bytes}-byte limit")
                if time.monotonic() > deadline:
                    raise FeedError(url, "too slow: the body did not arrive in time")
            return Fetched(
                response.status_code,
                bytes(body),
                {k.lower(): v for k, v in response.headers.items()},
                response.headers.get("etag"),
                response.headers.get("last-modified"),
            )
    except httpx.TooManyRedirects:
        raise FeedError(url, f"more than {settings.max_redirects} redirects (a loop?)") from None
    except httpx.TimeoutException:
        raise FeedError(url, f"timed out after {settings.timeout_seconds:g} s") from None
    except httpx.HTTPError as exc:
        raise FeedError(url, f"{type(exc).__name__}: {exc}") from None


def _read_file(url: str, settings: FetchSettings) -> Fetched:
    path = Path(unquote(urlparse(url).path)) if url.startswith("file://") else Path(url)
    try:
        size = path.stat().st_size
        if size > settings.max_bytes:
            raise FeedError(url, f"larger than the {settings.max_bytes}-byte limit")
        content = path.read_bytes()
    except OSError as exc:
        raise FeedError(url, f"cannot read the file: {exc.strerror}") from None
    guessed = mimetypes.guess_type(path.name)[0]
    # application/* lets the XML declaration name the encoding (text/xml would force ASCII).
    content_type = "text/html" if guessed == "text/html" else "application/rss+xml"
    return Fetched(200, content, {"content-type": content_type}, None, None)
