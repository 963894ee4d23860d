"""A send's writes are short: the pages' one-clicks queue behind them for the store's write lock."""

from __future__ import annotations

import pytest
from sqlalchemy import event, insert, select

from newsletter.store import ledger
from newsletter.store.db import reading, unit_of_work
from newsletter.store.ledger import Mark
from newsletter.store.models import Delivery
from newsletter.store.statuses import DeliveryStatus
from tests.support.readers import add_reader, delivery

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
