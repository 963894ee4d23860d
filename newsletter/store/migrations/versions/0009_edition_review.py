"""an editor's subject and preheader for one edition, the order of pinned articles, the
review mail, and the last checks' results

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("editions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("overrides", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("review_mailed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("checks", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("edition_picks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("edition_picks", schema=None) as batch_op:
        batch_op.drop_column("position")
    with op.batch_alter_table("editions", schema=None) as batch_op:
        for column in ("checked_at", "checks", "review_mailed_at", "overrides"):
            batch_op.drop_column(column)
