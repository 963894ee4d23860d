"""The readers' web app, made from a runtime: what `newsletter serve` and `newsletter run
--with-web` serve, and what the tests drive over a real socket."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from newsletter.i18n import N_
from newsletter.metrics.exposition import registry
from newsletter.services.readers import ReaderError
from newsletter.store.availability import UNAVAILABLE
from newsletter.store.runtime import Runtime
from newsletter.subscribers.tokens import TokenError
from newsletter.web import (
    alerts,
    checks,
    clicks,
    confirm,
    editor,
    health,
    history,
    metrics,
    preferences,
    signup,
    unsubscribe,
    upcoming,
    webhooks,
)
from newsletter.web.archive import Syndicated
from newsletter.web.context import Clock, Web, log, wall_clock, web
from newsletter.web.conventions import Head, Slashes, allowed
from newsletter.web.security import BodyLimit, SecurityHeaders, security_headers
from newsletter.web.signin import Desk, EditorGate

# What an HTTP error page says, by status (English msgids; the page translates them).
ERRORS = {
    400: (N_("Bad request"), N_("This request cannot be understood.")),
    404: (N_("Page not found"), N_("There is no page at this address.")),
    405: (N_("Not allowed"), N_("This page cannot be used this way.")),
    413: (N_("Too large"), N_("This form is larger than any of ours.")),
}
# How long a page waits for the store's write lock (a send's writes are short) before it
# answers 503.
WRITE_WAIT = 3.0


def create_app(runtime: Runtime, clock: Clock = wall_clock) -> FastAPI:
    """The app; refuses to start without a usable secret key (every link is signed with it)."""
    # Its own sessions on the same engine: a page never waits long for the store.
    runtime = runtime.waiting_at_most(WRITE_WAIT)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    app.state.web = Web.build(runtime, clock)
    app.state.desk = Desk.build(runtime, app.state.web.guard.secure, clock)
    app.state.metrics = registry(runtime, clock)
    for part in (
        signup,
        confirm,
        preferences,
        unsubscribe,
        health,
        metrics,
        webhooks,
        clicks,
        editor,
        history,
        upcoming,
        checks,
        alerts,
    ):
        app.include_router(part.router)
    app.router.default = Slashes(app.router, str(runtime.settings.public_url))
    app.add_exception_handler(TokenError, _bad_link)
    app.add_exception_handler(ReaderError, _refused)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _http_error)
    for trouble in UNAVAILABLE:
        app.add_exception_handler(trouble, _unavailable)
    app.add_exception_handler(Exception, _failed)
    app.add_middleware(Syndicated, runtime=runtime, clock=lambda: clock().timestamp())
    app.add_middleware(EditorGate)
    app.add_middleware(unsubscribe.OneClick)  # inside the body's limits and the headers' additions
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders, https=app.state.web.guard.secure, own=app.state.web.guard.own)
    app.add_middleware(Head)
    return app


async def _bad_link(request: Request, exc: Exception) -> Response:
    """A forged, altered, expired or foreign token: nothing was changed."""
    return web(request).error(
        request,
        400,
        N_("This link is not valid"),
        N_(
            "It may have been copied incompletely, or it has expired. Use the link in your most recent email."
        ),
    )


async def _refused(request: Request, exc: Exception) -> Response:
    return web(request).error(request, 409, N_("This cannot be done"), str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 400
    title, message = ERRORS.get(status, ERRORS[400])
    response = web(request).error(request, status, title, message)
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)
    if status == 405:  # the router names one handler's methods; a path may have several
        response.headers["allow"] = allowed(request.app.router.routes, request.scope)
    return response


async def _unavailable(request: Request, exc: Exception) -> Response:
    return web(request).unavailable(request, exc)


async def _failed(request: Request, exc: Exception) -> Response:
    """Outside every middleware: the page carries the security headers itself."""
    route = getattr(request.scope.get("route"), "path", "a page")  # the pattern: no token in the log
    log.error("%s %s failed", request.method, route, exc_info=exc)
    response = web(request).error(
        request, 500, N_("Something went wrong"), N_("Please try again in a few minutes.")
    )
    for name, value in security_headers(web(request).guard.secure, private=True):
        response.headers[name.decode()] = value.decode()
    return response
