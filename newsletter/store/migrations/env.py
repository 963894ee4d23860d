"""Alembic environment: runs on the connection the caller passes (see newsletter.store.db.upgrade)."""

from alembic import context

from newsletter.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `newsletter db upgrade`")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
