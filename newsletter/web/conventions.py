"""HTTP as clients and monitors expect it: HEAD answers like GET without the body, a 405 names
every method the address serves, and a missing or extra trailing slash is redirected to the
public URL, never to the Host the request named."""

from __future__ import annotations

from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter import published

# The methods the pages serve (HEAD comes with GET).
SERVED = ("GET", "POST")
# The one GET that writes: a tracked link counts a click. A HEAD there (a link scanner, a mail
# gateway's probe) is no reader's click: it is left to the router, which answers 405.
COUNTED_ON_GET = "/c/"


class Head:
    """A HEAD request is answered as its GET would be, headers (Content-Length included) and
    status alike, without the body, whatever page or server implementation answers it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or scope["path"].startswith(COUNTED_ON_GET):
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def allowed(routes: list[BaseRoute], scope: Scope) -> str:
    """The Allow header for the path of `scope`: each method some route serves there (a path
    served by two handlers, GET and POST, names both)."""
    found = []
    for method in SERVED:
        if _served(routes, scope, method, scope["path"]):
            found += ["GET", "HEAD"] if method == "GET" else [method]
    return ", ".join(found)


def _served(routes: list[BaseRoute], scope: Scope, method: str, path: str) -> bool:
    """Whether a route serves `method` at `path` (asked afresh: what the router noted in `scope`
    while it matched the request is left out)."""
    asked: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": scope.get("root_path", ""),
        "headers": [],
        "query_string": b"",
    }
    return any(route.matches(asked)[0] is Match.FULL for route in routes)


class Slashes:
    """The router's fallback (in place of its own `redirect_slashes`, whose Location is built from
    the request's Host header, which a client may set to anything): `/subscribe/` for
    `/subscribe` (or the reverse) redirected to the same page at the public URL; anything else
    is the router's 404."""

    def __init__(self, router: Router, public_url: str) -> None:
        self.router = router
        self.public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if scope["type"] == "http" and path != "/":
            other = path.rstrip("/") if path.endswith("/") else f"{path}/"
            if other and any(_served(self.router.routes, scope, m, other) for m in SERVED):
                query = scope.get("query_string", b"").decode("latin-1")
                target = published.url(self.public_url, other) + (f"?{query}" if query else "")
                await RedirectResponse(target, status_code=307)(scope, receive, send)
                return
        await self.router.not_found(scope, receive, send)
