"""The editors' desk of the next edition: the sample newsroom moved into the next weekly
edition's window with one editor, its pages, and the edition prepared as the slot would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from newsletter.services import accounts, editions, sending
from newsletter.store.db import unit_of_work
from newsletter.store.models import Article
from newsletter.store.runtime import Runtime
from tests.support.clock import NOW
from tests.support.editors import ED, PASSWORD
from tests.support.web import Site, serve


def in_the_next_window(runtime: Runtime) -> None:
    """The sample's articles moved into the next weekly edition's window (the pages keep the
    test's clock), and one editor."""
    now = NOW
    window = editions.next_edition(runtime, "weekly", now).edition
    with unit_of_work(runtime.factory) as session:
        newest = session.scalar(select(func.max(Article.published_at)))
        assert newest is not None
        end = min(now, window.window_end) - timedelta(hours=1)
        for article in session.scalars(select(Article)):
            article.published_at += end - newest
    accounts.add(runtime, ED, PASSWORD, now)


def desk_of(runtime: Runtime, folder: Path, listening: bool = False) -> Iterator[Site]:
    """The runtime's newsroom in the next window, one editor, and the pages (`listening`: over a
    loopback socket too, for a browser)."""
    in_the_next_window(runtime)
    yield from serve(runtime, folder, listening=listening)


def prepare(site: Site) -> int:
    """The next weekly edition prepared now, as its slot would; its id."""
    edition_id, _warnings = sending.prepare_next(
        site.runtime, "weekly", site.clock(), ahead_ok=True, force=True
    )
    return edition_id


@pytest.fixture
def served_desk(newsroom: Runtime, tmp_path: Path) -> Iterator[Site]:
    """The desk over a loopback socket, for a browser: `from tests.support.upcoming import
    served_desk as desk`."""
    yield from desk_of(newsroom, tmp_path, listening=True)
