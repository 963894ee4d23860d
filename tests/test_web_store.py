"""The readers' pages when the store is busy or down: a one-click waits for a sender's short
writes, answers 503 with Retry-After past the deadline (never hangs, never says 200 before
the change is committed), and every reader page answers 503, not 500, with the store down."""

from __future__ import annotations

import fcntl
import re
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, text
from sqlalchemy.engine import make_url

from newsletter.services.leaving import Leaving
from newsletter.store.availability import StoreBusy
from newsletter.store.db import make_engine, session_factory, unit_of_work
from newsletter.store.runtime import Runtime
from newsletter.subscribers.links import Links, token_of
from newsletter.web import app as web_app
from newsletter.web.app import create_app
from tests.conftest import free_port
from tests.support.readers import add_reader, gate
from tests.support.web import in_process

NOW = datetime(2026, 12, 7, 7, 30, tzinfo=UTC)  # a Monday, just after the weekly's slot
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
# The page's deadline in these tests: short, so a refused wait costs little.
WAIT = 0.3


@pytest.fixture
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web_app, "WRITE_WAIT", WAIT)


def client(runtime: Runtime, app: FastAPI | None = None) -> httpx.Client:
    """The pages in this process; a page's exception is raised in the test."""
    return in_process(
        app or create_app(runtime, lambda: NOW), "https://testserver", raise_app_exceptions=True
    )


def unsubscribe_path(runtime: Runtime, subscriber_id: int) -> str:
    return (
        f"/unsubscribe/{token_of(Links.from_settings(runtime.settings).unsubscribe(subscriber_id, 'weekly'))}"
    )


