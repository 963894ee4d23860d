"""What the store holds, read as the database has it rather than as the models say: to show that
something (a forgotten reader, a password) is nowhere in it; and a store moved between
migrations."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, MetaData, String, func, select

from newsletter.store.db import alembic_config
from newsletter.store.runtime import Runtime


def readable(runtime: Runtime, *needles: str) -> list[str]:
    """Every `table.column` of the store (as the database has it, not as the models say) whose
    text holds one of the needles, in any case."""
    tables = MetaData()
    tables.reflect(runtime.engine)
    found = []
    with runtime.engine.connect() as connection:
        for table in tables.sorted_tables:
            for column in table.columns:
                if not isinstance(column.type, String):  # Text and VARCHAR alike
                    continue
                for needle in needles:
                    query = select(func.count()).where(func.lower(column).contains(needle.lower()))
                    if connection.scalar(query.select_from(table)):
                        found.append(f"{table.name}.{column.name} holds {needle!r}")
    return found


def migrate(engine: Engine, direction: str, revision: str) -> None:
    """Alembic's `upgrade` or `downgrade` to `revision` on this store, as a test sets it up."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)
