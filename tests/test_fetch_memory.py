"""The scheduled job's memory stays flat over refreshes: a big body is streamed within its limit
and, once parsed, nothing keeps it (feedparser's reference cycles are collected at once)."""

from __future__ import annotations

import tracemalloc

from newsletter.ingest.run import fetch_feeds
from tests.feedserver import FeedServer, Route

BODY = 1_500_000
MB = 2**20


def test_garbage_feeds_leave_nothing_behind_refresh_after_refresh(
    make_runtime, feed_server: FeedServer
) -> None:
    garbage = bytes(range(256)) * (BODY // 256)  # not XML: feedparser's loose parser reads it all
    feed_server.routes["/garbage-1/"] = Route(body=garbage)
    feed_server.routes["/garbage-2/"] = Route(body=garbage[::-1])
    feed_server.routes["/too-big/"] = Route(body=garbage + b"!" * 1_000)
    runtime = make_runtime(
        feeds=[{"url": feed_server.url(path)} for path in ("/garbage-1/", "/garbage-2/", "/too-big/")],
        fetch={"allow_private": True, "max_bytes": BODY},
    )
    tracemalloc.start()
    try:
        reports = fetch_feeds(runtime.settings, runtime.factory)  # the warm-up
        first = tracemalloc.get_traced_memory()[0]
        kept = []
        for _ in range(3):
            fetch_feeds(runtime.settings, runtime.factory)
            kept.append(tracemalloc.get_traced_memory()[0] - first)
    finally:
        tracemalloc.stop()
    assert [r.problem for r in reports][2] == f"larger than the {BODY}-byte limit"
    assert max(kept) < BODY / 4, f"{[round(k / MB, 1) for k in kept]} MB kept after each refresh"
