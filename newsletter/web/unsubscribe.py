"""`/unsubscribe/{token}`: leaving one newsletter. The POST is RFC 8058's one-click: no cookie,
no form token, done at once, answered 200 and never redirected. A GET only shows the button
(link scanners follow links); the page after leaving offers to come back or to leave everything."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from newsletter.i18n import N_
from newsletter.services import readers
from newsletter.subscribers import tokens
from newsletter.web.context import Web, web
from newsletter.web.forms import read_form, text

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
        return context.error(
            request,
            400,
            N_("This link is not valid"),
            N_("An unsubscribe request must say List-Unsubscribe=One-Click."),
        )
    source = "page" if text(posted, "from") == "page" else "one-click"
    left = await run_in_threadpool(context.leaving.leave, token, source, context.clock())
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
    shown = text(posted, "lang", 35)
    language = shown if shown in context.pages.languages() else left.language  # a mail client's POST
    return context.pages.render(
        page, language, left=left, action=f"/unsubscribe/{token}", csrf=context.guard.form_token(token)
    )
