"""`/healthz` for monitoring, and the pages' stylesheet."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from newsletter.services import overview
from newsletter.web.context import web

router = APIRouter()


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    """200 when the store answers, 503 when it does not; nothing else is told to the caller."""
    reachable = await run_in_threadpool(overview.database_reachable, web(request).runtime)
    return JSONResponse(
        {"status": "ok" if reachable else "failing", "database": "reachable" if reachable else "unreachable"},
        status_code=200 if reachable else 503,
    )


@router.get("/site.css")
async def stylesheet(request: Request) -> Response:
    return Response(
        web(request).pages.stylesheet(),
        media_type="text/css",
        headers={"cache-control": "public, max-age=3600"},
    )
