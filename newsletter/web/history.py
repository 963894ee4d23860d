"""`/editor/editions` and `/editor/editions/{id}`: the past editions, and what one came to.

Behind the editors' gate like every page under `/editor/`. Addresses, the provider's words and
article titles come from outside: the templates show them as text (autoescaped), never markup.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from newsletter.editions.edition import EditionError
from newsletter.i18n import N_
from newsletter.services import history
from newsletter.services.history import PastEdition
from newsletter.store.runtime import MAX_ID
from newsletter.store.statuses import DeliveryStatus, EditionStatus, SuppressionReason
from newsletter.web.context import web

router = APIRouter()
EDITIONS = "/editor/editions"

# What the pages call each status and reason (English msgids; the templates translate them).
DELIVERY_NAMES = {
    DeliveryStatus.PENDING: N_("pending"),
    DeliveryStatus.SENDING: N_("sending"),
    DeliveryStatus.SENT: N_("sent"),
    DeliveryStatus.UNCERTAIN: N_("uncertain"),
    DeliveryStatus.FAILED: N_("failed"),
    DeliveryStatus.SKIPPED: N_("skipped"),
    DeliveryStatus.SUPPRESSED: N_("suppressed"),
}
EDITION_NAMES = {
    EditionStatus.DRAFT: N_("draft"),
    EditionStatus.READY: N_("ready"),
    EditionStatus.SENDING: N_("sending"),
    EditionStatus.COMPLETE: N_("complete"),
    EditionStatus.PARTIAL: N_("partial"),
    EditionStatus.MISSED: N_("missed"),
}
REASON_NAMES = {
    SuppressionReason.BOUNCE: N_("bounce"),
    SuppressionReason.COMPLAINT: N_("complaint"),
    SuppressionReason.UNSUBSCRIBE: N_("left every newsletter"),
    SuppressionReason.MANUAL: N_("manual"),
    SuppressionReason.FORGOTTEN: N_("forgotten"),
}


@router.get(EDITIONS)
async def past_editions(request: Request, page: Annotated[int, Query(ge=1)] = 1) -> Response:
    context = web(request)
    found = await run_in_threadpool(history.past, context.runtime, page)
    return context.pages.render(
        "editor/editions.html",
        context.language(request),
        editions=[_edition(past, context.pages.local) for past in found.editions],
        page=found.page,
        pages=found.pages,
        total=found.total,
    )


@router.get(EDITIONS + "/{edition_id:int}")
async def past_edition(request: Request, edition_id: int) -> Response:
    context = web(request)
    if edition_id > MAX_ID:  # no row has such an id, and the database could not take it
        raise HTTPException(404)
    try:
        found = await run_in_threadpool(history.report, context.runtime, edition_id)
    except EditionError:
        raise HTTPException(404) from None
    when = context.pages.local
    return context.pages.render(
        "editor/edition.html",
        context.language(request),
        edition=_edition(found.edition, when),
        failures=[
            {"email": f.email, "attempts": f.attempts, "detail": f.detail or ""} for f in found.failures
        ],
        more_failures=found.more_failures,
        suppressions=[(REASON_NAMES[r], n) for r in SuppressionReason if (n := found.suppressions.get(r))],
        suppressed=[
            {
                "email": s.email,
                "reason": REASON_NAMES[s.reason],
                "detail": s.detail or "",
                "when": when(s.at),
            }
            for s in found.suppressed
        ],
        clicks=found.clicks,
    )


def _edition(past: PastEdition, when: Callable[[datetime | None], str]) -> dict[str, object]:
    """What both pages show of an edition: its times in the site's zone (`when`), its statuses named."""
    info = past.edition
    return {
        "id": info.id,
        "newsletter": info.newsletter,
        "slot": info.slot,
        "article": info.article_title if info.article_id is not None else None,
        "status": EDITION_NAMES[info.status],
        "window": f"{when(info.window_start)} – {when(info.window_end)}",
        "started": when(past.started_at),
        "finished": when(past.finished_at),
        "held_by": past.held_by,
        "held": when(past.held_at),
        "released": when(past.released_at),
        "approved_by": past.approved_by,
        "approved": when(past.approved_at),
        "note": past.note,
        "counts": [(DELIVERY_NAMES[s], past.counts[s]) for s in DeliveryStatus if past.counts.get(s)],
        "total": sum(past.counts.values()),
        "waves": None
        if past.waves is None
        else {
            "done": past.waves.done,
            "total": past.waves.total,
            "next": when(past.waves.next),
            "last": when(past.waves.last),
            "waiting": past.waves.waiting,
        },
    }
