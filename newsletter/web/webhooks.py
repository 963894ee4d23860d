"""`POST /webhooks/sendgrid`: SendGrid's Event Webhook. The POST is checked and stored, answered
at once, and its events read right after, outside the request (SendGrid retries a POST that
is not answered in time, for a day)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from newsletter.sending.events import SIGNATURE_HEADER, TIMESTAMP_HEADER, EventRefused, check_headers
from newsletter.services import events
from newsletter.store.runtime import Runtime
from newsletter.web.context import log, web
from newsletter.web.security import BodyTooLarge

router = APIRouter()
# Event POSTs whose bodies are read at the same time, by one app. A body that comes too slowly
# is cut off (`BodyLimit`), freeing its slot for the next.
READING_SLOTS = 4


@router.post("/webhooks/sendgrid")
async def sendgrid_events(request: Request) -> Response:
    context = web(request)
    if not events.enabled(context.runtime):
        return JSONResponse({"error": "the event webhook is not configured"}, status_code=404)
    now = context.clock()
    signature, timestamp = request.headers.get(SIGNATURE_HEADER), request.headers.get(TIMESTAMP_HEADER)
    tolerance = timedelta(minutes=context.runtime.settings.sending.webhook_tolerance_minutes)
    try:
        check_headers(signature, timestamp, now, tolerance)
    except EventRefused as exc:
        return JSONResponse({"error": str(exc)}, status_code=403)
    # A few large bodies in memory at once, not one per stranger, and a wait for a place no
    # longer than a body's own first seconds: past it, 503, and SendGrid posts it again later
    # (strangers queued, reconnecting as they are cut, could otherwise hold it back for good).
    slots = _reading(request)
    try:
        await asyncio.wait_for(slots.acquire(), context.runtime.settings.web.body_seconds)
    except TimeoutError:
        return JSONResponse(
            {"error": "busy: post again later"}, status_code=503, headers={"retry-after": "5"}
        )
    try:
        body = await request.body()
    except BodyTooLarge:
        return JSONResponse({"error": "too large"}, status_code=413)
    finally:
        slots.release()
    try:
        await run_in_threadpool(
            events.receive,
            context.runtime,
            body,
            signature,
            timestamp,
            now,
        )
    except EventRefused as exc:
        return JSONResponse({"error": str(exc)}, status_code=403)
    return JSONResponse({"status": "stored"}, background=BackgroundTask(_read, context.runtime, now))


def _reading(request: Request) -> asyncio.Semaphore:
    """The app's reading slots, made on its event loop at its first event POST."""
    state = request.app.state
    if not hasattr(state, "webhook_reading"):
        state.webhook_reading = asyncio.Semaphore(READING_SLOTS)
    slots: asyncio.Semaphore = state.webhook_reading
    return slots


def _read(runtime: Runtime, now: datetime) -> None:
    """After the answer: read what was stored (the scheduled job reads anything left)."""
    try:
        report = events.process(runtime, now)
    except Exception:  # the POST is stored: the next reading takes it up again
        log.exception("reading the provider's events failed")
        return
    if report.batches:
        log.info("provider events: %s", dict(report.outcomes))
