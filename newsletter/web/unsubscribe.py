"""`/unsubscribe/{token}`: leaving one newsletter. The POST is RFC 8058's one-click: no cookie,
no form token, done at once, answered 200 and never redirected. A GET only shows the button
(link scanners follow links); the page after leaving offers to come back or to leave everything.

Mail clients send the one-click in bursts after a send, so the common case (a small urlencoded
form) has a lean path, `OneClick`: no routing, form parser or thread per request, and a page
rendered once per language and newsletter. Anything else goes on to the route below."""

from __future__ import annotations

import re
from dataclasses import replace
from urllib.parse import unquote_plus

from fastapi import APIRouter, Request
from markupsafe import escape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from newsletter.i18n import N_
from newsletter.services import readers
from newsletter.store.availability import UNAVAILABLE
from newsletter.subscribers import tokens
from newsletter.text import control_character
from newsletter.web.context import Web, web
from newsletter.web.forms import MAX_FIELDS, read_form, text
from newsletter.web.security import MAX_BODY, BodyTooLarge

router = APIRouter()


@router.get("/unsubscribe/{token}")
async def unsubscribe_page(request: Request, token: str) -> Response:
    context = web(request)
    settings = context.runtime.settings
    newsletter = tokens.read(settings.signing_key(), "unsubscribe", token).scope
    language = await run_in_threadpool(readers.language_of, context.runtime, "unsubscribe", token)
    title = context.pages.title(newsletter, language)  # in the reader's language
    return context.pages.render("unsubscribe.html", language, title=title, action=f"/unsubscribe/{token}")


@router.post("/unsubscribe/{token}")
async def unsubscribe(request: Request, token: str) -> Response:
    context = web(request)
    posted = await read_form(request)
    if text(posted, "List-Unsubscribe") != "One-Click":
        return _not_one_click(context, request)
    source = "page" if text(posted, "from") == "page" else "one-click"
    left = await context.leaving.leave_soon(token, source, context.clock())
    return _left(context, request, posted, token, "unsubscribed.html", left)


@router.post("/unsubscribe/{token}/again")
async def resubscribe(request: Request, token: str) -> Response:
    context = web(request)
    posted = await read_form(request)
    if refused := context.form_refused(request, token, text(posted, "csrf")):
        return refused
    back = await run_in_threadpool(readers.resubscribe, context.runtime, token, context.clock())
    return _left(context, request, posted, token, "resubscribed.html", back)


@router.post("/unsubscribe/{token}/everything")
async def leave_everything(request: Request, token: str) -> Response:
    context = web(request)
    posted = await read_form(request)
    if refused := context.form_refused(request, token, text(posted, "csrf")):
        return refused
    left = await run_in_threadpool(readers.leave_everything, context.runtime, token, "page", context.clock())
    return _left(context, request, posted, token, "left_everything.html", left)


def _left(
    context: Web, request: Request, posted: FormData, token: str, page: str, left: readers.Left
) -> Response:
    language = _language(context, text(posted, "lang", 35), left)
    return context.pages.render(
        page, language, left=left, action=f"/unsubscribe/{token}", csrf=context.guard.form_token(token)
    )


def _language(context: Web, shown: str, left: readers.Left) -> str:
    """The page's own language when its form says (`lang`), else the reader's (a mail client's POST)."""
    return shown if shown in context.pages.languages() else left.language


def _not_one_click(context: Web, request: Request) -> Response:
    return context.error(
        request,
        400,
        N_("This link is not valid"),
        N_("An unsubscribe request must say List-Unsubscribe=One-Click."),
    )


# What the app's handlers answer with a page of their own: a bad link, the store unavailable.
ANSWERED: tuple[type[Exception], ...] = (tokens.TokenError, *UNAVAILABLE)
# The one-click's address, and the bodies the lean path reads itself: `name=value` pairs of plain
# or %-escaped characters, a few hundred bytes (RFC 8058's is 26). Others go to the route.
ONE_CLICK = re.compile(r"/unsubscribe/([^/]+)")
PLAIN_FORM = re.compile(rb"[\w.~%+-]*=[\w.~%+-]*(?:&[\w.~%+-]*=[\w.~%+-]*)*")
LEAN_BODY = 1024
URLENCODED = b"application/x-www-form-urlencoded"
# Where the page after leaving shows what varies per reader (none of them is escaped by HTML).
SLOT = re.compile("\x1a(email|action|csrf)\x1a")
KEPT_PAGES = 256


