"""`/editor/checks/{newsletter}`: the checks before the next edition goes (article links, alt
text, size against Gmail's clipping, SpamAssassin's score, List-Unsubscribe): the last checklist
kept on a prepared edition, and a form that runs them again and shows what they found."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from newsletter.editions.checks import Checklist
from newsletter.errors import NewsletterError
from newsletter.i18n import N_
from newsletter.services import checks
from newsletter.web.context import log, web
from newsletter.web.forms import read_form, text
from newsletter.web.signin import form_refused, form_token, signed

router = APIRouter()
PAGE = "/editor/checks/{newsletter}"
Newsletter = Annotated[str, Path(max_length=64)]


@router.get(PAGE)
async def page(request: Request, newsletter: Newsletter) -> Response:
    """The last checklist, without fetching a link again."""
    context = web(request)
    if newsletter not in context.runtime.settings.newsletters:
        return context.error(request, 404, N_("Page not found"), N_("There is no page at this address."))
    checklist = await run_in_threadpool(checks.last, context.runtime, newsletter, context.clock())
    return _page(request, newsletter, checklist)


@router.post(PAGE)
async def run(request: Request, newsletter: Newsletter) -> Response:
    """Run every check now (the links are fetched: it may take a while) and show the result."""
    context = web(request)
    if newsletter not in context.runtime.settings.newsletters:
        return context.error(request, 404, N_("Page not found"), N_("There is no page at this address."))
    posted = await read_form(request)
    if refused := form_refused(request, text(posted, "csrf")):
        return refused
    try:
        checklist = await run_in_threadpool(checks.run, context.runtime, newsletter, context.clock())
    except NewsletterError as exc:  # nothing to check yet (no news in its window), said plainly
        return _page(request, newsletter, None, str(exc), 409)
    log.info("editors: %s ran the checks of the %s edition", signed(request).email, newsletter)
    return _page(request, newsletter, checklist)


def _page(
    request: Request,
    newsletter: str,
    checklist: Checklist | None,
    problem: str | None = None,
    status: int = 200,
) -> Response:
    context = web(request)
    return context.pages.render(
        "editor/checks.html",
        context.language(request),
        status,
        editor=signed(request).email,
        csrf=form_token(request),
        newsletter=newsletter,
        checklist=checklist,
        checked=context.pages.local(checklist.at) if checklist else None,
        problem=problem,
    )
