"""What keeps other sites and link scanners from acting for a reader: forms carry a token signed
with the secret key, a POST from a foreign origin is refused, and every answer carries headers
that forbid framing, inline script, sniffing, caching of token pages and leaking their URLs."""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import secrets
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.settings import WebSettings

# No script at all; styles only from our own stylesheet; forms post only to us.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# The paths whose URL carries a reader's token.
TOKEN_PAGES = ("/unsubscribe/", "/preferences/", "/confirm/", "/address/", "/c/")
# Pages anyone may keep: the archive, its feeds, the sitemap and robots.txt (no form, no token).
PUBLIC = ("/archive/", "/feeds/", "/sitemap.xml", "/robots.txt")
# A form is a few fields; a larger body is refused before it is parsed.
MAX_BODY = 64 * 1024
# A provider's event POST may carry thousands of events.
MAX_EVENTS_BODY = 8 * 1024 * 1024
WEBHOOKS = "/webhooks/"
log = logging.getLogger("newsletter.web")


def origin_of(url: str | None) -> str | None:
    """scheme://host[:port] of a URL, lower-case; None for anything else (`null` included)."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class Guard:
    """CSRF tokens and origins for the pages' forms.

    The sign-up form is a double submit: a random cookie, and in the form its HMAC under the
    secret key, so a cookie planted by a neighbouring subdomain is useless without the key. A
    token page's forms carry the HMAC of the page's own token and need no cookie at all.
    """

    def __init__(self, key: bytes, public_url: str, signup_origins: list[str]) -> None:
        self.key = key
        self.own = origin_of(public_url) or ""
        self.partners = frozenset(signup_origins)
        self.secure = self.own.startswith("https://")
        # The __Host- prefix pins the cookie to this host and path /, over HTTPS only.
        self.cookie = "__Host-newsletter-csrf" if self.secure else "newsletter-csrf"

    def form_token(self, binding: str) -> str:
        # Not hmac.digest, which lets go of the GIL: see `tokens._mac`.
        digest = hmac.new(self.key, f"form:{binding}".encode(), "sha256").digest()
        return base64.urlsafe_b64encode(digest[:24]).decode()

    def valid(self, binding: str | None, given: str | None) -> bool:
        if not binding or not given or not given.isascii():
            return False
        return hmac.compare_digest(self.form_token(binding), given)

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(24)

    def cookie_value(self, cookies: dict[str, str]) -> str | None:
        value = cookies.get(self.cookie)
        return value if value and len(value) <= 64 and value.isascii() else None

    def origin(self, headers: Headers) -> str | None:
        """Where a POST came from: its Origin, else its Referer's; None when neither says (a
        client that is not a browser, or one told to send no referrer)."""
        if "origin" in headers:
            return origin_of(headers["origin"]) or "null"
        return origin_of(headers.get("referer"))

    def own_origin(self, origin: str | None, base_url: str) -> bool:
        """No origin, or ours: the public URL's, or the one this request was made to."""
        return origin is None or origin in (self.own, origin_of(base_url))

    def partner(self, origin: str | None) -> bool:
        return origin is not None and origin in self.partners


def security_headers(https: bool, private: bool, token_page: bool = True) -> list[tuple[bytes, bytes]]:
    """The headers every answer carries; `private` ones (every page but the stylesheet: token
    pages, and forms carrying CSRF tokens) are never stored by any cache.

    A token page sends no referrer at all, so its URL reaches nobody. Other pages send one to
    our own origin only: a browser posts a form from a no-referrer page with `Origin: null`, and
    the sign-up form's origin is what tells our page from another site's."""
    found = [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer" if token_page else b"same-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if https:
        found.append((b"strict-transport-security", b"max-age=31536000"))
    if private:
        found += [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
    return found


class SecurityHeaders:
    """Adds the security headers to every answer (a pure ASGI middleware: it costs microseconds)."""

    def __init__(self, app: ASGIApp, https: bool, own: str = "") -> None:
        """`own`: the public URL's origin, whose stylesheet the archive's pages link absolutely
        (so an exported copy works from any host); allowed beside 'self'."""
        self.app = app
        self.public = [
            (name, value.replace(b"style-src 'self'", f"style-src 'self' {own}".strip().encode()))
            for name, value in security_headers(https, private=False, token_page=False)
        ]
        self.private = security_headers(https, private=True, token_page=False)
        self.token_page = security_headers(https, private=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == "/site.css" or path.startswith(PUBLIC):
            extra = self.public
        else:
            extra = self.token_page if path.startswith(TOKEN_PAGES) else self.private

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {name.lower() for name, _value in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((name, value) for name, value in extra if name not in have),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyTooLarge(Exception):
    """A request body past MAX_BODY; the form reader answers 413."""


class BodyLimit:
    """What the server leaves to the app: a request's headers are counted and measured (431
    past `[web] header_count` or `header_bytes`: the server caps only headers still arriving),
    its body stops being read past `limit` bytes whatever Content-Length claimed (chunked
    bodies have none), and it must arrive at a pace: `body_seconds` from the first read, plus a
    second per `body_min_rate` bytes received, and `body_max_seconds` at most in all (else four
    clients trickling just fast enough would hold the webhook's slots for hours). A body slower
    than that is answered 408 and its
    connection closed, so a slow client gives up its reading slot (the webhook's) to the next;
    a client that goes away is one line at info, never a traceback."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits: WebSettings = scope["app"].state.web.runtime.settings.web
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        # The request line counts too: a query string is as much the client's as a header.
        line = len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
        size = line + sum(len(name) + len(value) for name, value in headers)
        if len(headers) > limits.header_count or size > limits.header_bytes:
            refused = PlainTextResponse("too many or too large headers", 431, headers={"connection": "close"})
            await refused(scope, receive, send)
            return
        limit = MAX_EVENTS_BODY if scope["path"].startswith(WEBHOOKS) else self.limit
        loop = asyncio.get_running_loop()
        seen = 0
        deadline: float | None = None  # from the first read: a wait for a reading slot is not the client's
        cutoff = 0.0  # and never past `body_max_seconds` after it, however steadily it trickles
        late = False
        answered = False

        async def bounded() -> Message:
            nonlocal seen, deadline, cutoff, late
            if deadline is None:
                deadline = loop.time() + limits.body_seconds
                cutoff = loop.time() + limits.body_max_seconds
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                late = True
                return {"type": "http.disconnect"}  # the page reads it as a client gone
            if message["type"] == "http.request":
                got = len(message.get("body", b""))
                seen += got
                deadline = min(deadline + got / limits.body_min_rate, cutoff)
                if seen > limit:
                    raise BodyTooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal answered
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded, watched)
        except ClientDisconnect:
            route = getattr(scope.get("route"), "path", "a page")  # the pattern: no token in the log
            if not late:
                log.info("%s %s: the client went away before its request was read", scope["method"], route)
                return
            log.info("%s %s: the request's body came too slowly: cut off", scope["method"], route)
            if not answered:
                too_slow = PlainTextResponse(
                    "the request's body came too slowly", 408, headers={"connection": "close"}
                )
                await too_slow(scope, receive, send)
