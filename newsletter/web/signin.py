"""What keeps the editors' pages to editors: the session cookie, the gate in front of every
page under `/editor/`, the sign-in rate limits, and CSRF tokens bound to the session.

The gate is one middleware rather than a check in each handler, so a page added later is shut
to strangers without anyone remembering to shut it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from newsletter.i18n import N_
from newsletter.services import accounts
from newsletter.store.runtime import Runtime
from newsletter.text import printable
from newsletter.web.client import limit_key
from newsletter.web.context import Clock, Web, log, web
from newsletter.web.limits import Limit

LOGIN = "/editor/login"
HOME = "/editor/"
# Sign-in attempts are counted over this window (the settings give how many).
WINDOW_SECONDS = 15 * 60
# The longest page address a sign-in returns to; anything longer is not a link of ours.
MAX_RETURN = 2000
# Tests an editor may send to themselves per window: plenty to check a change, and a runaway
# script or a stuck button cannot flood their mailbox or spend the provider's quota.
TESTS_PER_WINDOW = 10


@dataclass(frozen=True)
class Signed:
    """The editor a request comes from, and the session's token (what its forms are bound to)."""

    email: str
    token: str


@dataclass
class Desk:
    """The editors' pages' own state, built once per app: the cookie's name and the limits."""

    cookie: str
    secure: bool
    per_account: Limit
    per_client: Limit
    tests: Limit
    clock: Clock  # the limits' windows are on the app's clock, as everything else

    @classmethod
    def build(cls, runtime: Runtime, secure: bool, clock: Clock) -> Desk:
        editors = runtime.settings.editors
        return cls(
            # The __Host- prefix pins the cookie to this host and path /, over HTTPS only.
            "__Host-newsletter-editor" if secure else "newsletter-editor",
            secure,
            Limit(runtime, "sign-in account", editors.attempts_per_account, WINDOW_SECONDS),
            Limit(runtime, "sign-in client", editors.attempts_per_client, WINDOW_SECONDS),
            Limit(runtime, "tests", TESTS_PER_WINDOW, WINDOW_SECONDS),
            clock,
        )

    def token(self, connection: HTTPConnection) -> str | None:
        value = connection.cookies.get(self.cookie)
        return value if value and len(value) <= accounts.MAX_TOKEN and value.isascii() else None

    async def allows_attempt(self, client: str, email: str) -> bool:
        """Counts one sign-in attempt for the client and for the account asked for, known or
        not (so a refusal tells nothing of which accounts exist). The account is counted as the
        lookup finds it: another spelling of the address is the same account, not more guesses."""
        now = self.clock()
        if not await self.per_client.take(limit_key(client), now):
            log.warning("editors' sign-in: %s tried too often; refused", client)
            return False
        account = accounts.asked_address(email) or email.strip().lower()[:320]
        if not await self.per_account.take(account, now):
            log.warning("editors' sign-in: one account was tried too often; refused (client %s)", client)
            return False
        return True

    async def allows_test(self, editor: str) -> bool:
        """Counts one test send by this editor; False past the limit."""
        if await self.tests.take(editor, self.clock()):
            return True
        log.warning("editors: %s sent too many tests; refused", editor)
        return False

    def set_cookie(self, response: Response, token: str) -> None:
        """No Max-Age: the browser forgets it when closed; the store ends it after the idle time."""
        response.set_cookie(
            self.cookie, token, httponly=True, samesite="strict", secure=self.secure, path="/"
        )

    def clear_cookie(self, response: Response) -> None:
        response.delete_cookie(self.cookie, httponly=True, samesite="strict", secure=self.secure, path="/")


def desk(request: Request) -> Desk:
    found: Desk = request.app.state.desk
    return found


def signed(request: Request) -> Signed:
    """The editor the gate let through (only pages under the gate may ask)."""
    found: Signed = request.state.editor
    return found


def gated(path: str) -> bool:
    return (path == "/editor" or path.startswith("/editor/")) and path != LOGIN


def login_url(scope: Scope) -> str:
    """The login page, told which page to return to (a page asked for with GET: a form posted
    while signed out is not posted again)."""
    query = scope.get("query_string", b"").decode("latin-1")
    target = f"{scope['path']}?{query}" if query else scope["path"]
    if scope.get("method") != "GET" or target == HOME or len(target) > MAX_RETURN:
        return LOGIN
    return f"{LOGIN}?{urlencode({'next': target})}"


def return_path(target: str) -> str:
    """Where a sign-in sends the editor: the page asked for when it is one of ours under
    `/editor/`, else the home page, so a crafted link never sends an editor to another site."""
    plain = unquote(target)
    if (
        not target.startswith(HOME)
        or len(target) > MAX_RETURN
        or any("//" in text or "\\" in text or printable(text) != text for text in (target, plain))
        or any(part in (".", "..") for part in plain.split("?", 1)[0].split("/"))
    ):
        return HOME
    return target


class EditorGate:
    """Every request for a page under `/editor/` but the login page needs a live session; without
    one it is sent to the login page (303) before any handler runs, and is shown nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not gated(scope["path"]):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        context: Web = connection.app.state.web
        token = connection.app.state.desk.token(connection)
        email = (
            await run_in_threadpool(accounts.signed_in, context.runtime, token, context.clock())
            if token
            else None
        )
        if email is None or token is None:
            await RedirectResponse(login_url(scope), status_code=303)(scope, receive, send)
            return
        scope.setdefault("state", {})["editor"] = Signed(email, token)
        await self.app(scope, receive, send)


def form_token(request: Request) -> str:
    """The CSRF token of a signed-in editor's forms: bound to the session, useless in another."""
    return web(request).guard.form_token(f"editor-session:{signed(request).token}")


def form_refused(request: Request, given: str) -> HTMLResponse | None:
    """A signed-in editor's form: refused from another origin, or without this session's token."""
    context = web(request)
    origin = context.guard.origin(request.headers)
    if not context.guard.own_origin(origin, str(request.base_url)):  # `null` included: not ours
        log.warning("an editors' form was posted from %s: refused", origin)
        return context.error(
            request, 403, N_("Not allowed"), N_("This form may only be sent from our own pages.")
        )
    if not context.guard.valid(f"editor-session:{signed(request).token}", given):
        return context.error(
            request,
            403,
            N_("This form has expired"),
            N_("Please open the page again and send the form from there."),
            retry=HOME,
        )
    return None
