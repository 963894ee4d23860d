"""`/editor/login`, `/editor/logout` and `/editor/`: an editor signs in, sees who they are and the
audit log, and signs out; `/editor/signup-form`: the sign-up form other pages of the site may
carry, as HTML to copy. The editors' other pages build on these.

A wrong password and an unknown account get the same page, after the same work (a password
hash is checked either way), so the answer tells nobody which addresses are editors.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from newsletter import published
from newsletter.i18n import N_
from newsletter.services import accounts, audit
from newsletter.web.context import log, web
from newsletter.web.forms import read_form, text
from newsletter.web.pages import Pages
from newsletter.web.signin import (
    HOME,
    LOGIN,
    MAX_RETURN,
    desk,
    form_refused,
    form_token,
    return_path,
    signed,
)

router = APIRouter()
# Entries of the audit log the home page shows.
AUDIT_SHOWN = 50
SIGNUP_FORM = "/editor/signup-form"
# An audit entry about an edition names it by newsletter and slot: "weekly 2026-11-23T07:00".
EDITION_TARGET = re.compile(r"(?P<newsletter>\S+) (?P<slot>\d{4}-\d\d-\d\dT\d\d:\d\d)")


@router.get(LOGIN)
async def login_form(request: Request) -> Response:
    context = web(request)
    token = desk(request).token(request)
    target = return_path(request.query_params.get("next", ""))
    if token and await run_in_threadpool(accounts.signed_in, context.runtime, token, context.clock()):
        return RedirectResponse(target, status_code=303)
    return login_page(request, target=target)


@router.post(LOGIN)
async def login(request: Request) -> Response:
    context = web(request)
    posted = await read_form(request)
    if refused := context.cookie_form_refused(request, text(posted, "csrf"), LOGIN):
        return refused
    email = text(posted, "email", 320)
    password = posted.get("password")
    target = return_path(text(posted, "next", MAX_RETURN + 1))
    client = context.client(request)
    if not await desk(request).allows_attempt(client, email):
        response = login_page(
            request, email, N_("Too many attempts to sign in. Please wait a quarter of an hour."), 429, target
        )
        response.headers["Retry-After"] = "900"
        return response
    if not email or not isinstance(password, str) or not password:
        return login_page(request, email, N_("Enter your email address and your password."), 400, target)
    signed_in = await run_in_threadpool(
        accounts.sign_in, context.runtime, email, password, client, context.clock()
    )
    if signed_in is None:
        return login_page(
            request, email, N_("This email address and password do not match an editor's."), 400, target
        )
    log.info("editors' sign-in: %s from %s", signed_in.email, client)
    response = RedirectResponse(target, status_code=303)
    desk(request).set_cookie(response, signed_in.token)
    return response


@router.post("/editor/logout")
async def logout(request: Request) -> Response:
    context = web(request)
    posted = await read_form(request)
    if refused := form_refused(request, text(posted, "csrf")):
        return refused
    await run_in_threadpool(
        accounts.sign_out, context.runtime, signed(request).token, context.client(request), context.clock()
    )
    response = RedirectResponse(LOGIN, status_code=303)
    desk(request).clear_cookie(response)
    return response


@router.get(HOME)
async def home(request: Request) -> Response:
    context = web(request)
    entries = await run_in_threadpool(audit.entries, context.runtime, AUDIT_SHOWN)
    return context.pages.render(
        "editor/home.html",
        context.language(request),
        editor=signed(request).email,
        csrf=form_token(request),
        entries=[
            {
                "when": context.pages.local(e.at),
                "editor": e.editor,
                "action": e.action,
                "target": _target(e.target, context.pages),
                "client": e.client,
            }
            for e in entries
        ],
    )


@router.get(SIGNUP_FORM)
async def signup_form(request: Request) -> Response:
    """The HTML of a sign-up form for another page of the site, in the editor's language: the
    fields `/subscribe` accepts, and the origins allowed to post it."""
    context = web(request)
    language = context.language(request)
    settings = context.runtime.settings
    action = published.url(str(settings.public_url), "/subscribe")
    snippet = context.pages.html(
        "editor/signup_snippet.html",
        language,
        action=action,
        newsletters=context.pages.newsletters(language),
        categories=context.pages.categories(language),
        languages=context.pages.languages(),
        wording=settings.readers.consent_wording,
    )
    return context.pages.render(
        "editor/signup_form.html",
        language,
        editor=signed(request).email,
        csrf=form_token(request),
        action=action,
        origins=settings.readers.signup_origins,
        public_url=str(settings.public_url).rstrip("/"),
        snippet=snippet.strip(),
    )


def _target(target: str | None, pages: Pages) -> str:
    """What an entry was about, an edition's slot in the site's zone, named (the log keeps the
    slot's name as it was recorded)."""
    found = EDITION_TARGET.fullmatch(target or "")
    if found is None:
        return target or ""
    return f"{found['newsletter']} {pages.slot(found['slot'])}"


def login_page(
    request: Request, email: str = "", problem: str | None = None, status: int = 200, target: str = HOME
) -> Response:
    """The sign-in form, carrying the page to return to; it (re)sets the CSRF cookie its token
    is bound to."""
    context = web(request)
    cookie = context.guard.cookie_value(request.cookies) or context.guard.new_cookie()
    response = context.pages.render(
        "editor/login.html",
        context.language(request),
        status,
        email=email,
        problem=problem,
        return_to=target,
        csrf=context.guard.form_token(cookie),
    )
    response.set_cookie(
        context.guard.cookie, cookie, httponly=True, samesite="strict", secure=context.guard.secure, path="/"
    )
    return response
