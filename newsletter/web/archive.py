"""The public archive, its feeds, the sitemap and robots.txt, served from the documents the
archive keeps rendered: never recomposed per request, with ETag and Last-Modified, answering
304 to a client that has the same bytes and 410 for a withdrawn edition.

A pure ASGI middleware in front of the app's routing: a feed read by thousands of feed readers
costs a dictionary lookup, most of the time, and no framework machinery.
"""

from __future__ import annotations

from collections.abc import Callable
from email.utils import format_datetime, parsedate_to_datetime

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.services.archive import Served, document
from newsletter.store.availability import UNAVAILABLE
from newsletter.store.runtime import Runtime

PREFIXES = ("/archive/", "/feeds/")
FILES = ("/sitemap.xml", "/robots.txt")
# How long a process answers from memory before it reads a document again: a new edition shows
# within this, and a feed fetched a thousand times a second costs one read.
FRESH_SECONDS = 2.0
# Documents kept in memory per process; past it the memory is emptied and filled again.
MAX_KEPT = 4096
CACHE_CONTROL = b"public, max-age=300"


def served(path: str) -> bool:
    # No document's path holds a NUL, which PostgreSQL cannot even compare: such a path is a 404.
    return (path.startswith(PREFIXES) or path in FILES) and "\x00" not in path


class Syndicated:
    """Answers GET and HEAD for the archive's paths from the stored documents; anything else
    (an unknown path, another method) goes on to the app."""

    def __init__(self, app: ASGIApp, runtime: Runtime, clock: Callable[[], float]) -> None:
        """`clock`: the app's time in seconds, which decides what is still fresh."""
        self.app = app
        self.runtime = runtime
        self.clock = clock
        self.kept: dict[str, tuple[float, Served | None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not served(scope["path"]) or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        try:
            found = await self.lookup(scope["path"])
        except UNAVAILABLE as exc:  # before the app's handlers: the page is made here
            request = Request(scope)
            await request.app.state.web.unavailable(request, exc)(scope, receive, send)
            return
        if found is None:
            await self.app(scope, receive, send)
            return
        status, headers, body = answer(found, Headers(scope=scope))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})

    async def lookup(self, path: str) -> Served | None:
        now = self.clock()
        hit = self.kept.get(path)
        if (
            hit is not None and hit[0] - FRESH_SECONDS <= now < hit[0]
        ):  # fresh (a clock gone back reads it again)
            return hit[1]
        found = await run_in_threadpool(document, self.runtime, path)
        if len(self.kept) >= MAX_KEPT:
            self.kept.clear()
        self.kept[path] = (now + FRESH_SECONDS, found)
        return found


def answer(found: Served, asked: Headers) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The status, headers and body for a request with these headers."""
    tag = f'"{found.etag}"'.encode()
    modified = format_datetime(found.updated_at, usegmt=True).encode()
    headers = [
        (b"etag", tag),
        (b"last-modified", modified),
        (b"cache-control", CACHE_CONTROL),
        (b"vary", b"accept-encoding"),
    ]
    if not found.gone and not_modified(found, asked):
        return 304, headers, b""
    headers += [
        (b"content-type", found.media_type.encode()),
        (b"content-length", str(len(found.body)).encode()),
    ]
    return (410 if found.gone else 200), headers, found.body


def not_modified(found: Served, asked: Headers) -> bool:
    """If-None-Match decides when given (any of its tags, weak or strong, or *); else
    If-Modified-Since, to the second."""
    matches = asked.get("if-none-match")
    if matches is not None:
        tags = {t.strip().removeprefix("W/").strip('"') for t in matches.split(",")}
        return "*" in tags or found.etag in tags
    since = asked.get("if-modified-since")
    if since is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if moment.tzinfo is None:
        return False
    return found.updated_at.replace(microsecond=0) <= moment
