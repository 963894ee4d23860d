"""`/editor/upcoming/{newsletter}`: the next edition as each kind of reader gets it, side by
side at a desktop's and a phone's width, with the editor's picks, subject, hold and approval,
a reader's own view with the reason for each article, and a test sent to the editor.

The digests are shown in sandboxed frames (no script, no origin of their own) served by a
route whose policy alone allows framing by our own pages; every other page forbids it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from newsletter.editions.compose import CLIP_BYTES
from newsletter.errors import NewsletterError
from newsletter.i18n import N_
from newsletter.notes import MAX_NOTE
from newsletter.services import editors, upcoming
from newsletter.store.runtime import MAX_ID
from newsletter.store.statuses import PickAction
from newsletter.web.context import log, web
from newsletter.web.forms import read_form, text
from newsletter.web.security import CSP, MAX_BODY
from newsletter.web.signin import WINDOW_SECONDS, desk, form_refused, form_token, signed

router = APIRouter()
PREFIX = "/editor/upcoming/{newsletter}"
# The editors' page frames the digests, from our own origin only.
PAGE_CSP = CSP + "; frame-src 'self'"
# A digest in a frame: its inline styles and the site's images, nothing else; no script, no
# origin of its own (sandbox), framed by our own pages only.
FRAME_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)
# What an action's redirect may say (a code in the URL, never text from outside).
DONE = {
    "pin": N_("Pinned. The preview below shows it."),
    "exclude": N_("Excluded. The preview below shows it."),
    "unpick": N_("Undone. The preview below shows it."),
    "up": N_("Moved up."),
    "down": N_("Moved down."),
    "unmoved": N_("It cannot move further that way."),
    "override": N_("Subject and preheader saved for this edition."),
    "note": N_("The note is saved for this edition. The preview below shows it."),
    "unnoted": N_("The note is removed from this edition."),
    "hold": N_("Held: it does not go until released."),
    "release": N_("Released: it goes at its slot, or at once when its slot has passed."),
    "approve": N_("Approved."),
    "test": N_("A test was sent to your address."),
}
MOVES = {"up": -1, "down": 1}
Newsletter = Annotated[str, Path(max_length=64)]
VariantId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _known(request: Request, newsletter: str) -> Response | None:
    if newsletter not in web(request).runtime.settings.digests():  # an alert's page is /editor/alerts/
        return web(request).error(request, 404, N_("Page not found"), N_("There is no page at this address."))
    return None


async def _posted(request: Request, newsletter: str) -> tuple[FormData, Response | None]:
    """A form posted to the page: its fields, or the answer refusing it (a newsletter not
    configured, a form without this session's token or from another origin)."""
    if missing := _known(request, newsletter):
        return FormData(), missing
    posted = await read_form(request)
    return posted, form_refused(request, text(posted, "csrf"))


def _refused(request: Request, exc: NewsletterError) -> Response:
    """An action the edition's state refuses (too late, nothing to release): said plainly."""
    return web(request).error(request, 409, N_("This cannot be done"), str(exc))


def _back(newsletter: str, done: str, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/editor/upcoming/{newsletter}?done={done}{anchor}", status_code=303)


@router.get(PREFIX)
async def page(
    request: Request,
    newsletter: Newsletter,
    variant: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    if missing := _known(request, newsletter):
        return missing
    context = web(request)
    shown = await run_in_threadpool(upcoming.upcoming, context.runtime, newsletter, context.clock())
    chosen = next((v for v in shown.variants if v.id == variant), None) or (
        shown.variants[0] if shown.variants else None
    )
    response = context.pages.render(
        "editor/upcoming.html",
        context.language(request),
        editor=signed(request).email,
        csrf=form_token(request),
        newsletter=newsletter,
        shown=shown,
        chosen=chosen,
        clip=CLIP_BYTES,
        note_limit=MAX_NOTE,
        done=DONE.get(done or ""),
    )
    response.headers["content-security-policy"] = PAGE_CSP
    return response


@router.get(PREFIX + "/variants/{variant_id}/frame")
async def frame(request: Request, newsletter: Newsletter, variant_id: VariantId) -> Response:
    """One stored variant, as its readers get it (with links to nobody's account)."""
    context = web(request)
    try:
        found = await run_in_threadpool(upcoming.variant, context.runtime, newsletter, variant_id)
    except NewsletterError:
        return context.error(request, 404, N_("Page not found"), N_("There is no page at this address."))
    return _framed(found.html)


@router.get(PREFIX + "/variants/{variant_id}/text")
async def text_part(request: Request, newsletter: Newsletter, variant_id: VariantId) -> Response:
    context = web(request)
    try:
        found = await run_in_threadpool(upcoming.variant, context.runtime, newsletter, variant_id)
    except NewsletterError:
        return context.error(request, 404, N_("Page not found"), N_("There is no page at this address."))
    return Response(found.text, media_type="text/plain; charset=utf-8")


@router.get(PREFIX + "/readers/{subscriber_id}/frame")
async def reader_frame(request: Request, newsletter: Newsletter, subscriber_id: VariantId) -> Response:
    """What this subscriber gets, as the outbox will hold it but for the links to their account
    (placeholders, as in a test)."""
    context = web(request)
    try:
        view = await run_in_threadpool(
            upcoming.reader_view, context.runtime, newsletter, subscriber_id, context.clock()
        )
    except NewsletterError:
        return context.error(request, 404, N_("Page not found"), N_("There is no page at this address."))
    if view.preview.html is None:
        return context.error(request, 404, N_("Page not found"), N_("There is no page at this address."))
    return _framed(view.preview.html)


def _framed(html: str) -> Response:
    response = HTMLResponse(html)
    response.headers["content-security-policy"] = FRAME_CSP
    response.headers["x-frame-options"] = "SAMEORIGIN"
    response.headers["referrer-policy"] = "no-referrer"  # the site's images learn nothing of the page
    return response


@router.post(PREFIX + "/reader")
async def find_reader(request: Request, newsletter: Newsletter) -> Response:
    """An address typed by the editor becomes the reader's page (by id: no address in a URL or
    a log)."""
    posted, refused = await _posted(request, newsletter)
    if refused is not None:
        return refused
    context = web(request)
    email = text(posted, "email", 320)
    try:
        subscriber_id = await run_in_threadpool(
            upcoming.subscriber_id, context.runtime, newsletter, email, context.clock()
        )
    except NewsletterError as exc:
        return _refused(request, exc)
    return RedirectResponse(f"/editor/upcoming/{newsletter}/readers/{subscriber_id}", status_code=303)


@router.get(PREFIX + "/readers/{subscriber_id}")
async def reader(request: Request, newsletter: Newsletter, subscriber_id: VariantId) -> Response:
    if missing := _known(request, newsletter):
        return missing
    context = web(request)
    try:
        view = await run_in_threadpool(
            upcoming.reader_view, context.runtime, newsletter, subscriber_id, context.clock()
        )
    except NewsletterError as exc:
        return _refused(request, exc)
    response = context.pages.render(
        "editor/reader.html",
        context.language(request),
        editor=signed(request).email,
        csrf=form_token(request),
        newsletter=newsletter,
        view=view,
        clip=CLIP_BYTES,
    )
    response.headers["content-security-policy"] = PAGE_CSP
    return response


@router.post(PREFIX + "/pick")
async def pick(request: Request, newsletter: Newsletter) -> Response:
    """Pin, exclude, undo or move an article; a prepared edition is prepared again."""
    posted, refused = await _posted(request, newsletter)
    if refused is not None:
        return refused
    context = web(request)
    article, action = text(posted, "article", 2000), text(posted, "action", 10)  # an id or a URL
    editor, now = signed(request).email, context.clock()
    try:
        if action in (PickAction.PIN, PickAction.EXCLUDE):
            await run_in_threadpool(
                editors.pick_article, context.runtime, newsletter, article, PickAction(action), now, editor
            )
        elif action == "unpick":
            await run_in_threadpool(editors.unpick_article, context.runtime, newsletter, article, now, editor)
        elif action in MOVES:
            moved = await run_in_threadpool(
                editors.move_article, context.runtime, newsletter, article, MOVES[action], now, editor
            )
            action = action if moved else "unmoved"
        else:
            return context.error(request, 400, N_("Bad request"), N_("This request cannot be understood."))
    except NewsletterError as exc:
        return _refused(request, exc)
    log.info("editors: %s %s article %s of the %s edition", editor, action, article, newsletter)
    return _back(newsletter, action, "#picks")


@router.post(PREFIX + "/override")
async def override(request: Request, newsletter: Newsletter) -> Response:
    posted, refused = await _posted(request, newsletter)
    if refused is not None:
        return refused
    context = web(request)
    try:
        await run_in_threadpool(
            editors.override,
            context.runtime,
            newsletter,
            text(posted, "language", 16),
            text(posted, "subject", 1000),
            text(posted, "preheader", 1000),
            context.clock(),
            signed(request).email,
        )
    except NewsletterError as exc:
        return _refused(request, exc)
    return _back(newsletter, "override", "#subject")


@router.post(PREFIX + "/note")
async def note(request: Request, newsletter: Newsletter) -> Response:
    """The editor's note for one language's readers; an empty one removes it."""
    posted, refused = await _posted(request, newsletter)
    if refused is not None:
        return refused
    context = web(request)
    source = text(posted, "note", MAX_BODY)  # a note too long is refused by the service, its length named
    try:
        await run_in_threadpool(
            editors.set_note,
            context.runtime,
            newsletter,
            text(posted, "language", 16),
            source,
            context.clock(),
            signed(request).email,
        )
    except NewsletterError as exc:
        return _refused(request, exc)
    return _back(newsletter, "note" if source.strip() else "unnoted", "#note")


@router.post(PREFIX + "/decide")
async def decide(request: Request, newsletter: Newsletter) -> Response:
    """Hold, release or approve the edition."""
    posted, refused = await _posted(request, newsletter)
    if refused is not None:
        return refused
    context = web(request)
    action = text(posted, "action", 10)
    if action not in ("hold", "release", "approve"):
        return context.error(request, 400, N_("Bad request"), N_("This request cannot be understood."))
    try:
        await run_in_threadpool(
            editors.decide, context.runtime, newsletter, action, context.clock(), signed(request).email
        )
    except NewsletterError as exc:
        return _refused(request, exc)
    return _back(newsletter, action)


@router.post(PREFIX + "/test")
async def test_send(request: Request, newsletter: Newsletter) -> Response:
    """The next edition to the signed-in editor only, marked as a test, outside the ledger: as
    the variant chosen on the page, or as one subscriber gets it."""
    posted, refused = await _posted(request, newsletter)
    if refused is not None:
        return refused
    context = web(request)
    editor = signed(request).email
    if not await desk(request).allows_test(editor):
        response = context.error(
            request,
            429,
            N_("Too many requests"),
            N_("You have sent many tests in a short time. Please wait a quarter of an hour."),
        )
        response.headers["Retry-After"] = str(WINDOW_SECONDS)
        return response
    try:
        await run_in_threadpool(
            upcoming.test_to_editor,
            context.runtime,
            newsletter,
            editor,
            text(posted, "variant", 20),
            text(posted, "reader", 20),
            context.clock(),
        )
    except NewsletterError as exc:
        return _refused(request, exc)
    return _back(newsletter, "test")
