"""`GET /c/{article}/{reader}`: a tracked article link, counted, then redirected to the article."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from newsletter.services import clicks
from newsletter.web.context import web

router = APIRouter()


@router.get("/c/{article}/{reader}")
async def click(request: Request, article: str, reader: str) -> Response:
    context = web(request)
    target = await run_in_threadpool(clicks.follow, context.runtime, article, reader, context.clock())
    return RedirectResponse(target, status_code=302)
