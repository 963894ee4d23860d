"""`/preferences/{token}`: what a reader receives, changed with the link in every email (no
login). An expired or damaged link, and `/preferences` itself, offer to email a fresh one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from newsletter.errors import InputError, NewsletterError, StoreError
from newsletter.i18n import N_, primary_language
from newsletter.services import readers
from newsletter.subscribers.tokens import TokenError
from newsletter.subscribers.zones import MAX_NAME, zone_choices
from newsletter.web.context import Notices, Web, log, web
from newsletter.web.forms import read_form, text, texts

router = APIRouter()
# The pause a reader may choose, in weeks (the service allows up to 52).
PAUSES = (0, 1, 2, 4, 8, 12, 26, 52)
# What the page says of a field the service refused.
PROBLEMS = {
    "categories": N_("Choose among the sections listed."),
    "pause": N_("Choose a pause from the list."),
    "newsletters": N_("Choose among the newsletters listed."),
    "new_email": N_("We have sent several links to this address already: try again in an hour."),
    "timezone": N_("Choose a time zone from the list."),
}
# The choice a paused reader's form starts on: saving other settings leaves the pause as it is.
KEEP = "keep"


@router.get("/preferences")
async def ask_for_link(request: Request) -> Response:
    context = web(request)
    return link_page(context, request, 200, expired=False)


@router.post("/preferences")
async def send_link(request: Request) -> Response:
    """Email the settings link to an address, if it is a reader's; the answer never says."""
    context = web(request)
    posted = await read_form(request)
    # The expired link's page sends no referrer: `Origin: null` is expected there.
    if refused := context.cookie_form_refused(
        request, text(posted, "csrf"), "/preferences", null_origin=True
    ):
        return refused
    if not await context.allows_client(request):
        return context.too_many(request)
    email = text(posted, "email", 320)
    notices = Notices(context.runtime)
    if email and await context.allows_address(email):
        try:
            await run_in_threadpool(readers.fresh_link, context.runtime, email, context.clock(), notices)
        except StoreError:  # nothing was recorded: the page says to come back (503)
            raise
        except NewsletterError as exc:
            log.error("a fresh settings link: %s", exc)
    return notices.after(context.pages.render("link_sent.html", context.language(request), email=email))


@router.get("/preferences/{token}")
async def preferences(request: Request, token: str) -> Response:
    context = web(request)
    try:
        view = await run_in_threadpool(readers.preferences, context.runtime, token)
    except TokenError:
        return link_page(context, request, 400, expired=True)
    return preferences_page(context, token, view)


@router.post("/preferences/{token}")
async def change(request: Request, token: str) -> Response:
    context = web(request)
    posted = await read_form(request)
    if refused := context.form_refused(request, token, text(posted, "csrf")):
        return refused
    new_email = text(posted, "new_email", 320) or None
    if new_email and not await context.allows_client(request):
        return context.too_many(request)
    try:
        current = await run_in_threadpool(readers.preferences, context.runtime, token)
    except TokenError:
        return link_page(context, request, 400, expired=True)
    wanted, problem = _wanted(context, posted, current.language)
    if problem is None and new_email and not await context.allows_address(new_email):
        problem = (
            "new_email",
            N_("We have sent several links to this address already: try again in an hour."),
        )
    if problem is not None:
        return preferences_page(context, token, current, errors=dict([problem]), status=400)
    notices = Notices(context.runtime)
    try:
        view, asked = await run_in_threadpool(
            readers.change, context.runtime, token, wanted, context.clock(), notices
        )
    except InputError as exc:  # the service's words may quote the form: the page says its own
        errors = {exc.name: PROBLEMS.get(exc.name, N_("Please check this value."))}
        return preferences_page(context, token, current, errors=errors, status=400)
    except ValueError:  # a new address email-validator refuses
        errors = {"new_email": N_("This is not an email address we can write to.")}
        return preferences_page(context, token, current, errors=errors, status=400)
    return notices.after(preferences_page(context, token, view, saved=True, address_asked=asked))


def _wanted(context: Web, posted: FormData, current: str) -> tuple[readers.Change, tuple[str, str] | None]:
    """The form as the service takes it, or the first field that cannot be right."""
    chosen = primary_language(text(posted, "language", 35))
    language = chosen or context.runtime.settings.reader_language(current)
    pause = text(posted, "pause_weeks", 4) or "0"
    problem = None
    if language not in context.pages.languages():
        problem = ("language", N_("Choose a language."))
    if pause != KEEP and (not pause.isdigit() or int(pause) not in PAUSES):
        problem, pause = ("pause_weeks", N_("Choose a pause from the list.")), "0"
    change = readers.Change(
        newsletters=texts(posted, "newsletters"),
        categories=texts(posted, "categories"),
        language=language,
        pause_weeks=None if pause == KEEP else int(pause),
        new_email=text(posted, "new_email", 320) or None,
        # A page from before readers had zones posts none: the reader's stays as it is.
        timezone=text(posted, "timezone", MAX_NAME + 1) if "timezone" in posted else None,
    )
    return change, problem


def preferences_page(
    context: Web,
    token: str,
    view: readers.ReaderView,
    errors: dict[str, str] | None = None,
    status: int = 200,
    saved: bool = False,
    address_asked: bool = False,
) -> Response:
    now = context.clock()
    paused = [
        s.paused_until for s in view.subscriptions if s.active and s.paused_until and s.paused_until > now
    ]
    return context.pages.render(
        "preferences.html",
        view.language,
        status,
        view=view,
        action=f"/preferences/{token}",
        csrf=context.guard.form_token(token),
        newsletters=context.pages.newsletters(view.language),
        categories=context.pages.categories(view.language),
        languages=context.pages.languages(),
        zones=zone_choices(context.runtime.settings.timezone),
        chosen_zone=view.timezone or "",
        # A language the site no longer offers shows as the site's, which the reader gets now.
        chosen_language=context.runtime.settings.reader_language(view.language),
        pauses=PAUSES,
        paused_until=max(paused) if paused else None,
        errors=errors or {},
        saved=saved,
        address_asked=address_asked,
    )


def link_page(context: Web, request: Request, status: int, expired: bool) -> Response:
    """The form that emails a fresh settings link; it (re)sets the CSRF cookie."""
    cookie = context.guard.cookie_value(request.cookies) or context.guard.new_cookie()
    response = context.pages.render(
        "link.html", context.language(request), status, expired=expired, csrf=context.guard.form_token(cookie)
    )
    response.set_cookie(
        context.guard.cookie, cookie, httponly=True, samesite="strict", secure=context.guard.secure, path="/"
    )
    return response
