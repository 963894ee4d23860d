"""The schema: migrations agree with the models, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from newsletter.store.db import HEAD_REVISION, alembic_config, make_engine, revisions, unit_of_work, upgrade
from newsletter.store.models import Article, Base, Delivery, Edition, Subscriber
from tests.support.clock import NOW
from tests.support.store import migrate

pytestmark = pytest.mark.both_databases


def test_migrations_match_the_models(database_url) -> None:
    engine = make_engine(database_url)
    upgrade(engine)  # a second upgrade is a no-op
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_a_store_at_the_newest_migration_says_so_without_alembic(database_url) -> None:
    """`upgrade` skips alembic on a store at HEAD_REVISION: it must be alembic's head."""
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        assert revisions(connection) == [HEAD_REVISION]
    engine.dispose()


def test_times_come_back_as_aware_utc(make_runtime) -> None:
    runtime = make_runtime()
    brussels = timezone(timedelta(hours=1))
    with unit_of_work(runtime.factory) as session:
        session.add(
            Article(
                key="k",
                language="en",
                url="https://x/",
                title="t",
                published_at=datetime(2026, 11, 2, 7, 0, tzinfo=brussels),
            )
        )
    with runtime.factory() as session:
        article = session.scalars(select(Article)).one()
    assert article.published_at == datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    assert article.published_at.tzinfo is not None
    with pytest.raises(Exception, match="naive"), unit_of_work(runtime.factory) as session:
        session.add(
            Article(
                key="n",
                language="en",
                url="https://x/",
                title="t",
                published_at=datetime(2026, 11, 2),
            )
        )


def test_one_delivery_per_edition_and_subscriber(make_runtime) -> None:
    runtime = make_runtime()
    now = NOW
    with unit_of_work(runtime.factory) as session:
        subscriber = Subscriber(email="a@example.com", status="active")
        edition = Edition(newsletter="weekly", slot="2026-W48", window_start=now, window_end=now)
        session.add_all([subscriber, edition])
        session.flush()
        session.add(Delivery(edition_id=edition.id, subscriber_id=subscriber.id))
        ids = edition.id, subscriber.id
    with pytest.raises(IntegrityError), unit_of_work(runtime.factory) as session:
        session.add(Delivery(edition_id=ids[0], subscriber_id=ids[1]))
    with pytest.raises(IntegrityError), unit_of_work(runtime.factory) as session:
        session.add(Edition(newsletter="weekly", slot="2026-W48", window_start=now, window_end=now))


def test_deliveries_keep_room_for_their_updates_on_postgresql(database_url) -> None:
    """Migration 0016 keeps a fifth of each deliveries page free on PostgreSQL (SQLite has no
    such setting: it passes both ways there), and its downgrade takes it back."""
    engine = make_engine(database_url)
    upgrade(engine)

    def options() -> list[str] | None:
        if engine.dialect.name != "postgresql":
            return None
        with engine.connect() as connection:
            return connection.scalar(text("SELECT reloptions FROM pg_class WHERE relname = 'deliveries'"))

    postgresql = engine.dialect.name == "postgresql"
    assert options() == (["fillfactor=80"] if postgresql else None)
    migrate(engine, "downgrade", "0015")
    assert options() is None
    migrate(engine, "upgrade", "0016")
    assert options() == (["fillfactor=80"] if postgresql else None)
    upgrade(engine)  # and on to the newest
    with engine.connect() as connection:
        assert revisions(connection) == [HEAD_REVISION]
    engine.dispose()
