"""`/metrics` for Prometheus: answered to `[metrics] allow` addresses (loopback by default) and
to a scraper with the bearer token; anyone else gets 403 and nothing of the figures."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse, Response

from newsletter.metrics import exposition
from newsletter.web.context import web

router = APIRouter()


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    context = web(request)
    peer = request.client.host if request.client else None
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers.setdefault(name, []).append(value)
    client = context.client(request)  # behind the proxies `[readers] trusted_proxies` names
    stranger = client == peer and exposition.forwarded(headers)  # forwarded by a proxy not trusted
    if not exposition.allowed(context.runtime.settings, client, stranger, headers):
        return PlainTextResponse(
            "forbidden: not an allowed address, and no valid bearer token\n",
            status_code=403,
            headers={"cache-control": "no-store"},
        )
    body = await run_in_threadpool(exposition.scrape, request.app.state.metrics)  # the store is read
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"cache-control": "no-store"})
