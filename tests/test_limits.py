"""The pages' rate limits are counted in the store (issue #22, part 10): two apps on one store,
as two worker processes of `serve --workers 2` are, share every limit, on both databases; the
windows move with the app's clock; the hits whose window has passed are pruned."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

import anyio
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from newsletter.services import accounts, maintenance
from newsletter.store import limits
from newsletter.store.models import LimitHit
from newsletter.store.runtime import open_runtime
from newsletter.web.app import create_app
from newsletter.web.signin import TESTS_PER_WINDOW, Desk
from tests.support.clock import NOW
from tests.support.editors import ED, PASSWORD, sign_in
from tests.support.web import PARTNER, Forms, Site, in_process, serve

pytestmark = pytest.mark.both_databases

SIGN_UP = {"newsletters": "weekly", "language": "en"}


def hits(runtime) -> int:
    with runtime.factory() as session:
        return session.scalar(select(func.count()).select_from(LimitHit)) or 0


def test_a_limit_slides_and_starts_again_when_the_clock_goes_back(make_runtime) -> None:
    """At most `allowed` in any `window` seconds; a refused request is not counted; another key
    or another limit counts apart; a clock set back (NTP, a resumed machine) shuts nobody out
    for as long as it went back."""
    factory = make_runtime().factory

    def take(key: str, seconds: float, limit: str = "client") -> bool:
        return limits.take(factory, limit, key, 2, 60.0, NOW + timedelta(seconds=seconds))

    assert take("a", 0) and take("a", 30)
    assert not take("a", 59) and not take("a", 59.9)
    assert take("b", 59) and take("a", 59, limit="address")
    assert take("a", 60)  # the first has left the window; the refused ones were never counted
    assert not take("a", 89)
    assert take("a", -500) and take("a", -499) and not take("a", -498)


def test_requests_that_arrive_together_are_each_counted(make_runtime) -> None:
    """Twenty requests of one client at once, from as many threads (or workers): five pass."""
    factory = make_runtime().factory

    def take(_n: int) -> bool:
        return limits.take(factory, "client", "203.0.113.9", 5, 60.0, NOW)

    with ThreadPoolExecutor(20) as pool:
        assert sum(pool.map(take, range(20))) == 5


def test_requests_stamped_before_they_took_their_turn_are_each_counted(make_runtime) -> None:
    """Requests arriving together are stamped, then take turns at the store: one stamped a moment
    earlier may count after those stamped later, and must still see them (five pass, not all)."""
    factory = make_runtime().factory
    stamps = [NOW + timedelta(milliseconds=20 - n) for n in range(20)]  # the latest counts first
    assert sum(limits.take(factory, "client", "203.0.113.9", 5, 60.0, at) for at in stamps) == 5


def test_the_hits_whose_window_has_passed_are_pruned(make_runtime) -> None:
    runtime = make_runtime()
    for key, seconds in (("a", 0), ("b", 0), ("c", 50)):
        assert limits.take(runtime.factory, "client", key, 5, 60.0, NOW + timedelta(seconds=seconds))
    assert hits(runtime) == 3
    pruned = maintenance.prune(runtime, NOW + timedelta(seconds=60))
    assert pruned.limit_hits == 2 and hits(runtime) == 1
    # A page's count also prunes now and then (a store served without the scheduler).
    assert limits.take(runtime.factory, "client", "d", 5, 60.0, NOW + timedelta(seconds=200), prune_too=True)
    assert hits(runtime) == 1


@contextmanager
def second_worker(site: Site) -> Iterator[tuple[httpx.Client, FastAPI]]:
    """Another app on the same store and settings, as another worker process of `serve` is: its
    own engine, its own memory, the same clock."""
    assert site.app is not None
    runtime = open_runtime(site.app.state.web.runtime.settings)
    try:
        app = create_app(runtime, site.clock)
        with in_process(app, site.url) as client:
            yield client, app
    finally:
        runtime.close()


def test_two_workers_share_the_sign_up_and_link_limit(newsroom, tmp_path) -> None:
    readers = f'signup_origins = ["{PARTNER}"]\nclient_per_minute = 3\n'
    for site in serve(newsroom, tmp_path, readers):
        with site.client() as first, second_worker(site) as (second, _app):

            def sign_up(worker: httpx.Client, n: int) -> int:
                data = {**SIGN_UP, "email": f"r{n}@example.net"}
                return worker.post("/subscribe", data=data, headers={"origin": PARTNER}).status_code

            assert [sign_up(first, 1), sign_up(second, 2), sign_up(first, 3)] == [200, 200, 200]
            assert sign_up(second, 4) == 429 and sign_up(first, 5) == 429
            # asking for a settings link counts with the sign-ups
            form = Forms(second.get("/preferences").text).form("/preferences")
            assert second.post("/preferences", data={**form, "email": "r1@example.net"}).status_code == 429
            site.clock.advance(seconds=60)  # the app's clock moves the window
            assert sign_up(second, 6) == 200


def test_two_workers_share_the_sign_in_and_test_limits(make_runtime, tmp_path) -> None:
    runtime = make_runtime()
    accounts.add(runtime, ED, PASSWORD, NOW)
    limits_text = "[editors]\nattempts_per_account = 3\nattempts_per_client = 5\n"
    for site in serve(runtime, tmp_path, extra=limits_text):
        with site.client() as first, second_worker(site) as (second, app):
            wrong = "guess number one"
            assert [sign_in(w, password=wrong).status_code for w in (first, second, first)] == [400] * 3
            assert sign_in(second).status_code == 429  # the account's limit, counted by both
            assert sign_in(first, "other@example.com", wrong).status_code == 400
            assert sign_in(second, "other@example.com", wrong).status_code == 429  # the client's
            site.clock.advance(minutes=15)
            assert sign_in(second).status_code == 303
            assert site.app is not None
            allowed = anyio.run(sends_allowed, [site.app.state.desk, app.state.desk], TESTS_PER_WINDOW + 1)
            assert allowed == [True] * TESTS_PER_WINDOW + [False]


async def sends_allowed(desks: list[Desk], count: int) -> list[bool]:
    """`count` test sends asked for by one editor, from each desk in turn."""
    return [await desks[n % len(desks)].allows_test(ED) for n in range(count)]