@contextmanager
def held_in_thread(runtime: Runtime) -> Iterator[threading.Event]:
    """A sender's unit of work in another thread of this process, held open until released."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with unit_of_work(runtime.factory) as session:
            session.execute(text("UPDATE subscribers SET name = name WHERE id = 0"))
            taken.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(30)
    try:
        yield release
    finally:
        release.set()
        holder.join()


@contextmanager
def held_by_another_process(runtime: Runtime) -> Iterator[None]:
    """The lock file a sender process holds while it writes (a lock of its own open file)."""
    database = make_url(runtime.settings.database_url).database
    with Path(f"{Path(database).resolve()}-writer.lock").open("ab") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
        fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def held_by_another_program(runtime: Runtime) -> Iterator[None]:
    """SQLite's own write lock, taken by a program that knows nothing of our lock file."""
    database = make_url(runtime.settings.database_url).database
    other = sqlite3.connect(database, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@contextmanager
def row_locked(runtime: Runtime, subscriber_id: int) -> Iterator[None]:
    """PostgreSQL: the reader's subscription row locked by another transaction."""
    with runtime.engine.connect() as other, other.begin():
        other.execute(
            text("SELECT 1 FROM subscriber_newsletters WHERE subscriber_id = :id FOR UPDATE"),
            {"id": subscriber_id},
        )
        yield


def holders(runtime: Runtime) -> list[str]:
    if runtime.engine.dialect.name == "postgresql":
        return ["row"]
    return ["thread", "process", "program"]


def holding(runtime: Runtime, how: str, subscriber_id: int):
    return {
        "thread": lambda: held_in_thread(runtime),
        "process": lambda: held_by_another_process(runtime),
        "program": lambda: held_by_another_program(runtime),
        "row": lambda: row_locked(runtime, subscriber_id),
    }[how]()


@pytest.mark.both_databases
@pytest.mark.parametrize("how", ["thread", "process", "program", "row"])
def test_a_one_click_answers_503_past_the_deadline_then_200_once_the_lock_is_free(
    make_runtime, short_wait, how: str
) -> None:
    runtime = make_runtime()
    if how not in holders(runtime):
        pytest.skip(f"{how}: not a lock of {runtime.engine.dialect.name}")
    reader = add_reader(runtime, "leaving@example.com")
    path = unsubscribe_path(runtime, reader)
    with client(runtime) as pages:
        with holding(runtime, how, reader):
            busy = pages.post(path, data=ONE_CLICK)
            assert busy.status_code == 503
            assert busy.headers["Retry-After"] == "5"  # busy, not down: soon
            assert "try again" in busy.text
            assert gate(runtime, reader).subscription == "active"  # nothing said, nothing done
        done = pages.post(path, data=ONE_CLICK)
    assert done.status_code == 200
    assert gate(runtime, reader).subscription == "unsubscribed"  # committed when the page said so


@pytest.mark.both_databases
def test_a_one_click_waits_for_a_short_write_rather_than_refusing(make_runtime, short_wait) -> None:
    """A sender's write that ends within the deadline is waited for: the one-click then goes."""
    runtime = make_runtime()
    reader = add_reader(runtime, "patient@example.com")
    path = unsubscribe_path(runtime, reader)
    with client(runtime) as pages, held_in_thread(runtime) as release:
        timer = threading.Timer(WAIT / 3, release.set)
        timer.start()
        answer = pages.post(path, data=ONE_CLICK)
        timer.join()
    assert answer.status_code == 200
    assert gate(runtime, reader).subscription == "unsubscribed"


def _closed_port_store(runtime: Runtime) -> Runtime:
    url = make_url("postgresql://postgres@127.0.0.1/newsletter").set(port=free_port())
    engine = make_engine(url.render_as_string(hide_password=False))
    return Runtime(runtime.settings, engine, session_factory(engine))


def _vanished_sqlite_file(runtime: Runtime) -> Runtime:
    """The database file replaced by a folder: nothing can open it (root reads any file)."""
    runtime.engine.dispose()
    database = Path(make_url(runtime.settings.database_url).database)
    shutil.move(database, database.with_suffix(".gone"))
    database.mkdir()
    return runtime


@pytest.mark.parametrize("down", [_closed_port_store, _vanished_sqlite_file], ids=["postgres", "sqlite"])
def test_every_reader_page_answers_503_with_the_store_down(make_runtime, down) -> None:
    runtime = make_runtime()
    reader = add_reader(runtime, "reader@example.com")
    links = Links.from_settings(runtime.settings)
    unsubscribe = unsubscribe_path(runtime, reader)
    preferences = f"/preferences/{token_of(links.preferences(reader))}"
    confirm_token = token_of(links.confirm(reader))
    runtime = down(runtime)
    app = create_app(runtime, lambda: NOW)
    with client(runtime, app) as pages:
        form = pages.get("/subscribe")
        assert form.status_code == 200  # the form itself needs no store
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        guard = app.state.web.guard
        answers = {
            "one-click": pages.post(unsubscribe, data=ONE_CLICK),
            "unsubscribe page": pages.get(unsubscribe),
            "preferences page": pages.get(preferences),
            "preferences form": pages.post(
                preferences,
                data={"csrf": guard.form_token(token_of(links.preferences(reader))), "newsletters": "weekly"},
                headers={"Origin": "null"},
            ),
            "sign-up": pages.post(
                "/subscribe",
                data={
                    "csrf": csrf.group(1),
                    "email": "new@example.com",
                    "newsletters": "weekly",
                    "language": "en",
                },
                headers={"Origin": "https://testserver"},
            ),
            "confirm page": pages.get(f"/confirm/{confirm_token}"),
            "confirm": pages.post(
                f"/confirm/{confirm_token}",
                data={"csrf": guard.form_token(confirm_token)},
                headers={"Origin": "null"},
            ),
            "archive": pages.get("/archive/"),
            "feed": pages.get("/feeds/weekly.xml"),
        }
    statuses = {
        page: (answer.status_code, answer.headers.get("Retry-After")) for page, answer in answers.items()
    }
    assert statuses == {page: (503, "60") for page in answers}
    assert all("try again" in answer.text for answer in answers.values())


def _one_clicks(runtime: Runtime, readers: list[int], wait: float) -> tuple[Leaving, list[object]]:
    """Each reader's one-click from a thread of its own, all at once, through one `Leaving`."""
    paged = replace(runtime, factory=session_factory(runtime.engine, write_wait=wait))
    leaving = Leaving(paged, wait)
    answers: list[object] = [None] * len(readers)

    def click(index: int, reader: int) -> None:
        try:
            answers[index] = leaving.leave(token_of(unsubscribe_path(runtime, reader)), "one-click", NOW)
        except Exception as exc:
            answers[index] = exc

    clicks = [threading.Thread(target=click, args=(i, r)) for i, r in enumerate(readers)]
    for thread in clicks:
        thread.start()
    return leaving, [clicks, answers]


@pytest.mark.parametrize("how", ["thread", "process"])
def test_one_clicks_that_arrive_together_are_written_together(make_runtime, how: str) -> None:
    """Twenty one-clicks while a sender writes: a commit or two for all of them once it is done,
    each answered once its own is committed."""
    runtime = make_runtime()
    if how not in holders(runtime):
        pytest.skip(f"{how}: not a lock of {runtime.engine.dialect.name}")
    readers = [add_reader(runtime, f"r{i}@example.com") for i in range(20)]
    commits: list[int] = []
    event.listen(runtime.engine, "commit", lambda _connection: commits.append(1))
    with holding(runtime, how, readers[0]):
        _leaving, (clicks, answers) = _one_clicks(runtime, readers, wait=30.0)
        assert not any(answers)  # nobody is answered while nothing can be written
    for thread in clicks:
        thread.join()
    assert all(getattr(answer, "newsletter", None) == "weekly" for answer in answers), answers
    assert all(gate(runtime, reader).subscription == "unsubscribed" for reader in readers)
    assert len(commits) <= 3


def test_one_clicks_past_the_deadline_are_withdrawn_not_written_later(make_runtime) -> None:
    runtime = make_runtime()
    if "process" not in holders(runtime):
        pytest.skip("a lock file is SQLite's")
    readers = [add_reader(runtime, f"late{i}@example.com") for i in range(5)]
    with held_by_another_process(runtime):
        _leaving, (clicks, answers) = _one_clicks(runtime, readers, wait=WAIT)
        for thread in clicks:
            thread.join()
    assert all(isinstance(answer, StoreBusy) for answer in answers), answers
    assert all(gate(runtime, reader).subscription == "active" for reader in readers)
