"""A send's writes are short: the pages' one-clicks queue behind them for the store's write lock."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, insert, select, text, update

from newsletter.services import sending
from newsletter.store import ledger
from newsletter.store.db import reading, unit_of_work
from newsletter.store.ledger import Mark
from newsletter.store.models import Delivery, Subscriber
from newsletter.store.statuses import DeliveryStatus
from tests.conftest import WEEKLY_NOV_23
from tests.support.readers import add_reader, delivery
from tests.support.sending import add_readers

pytestmark = pytest.mark.both_databases


def test_an_smtp_batchs_marks_are_one_statement_not_one_each(make_runtime) -> None:
    runtime = make_runtime()
    first = delivery(runtime, add_reader(runtime, "reader0@example.com"))
    readers = [add_reader(runtime, f"reader{i}@example.com") for i in range(1, 200)]
    with unit_of_work(runtime.factory) as session:
        session.execute(
            insert(Delivery),
            [{"edition_id": first.edition_id, "subscriber_id": r, "status": "sending"} for r in readers],
        )
        ids = list(session.scalars(select(Delivery.id).where(Delivery.edition_id == first.edition_id)))
    marks = [Mark(i, DeliveryStatus.SENT, f"<{i}.{n}@example.com>") for n, i in enumerate(ids[:-2])]
    marks += [Mark(ids[-2], DeliveryStatus.FAILED, None, "550 no"), Mark(ids[-1], DeliveryStatus.PENDING)]
    updates: list[str] = []

    def seen(_conn, _cursor, statement: str, *_rest: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", seen)
    with unit_of_work(runtime.factory) as session:
        ledger.record(session, marks)
    event.remove(runtime.engine, "before_cursor_execute", seen)
    assert len(updates) == 3  # sent, failed, back to pending: a statement each, whatever the count
    with reading(runtime.factory) as session:
        written = dict(session.execute(select(Delivery.id, Delivery.provider_message_id)).all())
        statuses = dict(session.execute(select(Delivery.id, Delivery.status)).all())
    assert [written[m.delivery_id] for m in marks[:-2]] == [m.message_id for m in marks[:-2]]
    assert statuses[ids[-2]] == DeliveryStatus.FAILED and statuses[ids[-1]] == DeliveryStatus.PENDING


def test_a_batch_of_thousands_is_a_few_parameters(make_runtime) -> None:
    """Claimed, checked and recorded, a batch's ids go to the store as one value (an array on
    PostgreSQL, a JSON array on SQLite): as thousands of parameters they cost a sender more CPU
    than the statements' work."""
    runtime = make_runtime()
    first = delivery(runtime, add_reader(runtime, "reader0@example.com"), DeliveryStatus.PENDING)
    readers = [add_reader(runtime, f"reader{i}@example.com") for i in range(1, 300)]
    with unit_of_work(runtime.factory) as session:
        session.execute(
            insert(Delivery),
            [
                {"edition_id": first.edition_id, "subscriber_id": r, "status": "pending", "attempts": 0}
                for r in readers
            ],
        )
    bound: list[int] = []

    def seen(_conn, _cursor, _statement: str, parameters: object, *_rest: object) -> None:
        bound.append(len(parameters) if isinstance(parameters, dict | list | tuple) else 0)

    event.listen(runtime.engine, "before_cursor_execute", seen)
    with unit_of_work(runtime.factory) as session:
        ids = ledger.claim(session, first.edition_id, "me#1", 1000)
    with unit_of_work(runtime.factory) as session:
        assert ledger.held(session, ids, "me#1") == set(ids)
        handed, _left = ledger.hand(session, ids, "me#1", "weekly")
        ledger.record(session, [Mark(i, DeliveryStatus.SENT, "<one@example.com>") for i in handed])
    event.remove(runtime.engine, "before_cursor_execute", seen)
    assert len(ids) == len(handed) == 300
    with reading(runtime.factory) as session:
        sent = session.scalars(select(Delivery.status).where(Delivery.edition_id == first.edition_id))
        assert set(sent) == {DeliveryStatus.SENT}
    assert max(bound) < 10


def test_preparing_leaves_postgresql_statistics_that_count_the_edition(newsroom) -> None:
    """Once an edition is prepared, PostgreSQL plans the send on statistics that count its
    deliveries and readers: on those of the tables before (a list just imported), the gate
    read every reader for each request of 1,000."""
    if newsroom.engine.dialect.name != "postgresql":
        pytest.skip("statistics for PostgreSQL's planner")
    add_readers(newsroom, 40)
    sending.prepare_next(newsroom, "weekly", WEEKLY_NOV_23, force=True)
    with reading(newsroom.factory) as session:
        counted = dict(
            session.execute(
                text("SELECT relname, reltuples FROM pg_class WHERE relname IN ('deliveries', 'subscribers')")
            ).all()
        )
        deliveries = session.scalar(select(func.count()).select_from(Delivery))
        readers = session.scalar(select(func.count()).select_from(Subscriber))
    assert (counted["deliveries"], counted["subscribers"]) == (deliveries, readers)


def test_an_editions_deliveries_are_written_in_the_order_senders_claim_them(newsroom) -> None:
    """Each digest's readers get consecutive rows (by reader within it): a sender claims them
    in that order, so a batch's rows share pages rather than each having one of its own."""
    add_readers(newsroom, 30)
    with unit_of_work(newsroom.factory) as session:  # every other reader German: digests interleaved
        session.execute(update(Subscriber).where(Subscriber.id % 2 == 0).values(language="de"))
    sending.prepare_next(newsroom, "weekly", WEEKLY_NOV_23, force=True)
    with reading(newsroom.factory) as session:
        rows = session.execute(
            select(Delivery.variant_id, Delivery.subscriber_id).order_by(Delivery.id)
        ).all()
    assert len({variant for variant, _reader in rows}) >= 2
    assert rows == sorted(rows)
