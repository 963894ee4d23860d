"""The one-click's lean path (`newsletter.web.unsubscribe.OneClick`): what the route answered, it
answers, byte for byte; a 200 only once the change is committed, durably; many readers at once
all recorded, once each; and any body it does not read itself goes on to the route unchanged."""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError

from newsletter.services import leaving
from newsletter.services.leaving import Left
from newsletter.store.db import unit_of_work
from newsletter.store.models import Consent, Subscriber, SubscriberNewsletter
from newsletter.store.runtime import Runtime
from newsletter.store.statuses import SubscriptionStatus
from newsletter.subscribers.links import Links, token_of
from newsletter.web import unsubscribe
from newsletter.web.app import create_app
from newsletter.web.security import MAX_BODY
from tests.support.readers import add_reader, gate
from tests.support.waiting import until
from tests.support.web import CLIENT, in_process

pytestmark = pytest.mark.both_databases

NOW = datetime(2026, 12, 7, 7, 30, tzinfo=UTC)  # a Monday, just after the weekly's slot
FORM = {"content-type": "application/x-www-form-urlencoded"}
ONE_CLICK = b"List-Unsubscribe=One-Click"


def pages(runtime: Runtime) -> httpx.Client:
    return in_process(create_app(runtime, lambda: NOW), "https://testserver")


def token(runtime: Runtime, reader: int, newsletter: str = "weekly") -> str:
    return token_of(Links.from_settings(runtime.settings).unsubscribe(reader, newsletter))


def consents(runtime: Runtime, reader: int) -> list[str]:
    with runtime.factory() as session:
        return list(
            session.scalars(
                select(Consent.source).where(Consent.subscriber_id == reader, Consent.action == "unsubscribe")
            )
        )


def lean_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The route's form reader fails the test: only the lean path answers."""

    async def unread(*_args: object) -> None:
        raise AssertionError("the route read a one-click the lean path should have")

    monkeypatch.setattr(unsubscribe, "read_form", unread)


def test_the_page_after_a_one_click_is_the_routes_page(make_runtime, monkeypatch) -> None:
    """Rendered once per language and newsletter, then filled: the same bytes as a full render,
    an address HTML must escape included, in the language the form asks for."""
    lean_only(monkeypatch)
    runtime = make_runtime(newsletters={"weekly": {}, "daily": {}})
    reader = add_reader(runtime, "o'brien&co@example.com", ("weekly", "daily"), language="de")
    app = create_app(runtime, lambda: NOW)
    with in_process(app, "https://testserver") as client:
        for newsletter, body, language in (
            ("weekly", ONE_CLICK, "de"),
            ("daily", ONE_CLICK + b"&lang=en", "en"),
        ):
            found = token(runtime, reader, newsletter)
            answer = client.post(f"/unsubscribe/{found}", content=body, headers=FORM)
            assert answer.status_code == 200
            context = app.state.web
            left = Left(newsletter, newsletter, "o'brien&co@example.com", "de")
            expected = context.pages.html(
                "unsubscribed.html",
                language,
                left=left,
                action=f"/unsubscribe/{found}",
                csrf=context.guard.form_token(found),
            )
            assert answer.text == expected
            assert "o&#39;brien&amp;co@example.com" in answer.text
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["referrer-policy"] == "no-referrer"
            assert "content-security-policy" in answer.headers and "set-cookie" not in answer.headers
    assert gate(runtime, reader, "weekly").subscription == gate(runtime, reader, "daily").subscription
    assert gate(runtime, reader, "daily").subscription == SubscriptionStatus.UNSUBSCRIBED


def test_what_the_lean_path_refuses_changes_nothing(make_runtime) -> None:
    runtime = make_runtime()
    reader = add_reader(runtime, "refused@example.com")
    good = token(runtime, reader)
    forgotten = add_reader(runtime, "forgotten@example.com")
    with unit_of_work(runtime.factory) as session:
        session.get_one(Subscriber, forgotten).email = "sha256:" + "0" * 64
    with pages(runtime) as client:
        no_one_click = client.post(f"/unsubscribe/{good}", content=b"List-Unsubscribe=Yes", headers=FORM)
        assert no_one_click.status_code == 400 and "List-Unsubscribe=One-Click" in no_one_click.text
        forged = client.post(f"/unsubscribe/{good[:-3]}AAA", content=ONE_CLICK, headers=FORM)
        assert forged.status_code == 400 and "not valid" in forged.text
        gone = client.post(f"/unsubscribe/{token(runtime, forgotten)}", content=ONE_CLICK, headers=FORM)
        assert gone.status_code == 400 and "not valid" in gone.text
        assert forged.headers["cache-control"] == "no-store"
    assert gate(runtime, reader).subscription == SubscriptionStatus.ACTIVE and consents(runtime, reader) == []


