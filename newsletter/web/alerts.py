"""`/editor/alerts/{newsletter}`: an editor sends one article now to the readers of an alert
newsletter. Choose the article, see who will get it (pending, skipped, suppressed) and the
message as sent in each language, then confirm; the alert goes from this process at once and
the page shows it going. Every alert the newsletter sent is listed with its counts."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from newsletter.errors import NewsletterError
from newsletter.i18n import N_
from newsletter.services import breaking
from newsletter.store.statuses import EditionStatus
from newsletter.web.context import log, web
from newsletter.web.forms import read_form, text
from newsletter.web.signin import form_refused, form_token, signed
from newsletter.web.upcoming import PAGE_CSP, _framed

router = APIRouter()
PREFIX = "/editor/alerts/{newsletter}"
Newsletter = Annotated[str, Path(max_length=64)]
Reference = Annotated[str, Query(max_length=2000)]
DONE = {
    "sent": N_("The alert is going out now: its counts below grow as it goes."),
    "held": N_("The alert waits for the end of the quiet hours: the scheduled job sends it then."),
    "already": N_("This article was alerted already: nothing more goes."),
}


def _alerts(request: Request, newsletter: str) -> Response | None:
    if newsletter not in web(request).runtime.settings.alerts():
        return web(request).error(request, 404, N_("Page not found"), N_("There is no page at this address."))
    return None


@router.get(PREFIX)
async def page(
    request: Request,
    newsletter: Newsletter,
    article: Reference = "",
    subject: Annotated[str, Query(max_length=300)] = "",
    urgent: bool = False,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The articles to choose from and the alerts sent; with an article, what confirming does."""
    if missing := _alerts(request, newsletter):
        return missing
    context = web(request)
    runtime, now = context.runtime, context.clock()
    rehearsal, problem = None, None
    if article.strip():
        try:
            rehearsal = await run_in_threadpool(
                breaking.rehearse, runtime, newsletter, article, now, subject or None, urgent
            )
        except NewsletterError as exc:
            problem = str(exc)
    listed = await run_in_threadpool(breaking.candidates, runtime, newsletter)
    sent = await run_in_threadpool(breaking.past, runtime, newsletter)
    query = urlencode({"article": article, "subject": subject, **({"urgent": "1"} if urgent else {})})
    response = context.pages.render(
        "editor/alerts.html",
        context.language(request),
        200 if problem is None else 404,
        editor=signed(request).email,
        csrf=form_token(request),
        newsletter=newsletter,
        article=article,
        subject=subject,
        urgent=urgent,
        query=query,
        rehearsal=rehearsal,
        problem=problem,
        candidates=listed,
        past=sent,
        done=DONE.get(done or ""),
    )
    response.headers["content-security-policy"] = PAGE_CSP
    return response


@router.get(PREFIX + "/frame")
async def frame(
    request: Request,
    newsletter: Newsletter,
    article: Reference,
    language: Annotated[str, Query(max_length=16)],
    subject: Annotated[str, Query(max_length=300)] = "",
    urgent: bool = False,
) -> Response:
    """The alert's message for readers of `language`, as they will get it (links to nobody's
    account), in a sandboxed frame."""
    if missing := _alerts(request, newsletter):
        return missing
    context = web(request)
    try:
        shown = await run_in_threadpool(
            breaking.rehearse, context.runtime, newsletter, article, context.clock(), subject or None, urgent
        )
    except NewsletterError:
        return context.error(request, 404, N_("Page not found"), N_("There is no page at this address."))
    found = next((html for code, _subject, html, _text in shown.messages if code == language), None)
    if found is None:
        return context.error(request, 404, N_("Page not found"), N_("There is no page at this address."))
    return _framed(found)


@router.post(PREFIX + "/send")
async def send(request: Request, newsletter: Newsletter) -> Response:
    """Confirmed: the alert opened (once per article) and sent from this process at once."""
    if missing := _alerts(request, newsletter):
        return missing
    posted = await read_form(request)
    if refused := form_refused(request, text(posted, "csrf")):
        return refused
    context = web(request)
    now = context.clock()
    editor = signed(request).email
    try:
        opened = await run_in_threadpool(
            breaking.open_by_editor,
            context.runtime,
            newsletter,
            text(posted, "article", 2000),
            now,
            text(posted, "subject", 300) or None,
            text(posted, "urgent") == "1",
            editor,
            context.client(request),
        )
    except NewsletterError as exc:
        return context.error(request, 409, N_("This cannot be done"), str(exc))
    if not opened.created and opened.edition.status != EditionStatus.DRAFT:
        done = "already"
    elif opened.not_before is not None and now < opened.not_before:
        done = "held"
    else:
        assert opened.edition.id is not None
        breaking.send_in_background(context.runtime, opened.edition.id, now)
        log.info("editors: %s sent the %s alert of article %d", editor, newsletter, opened.article_id)
        done = "sent"
    return RedirectResponse(f"/editor/alerts/{newsletter}?done={done}", status_code=303)
