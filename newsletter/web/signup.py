"""`/subscribe`: the sign-up form (double opt-in). The answer is the same whether or not the
address was known, so the page never tells a stranger who reads the newsletter."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from newsletter.errors import InputError, NewsletterError, StoreError
from newsletter.i18n import N_, primary_language
from newsletter.services import readers
from newsletter.subscribers.zones import MAX_NAME, zone_choices
from newsletter.text import printable
from newsletter.web.context import Notices, Web, log, web
from newsletter.web.forms import read_form, text, texts

router = APIRouter()
# What a log line shows of a refused origin (a header's text): a real one is far shorter.
MAX_ORIGIN = 200


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/subscribe", status_code=303)


@router.get("/subscribe")
async def form(request: Request) -> Response:
    context = web(request)
    language = context.language(request)
    offered = context.pages.newsletters(language)
    chosen = [offered[0][0]] if len(offered) == 1 else []  # one newsletter: nothing to choose
    return signup_page(context, request, language, {"language": language, "newsletters": chosen})


@router.post("/subscribe")
async def subscribe(request: Request) -> Response:
    context = web(request)
    posted = await read_form(request)
    language = _page_language(context, request, posted)
    origin = context.guard.origin(request.headers)
    partner = context.guard.partner(origin)
    if not partner:
        if not context.guard.own_origin(origin, str(request.base_url)):
            # Outside text: shown as text, and no longer than an origin needs.
            log.warning(
                "sign-up: a form was posted from %s, neither our origin nor listed in "
                "[readers] signup_origins: refused (list the origin there to accept its form)",
                printable(origin or "")[:MAX_ORIGIN],
            )
            return context.error(
                request, 403, N_("Not allowed"), N_("This form may only be sent from our own pages.")
            )
        again = N_("Please open the sign-up page again and send the form from there.")
        if refused := context.cookie_form_refused(request, text(posted, "csrf"), "/subscribe", again=again):
            return refused
    if not await context.allows_client(request):
        return context.too_many(request)
    values = _values(posted, language)
    email = values["email"]
    if not isinstance(email, str) or not email:
        return signup_page(
            context, request, language, values, errors={"email": N_("Enter your email address.")}
        )
    if values["language"] not in context.pages.languages():
        return signup_page(context, request, language, values, errors={"language": N_("Choose a language.")})
    if not await context.allows_address(email):
        log.info("sign-up: an address was asked for too often this hour; not passed on")
        return context.pages.render("signup_sent.html", language, email=email)
    settings = context.runtime.settings
    request_values = readers.SignUp(
        email=email,
        newsletters=texts(posted, "newsletters"),
        categories=texts(posted, "categories"),
        language=str(values["language"]),
        name=str(values["name"]) or None,
        timezone=str(values["timezone"]),
        # A partner page showed its own copy of the settings' wording; ours showed the translation.
        source=_source(request, origin) if partner else f"{context.guard.own}/subscribe",
        wording=None if partner else context.pages.gettext(language, settings.readers.consent_wording),
    )
    notices = Notices(context.runtime)
    try:
        outcome = await run_in_threadpool(
            readers.sign_up, context.runtime, request_values, context.clock(), notices
        )
    except InputError as exc:
        return signup_page(context, request, language, values, errors={exc.name: _problem(exc.name)})
    except ValueError:  # an address email-validator refuses
        return signup_page(context, request, language, values, errors={"email": _problem("email")})
    except StoreError:  # nothing was recorded: the page says to come back (503)
        raise
    except NewsletterError as exc:  # the notice could not go: the page still says nothing more
        log.error("sign-up: %s", exc)
        outcome = "failed"
    log.info("sign-up: %s", outcome)
    return notices.after(context.pages.render("signup_sent.html", language, email=email))


def signup_page(
    context: Web,
    request: Request,
    language: str,
    values: dict[str, object],
    errors: dict[str, str] | None = None,
) -> Response:
    """The form with the reader's values and any errors; it (re)sets the CSRF cookie."""
    cookie = context.guard.cookie_value(request.cookies) or context.guard.new_cookie()
    settings = context.runtime.settings
    response = context.pages.render(
        "signup.html",
        language,
        400 if errors else 200,
        values=values,
        errors=errors or {},
        csrf=context.guard.form_token(cookie),
        newsletters=context.pages.newsletters(language),
        categories=context.pages.categories(language),
        languages=context.pages.languages(),
        zones=zone_choices(settings.timezone),
        wording=settings.readers.consent_wording,
    )
    response.set_cookie(
        context.guard.cookie, cookie, httponly=True, samesite="strict", secure=context.guard.secure, path="/"
    )
    return response


def _values(posted: FormData, language: str) -> dict[str, object]:
    return {
        "email": text(posted, "email", 320),
        "name": text(posted, "name", 300),
        "newsletters": texts(posted, "newsletters"),
        "categories": texts(posted, "categories"),
        "language": primary_language(text(posted, "language", 35)) or language,
        "timezone": text(posted, "timezone", MAX_NAME + 1),
    }


def _page_language(context: Web, request: Request, posted: FormData) -> str:
    """The language the form was shown in (a hidden field), else the browser's."""
    shown = text(posted, "lang", 35)
    return shown if shown in context.pages.languages() else context.language(request)


def _source(request: Request, origin: str | None) -> str:
    """The partner's page: its Referer when it is on that origin, else the origin alone."""
    referer = request.headers.get("referer", "")
    return referer if origin and referer.lower().startswith(origin + "/") else origin or "unknown"


def _problem(field: str) -> str:
    return {
        "email": N_("This is not an email address we can write to."),
        "newsletters": N_("Choose at least one newsletter."),
        "categories": N_("Choose among the sections listed."),
        "language": N_("Choose a language."),
        "timezone": N_("Choose a time zone from the list."),
    }.get(field, N_("Please check this value."))