def test_bodies_the_lean_path_does_not_read_go_to_the_route(make_runtime) -> None:
    """A control character, bytes that are not UTF-8, a body past the limit (declared or
    chunked), or another encoding: each answered as the route answers it."""
    runtime = make_runtime()
    reader = add_reader(runtime, "route@example.com")
    path = f"/unsubscribe/{token(runtime, reader)}"

    def chunks() -> object:
        for _ in range(MAX_BODY // 1024 + 2):
            yield b"x=" + b"y" * 1022

    with pages(runtime) as client:
        control = client.post(path, content=ONE_CLICK + b"&lang=%00", headers=FORM)
        assert control.status_code == 409 and "control character" in control.text
        latin = client.post(path, content=ONE_CLICK + b"&lang=%FF", headers=FORM)
        assert latin.status_code == 400
        large = client.post(path, content=ONE_CLICK + b"&x=" + b"y" * MAX_BODY, headers=FORM)
        assert large.status_code == 413
        chunked = client.post(path, content=chunks(), headers=FORM)  # type: ignore[arg-type]
        assert chunked.status_code == 413
        assert gate(runtime, reader).subscription == SubscriptionStatus.ACTIVE
        # Plain fields, then one the lean path does not read (a `;`): the route ends it, from the page.
        routed = client.post(path, content=ONE_CLICK + b"&from=page&a;b=c", headers=FORM)
        assert routed.status_code == 200
    assert gate(runtime, reader).subscription == SubscriptionStatus.UNSUBSCRIBED
    assert consents(runtime, reader) == ["page"]


def test_a_commit_that_fails_answers_503_and_records_nothing(make_runtime, caplog) -> None:
    """The answer waits for the commit: a store that cannot commit gets no 200 (the mail client
    tries again), and no token reaches the log."""
    runtime = make_runtime()
    reader = add_reader(runtime, "nocommit@example.com")
    found = token(runtime, reader)

    def refuse(_connection: object) -> None:
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    app = create_app(runtime, lambda: NOW)
    event.listen(runtime.engine, "commit", refuse)
    try:
        with caplog.at_level(logging.INFO), in_process(app, "https://testserver") as client:
            answer = client.post(f"/unsubscribe/{found}", content=ONE_CLICK, headers=FORM)
    finally:
        event.remove(runtime.engine, "commit", refuse)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "60"
    assert gate(runtime, reader).subscription == SubscriptionStatus.ACTIVE and consents(runtime, reader) == []
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("newsletter")]
    assert ours and not any(found.split(".")[1] in line for line in ours)


def test_one_clicks_from_many_readers_at_once_are_each_recorded_once(make_runtime, monkeypatch) -> None:
    """Sixty readers' one-clicks at once, and each posted twice: every one answered 200 once its
    group was committed, in far fewer transactions than requests, with one consent each."""
    lean_only(monkeypatch)
    runtime = make_runtime()
    readers = [add_reader(runtime, f"many{i}@example.com") for i in range(60)]
    commits: list[int] = []
    event.listen(runtime.engine, "commit", lambda _connection: commits.append(1))
    app = create_app(runtime, lambda: NOW)

    async def clicks() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=CLIENT)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            answers = await asyncio.gather(
                *(
                    client.post(f"/unsubscribe/{token(runtime, reader)}", content=ONE_CLICK, headers=FORM)
                    for reader in readers * 2
                )
            )
        return [answer.status_code for answer in answers]

    assert asyncio.run(clicks()) == [200] * 120
    assert len(commits) < 60
    with runtime.factory() as session:
        left = session.scalar(
            select(func.count())
            .select_from(SubscriberNewsletter)
            .where(
                SubscriberNewsletter.subscriber_id.in_(readers),
                SubscriberNewsletter.status == SubscriptionStatus.UNSUBSCRIBED,
            )
        )
        recorded = session.execute(
            select(Consent.subscriber_id, func.count())
            .where(Consent.subscriber_id.in_(readers), Consent.action == "unsubscribe")
            .group_by(Consent.subscriber_id)
        ).all()
    assert left == 60 and sorted(recorded) == [(reader, 1) for reader in readers]


def test_a_one_click_is_committed_durably(make_runtime) -> None:
    """SQLite syncs its log for the one-click's commit (the store's default, NORMAL, does not), and
    sets its default back for the connection's next user; PostgreSQL waits for its WAL whatever
    the session says (the ledger turns that off for its own writes)."""
    runtime = make_runtime()
    reader = add_reader(runtime, "durable@example.com")
    statements: list[str] = []
    event.listen(runtime.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with pages(runtime) as client:
        answer = client.post(f"/unsubscribe/{token(runtime, reader)}", content=ONE_CLICK, headers=FORM)
    assert answer.status_code == 200
    written = next(i for i, s in enumerate(statements) if s.startswith("UPDATE subscriber_newsletters"))
    if runtime.engine.dialect.name == "sqlite":
        durable = statements.index("PRAGMA synchronous = FULL")
        assert durable < statements.index("BEGIN IMMEDIATE", durable) < written
        with unit_of_work(runtime.factory) as session:
            assert session.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL again
    else:
        assert "SET LOCAL synchronous_commit = on" in statements[:written]


def test_the_writer_thread_ends_once_no_one_click_comes(make_runtime, monkeypatch) -> None:
    """One thread per process writes while one-clicks keep coming, then ends: an app that is
    done with them (a test's, a worker's after a burst) keeps no thread, and the next one-click
    starts it again."""
    monkeypatch.setattr(leaving, "LINGER_SECONDS", 0.05)
    runtime = make_runtime()
    readers = [add_reader(runtime, f"linger{i}@example.com") for i in range(2)]

    def writers() -> int:
        return sum(thread.name == "newsletter-leaving" for thread in threading.enumerate())

    with pages(runtime) as client:
        for reader in readers:
            answer = client.post(f"/unsubscribe/{token(runtime, reader)}", content=ONE_CLICK, headers=FORM)
            assert answer.status_code == 200
            until(lambda: writers() == 0, 10)
    assert all(gate(runtime, reader).subscription == SubscriptionStatus.UNSUBSCRIBED for reader in readers)
