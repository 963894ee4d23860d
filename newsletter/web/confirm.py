"""`/confirm/{token}` and `/address/{token}`: the links that confirm a sign-up or a new address.
A GET only shows a button; the POST it sends confirms, so a link scanner confirms nothing."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from newsletter.services import readers
from newsletter.subscribers.links import Links
from newsletter.web.context import web
from newsletter.web.forms import read_form, text

router = APIRouter()


@router.get("/confirm/{token}")
async def confirm_page(request: Request, token: str) -> Response:
    return await _ask(request, "confirm", token)


@router.get("/address/{token}")
async def address_page(request: Request, token: str) -> Response:
    return await _ask(request, "address", token)


async def _ask(request: Request, purpose: str, token: str) -> Response:
    context = web(request)
    language = await run_in_threadpool(readers.language_of, context.runtime, purpose, token)
    asked = (
        await run_in_threadpool(readers.asked_for, context.runtime, token) if purpose == "confirm" else None
    )
    sections = dict(context.pages.categories(language))
    return context.pages.render(
        "confirm.html",
        language,
        purpose=purpose,
        action=f"/{purpose}/{token}",
        csrf=context.guard.form_token(token),
        asked=asked,
        asked_newsletters=[context.pages.title(n, language) for n in asked.newsletters] if asked else [],
        asked_sections=[sections.get(slug, slug) for slug in asked.categories] if asked else [],
    )


@router.post("/confirm/{token}")
async def confirm(request: Request, token: str) -> Response:
    context = web(request)
    posted = await read_form(request)
    if refused := context.form_refused(request, token, text(posted, "csrf")):
        return refused
    view = await run_in_threadpool(readers.confirm, context.runtime, token, context.clock())
    return _confirmed(request, "confirm", view)


@router.post("/address/{token}")
async def confirm_address(request: Request, token: str) -> Response:
    context = web(request)
    posted = await read_form(request)
    if refused := context.form_refused(request, token, text(posted, "csrf")):
        return refused
    view = await run_in_threadpool(readers.confirm_address, context.runtime, token, context.clock())
    return _confirmed(request, "address", view)


def _confirmed(request: Request, purpose: str, view: readers.ReaderView) -> Response:
    context = web(request)
    return context.pages.render(
        "confirmed.html",
        view.language,
        purpose=purpose,
        view=view,
        settings_link=Links.from_settings(context.runtime.settings).preferences(view.subscriber_id),
    )
