"""What every page handler shares, built once by the app factory and kept on the app."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from newsletter.i18n import N_
from newsletter.services.leaving import Leaving
from newsletter.store.availability import StoreBusy
from newsletter.store.runtime import Runtime
from newsletter.subscribers.addresses import normalize_email
from newsletter.web.client import Network, client_address, limit_key, trusted_networks
from newsletter.web.limits import Limit
from newsletter.web.pages import Pages, asked_language
from newsletter.web.security import Guard

log = logging.getLogger("newsletter.web")
Clock = Callable[[], datetime]
# Notices asked for one address, whatever the client: past this, the page answers as usual and
# asks nothing of the service (which itself mails an address at most once an hour).
ADDRESS_PER_HOUR = 5
# When a page that found the store unavailable asks to be tried again: soon when it was busy
# (a lock held past the deadline), later when it is down.
RETRY_BUSY = 5
RETRY_DOWN = 60
# The drivers' words for a lock another program held past the deadline (SQLite, PostgreSQL).
BUSY_WORDS = ("database is locked", "lock timeout")


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Web:
    runtime: Runtime
    clock: Clock
    pages: Pages
    guard: Guard
    trusted: list[Network]
    per_client: Limit
    per_address: Limit
    leaving: Leaving  # one-clicks arriving together, written together

    @classmethod
    def build(cls, runtime: Runtime, clock: Clock) -> Web:
        settings = runtime.settings
        readers = settings.readers
        return cls(
            runtime,
            clock,
            Pages(settings),
            Guard(settings.signing_key(), str(settings.public_url), readers.signup_origins),
            trusted_networks(readers.trusted_proxies),
            Limit(runtime, "client", readers.client_per_minute, 60.0),
            Limit(runtime, "address", ADDRESS_PER_HOUR, 3600.0),
            Leaving(runtime, runtime.write_wait),
        )

    def client(self, request: Request) -> str:
        peer = request.client.host if request.client else None
        return client_address(peer, request.headers.getlist("x-forwarded-for"), self.trusted)

    async def allows_client(self, request: Request) -> bool:
        """Counts a request that sends an email (a sign-up, a link asked for)."""
        client = self.client(request)
        if await self.per_client.take(limit_key(client), self.clock()):
            return True
        log.warning("rate limit: %s made more than %d requests a minute", client, self.per_client.allowed)
        return False

    async def allows_address(self, address: str) -> bool:
        """Counted by the mailbox, however it is spelt (case, full-width letters, IDN)."""
        try:
            mailbox = normalize_email(address)
        except ValueError:
            mailbox = address.strip().lower()
        return await self.per_address.take(mailbox, self.clock())

    def language(self, request: Request) -> str:
        settings = self.runtime.settings
        offered = settings.languages()
        return asked_language(request.query_params, request.headers, settings.site.language, offered)

    def error(
        self, request: Request, status: int, title: str, message: str, **values: object
    ) -> HTMLResponse:
        """An error page in the asker's language; `title` and `message` are English msgids."""
        return self.pages.render(
            "error.html", self.language(request), status, title=title, message=message, **values
        )

    def cookie_form_refused(
        self,
        request: Request,
        given: str,
        retry: str,
        null_origin: bool = False,
        again: str = N_("Please open the page again and send the form from there."),
    ) -> HTMLResponse | None:
        """A form of a page without a token (sign-up, sign-in, a fresh link): refused from a
        foreign origin, or without the CSRF cookie's token. `null_origin`: the page sends no
        referrer, so a browser posts it with `Origin: null`; the cookie is the check then."""
        origin = self.guard.origin(request.headers)
        if not (null_origin and origin == "null") and not self.guard.own_origin(
            origin, str(request.base_url)
        ):
            log.warning("a form was posted to %s from %s: refused", request.url.path, origin)
            return self.error(
                request, 403, N_("Not allowed"), N_("This form may only be sent from our own pages.")
            )
        if not self.guard.valid(self.guard.cookie_value(request.cookies), given):
            return self.error(request, 403, N_("This form has expired"), again, retry=retry)
        return None

    def form_refused(self, request: Request, binding: str | None, given: str) -> HTMLResponse | None:
        """A token page's form: refused from a foreign origin, or without the token this page gave.
        `Origin: null` is what a browser sends from a no-referrer page (every token page): the
        form token, bound to the page's own token, is the check then."""
        origin = self.guard.origin(request.headers)
        if origin != "null" and not self.guard.own_origin(origin, str(request.base_url)):
            log.warning("a form was posted from %s: refused", origin)
            return self.error(
                request, 403, N_("Not allowed"), N_("This form may only be sent from our own pages.")
            )
        if not self.guard.valid(binding, given):
            return self.error(
                request,
                403,
                N_("This form has expired"),
                N_("Please open the page again from the link in your email."),
            )
        return None

    def too_many(self, request: Request) -> HTMLResponse:
        response = self.error(
            request, 429, N_("Too many requests"), N_("Please wait a minute before you try again.")
        )
        response.headers["Retry-After"] = "60"
        return response

    def unavailable(self, request: Request, exc: Exception) -> HTMLResponse:
        """The store is down, unreadable or busy past the deadline: nothing was done, and the
        page says to come back (a mail client's one-click tries again on a 503)."""
        cause = getattr(exc, "orig", None) or exc  # the driver's words, never a statement's values
        words = next(iter(str(cause).strip().splitlines()), type(cause).__name__)
        route = getattr(request.scope.get("route"), "path", request.url.path.split("/")[1])  # no token
        log.warning("%s %s: the store is unavailable (%s)", request.method, route, words)
        response = self.error(
            request, 503, N_("Unavailable for a moment"), N_("Please try again in a few minutes.")
        )
        busy = isinstance(exc, StoreBusy) or any(w in words for w in BUSY_WORDS)
        response.headers["Retry-After"] = str(RETRY_BUSY if busy else RETRY_DOWN)
        return response


def web(request: Request) -> Web:
    found: Web = request.app.state.web
    return found


class Notices:
    """The emails a request asks for, sent after its page is answered: how long a page takes
    then tells nothing of whether an address is on the list."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.pending: list[Callable[[], object]] = []

    def __call__(self, notice: Callable[[], object]) -> None:
        self.pending.append(notice)

    def after(self, response: Response) -> Response:
        if self.pending:
            response.background = BackgroundTask(self._send, list(self.pending))
        return response

    @staticmethod
    def _send(notices: list[Callable[[], object]]) -> None:
        for notice in notices:
            try:
                notice()
            except Exception:  # one notice that cannot go is logged; the page was answered
                log.exception("a notice could not be sent")
