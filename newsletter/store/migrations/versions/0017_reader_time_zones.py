"""a reader's time zone, and the moment each delivery may go (local-time waves)

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("due_at")
    # Not a batch: SQLite would copy the readers to a new table and drop the old one, whose
    # foreign keys would take every reader's deliveries, consents and choices with it.
    op.execute("ALTER TABLE subscribers DROP COLUMN timezone")