class OneClick:
    """RFC 8058's POST to `/unsubscribe/TOKEN` with a plain urlencoded form, answered as the
    route would: inside the middlewares that add the security headers and bound the body, the
    token checked in the event loop, the request handed to the group writer and answered once
    its group is committed. Any other request, or a body it does not read itself (multipart,
    large, malformed, a control character), goes on to the app, its body replayed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.pages: dict[tuple[str, str, str], list[str]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = ONE_CLICK.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if found is None or scope["method"] != "POST" or not _lean(scope["headers"]):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        try:
            while size <= LEAN_BODY:
                message = await receive()
                messages.append(message)
                size += len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
        except BodyTooLarge as exc:
            await self.app(scope, _replayed(messages, receive, exc), send)
            return
        form = _plain_form(messages) if size <= LEAN_BODY else None
        if form is None:
            await self.app(scope, _replayed(messages, receive), send)
            return
        response = await self.answer(Request(scope), found[1], form)
        await response(scope, receive, send)

    async def answer(self, request: Request, token: str, form: dict[str, str]) -> Response:
        context = web(request)
        if form.get("List-Unsubscribe", "").strip() != "One-Click":
            return _not_one_click(context, request)
        source = "page" if form.get("from", "").strip() == "page" else "one-click"
        try:
            left = await context.leaving.leave_soon(token, source, context.clock())
        except ANSWERED as exc:
            handler = next(h for c in type(exc).__mro__ if (h := request.app.exception_handlers.get(c)))
            answer: Response = await handler(request, exc)
            return answer
        language = _language(context, form.get("lang", "").strip()[:35], left)
        return HTMLResponse(self.page(context, language, left, token))

    def page(self, context: Web, language: str, left: readers.Left, token: str) -> str:
        """`_left`'s page, character for character: rendered once per language and newsletter
        with markers where the reader's address, link and form token go, then filled."""
        key = (context.runtime.settings.reader_language(language), left.newsletter, left.title)
        outline = self.pages.get(key)
        if outline is None:
            marked = replace(left, email="\x1aemail\x1a")
            html = context.pages.html(
                "unsubscribed.html", language, left=marked, action="\x1aaction\x1a", csrf="\x1acsrf\x1a"
            )
            outline = SLOT.split(html)
            if len(self.pages) >= KEPT_PAGES:
                self.pages.clear()
            self.pages[key] = outline
        values = {
            "email": left.email,
            "action": f"/unsubscribe/{token}",
            "csrf": context.guard.form_token(token),
        }
        return "".join(part if i % 2 == 0 else escape(values[part]) for i, part in enumerate(outline))


def _lean(headers: list[tuple[bytes, bytes]]) -> bool:
    """A plain urlencoded form, not claiming more than any form of ours holds."""
    kind = next((value for name, value in headers if name == b"content-type"), b"")
    length = next((value for name, value in headers if name == b"content-length"), b"0")
    return kind == URLENCODED and length.isdigit() and int(length) <= MAX_BODY


def _plain_form(messages: list[Message]) -> dict[str, str] | None:
    """The form's fields as the route would read them (the last of a repeated one), or None when
    the route must read it: not plain, too many fields, bytes that are not UTF-8, or a control
    character."""
    if messages[-1]["type"] != "http.request":
        return None
    body = b"".join(message.get("body", b"") for message in messages)
    if not PLAIN_FORM.fullmatch(body):
        return None
    fields = [part.partition(b"=") for part in body.split(b"&")]
    if len(fields) > MAX_FIELDS:
        return None
    pairs = [
        (unquote_plus(name.decode("latin-1")), unquote_plus(value.decode("latin-1")))
        for name, _, value in fields
    ]
    if any("\ufffd" in item or control_character(item) for pair in pairs for item in pair):
        return None
    return dict(pairs)


def _replayed(messages: list[Message], receive: Receive, trouble: Exception | None = None) -> Receive:
    """`receive` for the app after the lean path read part of a request: what was read, then
    the trouble reading met, or the rest."""
    waiting = list(messages)

    async def replay() -> Message:
        if waiting:
            return waiting.pop(0)
        if trouble is not None:
            raise trouble
        return await receive()

    return replay
