"""a feed's last body hash; an edition's tallies kept after pruning

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("editions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tallies", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("editions", schema=None) as batch_op:
        batch_op.drop_column("tallies")
    with op.batch_alter_table("feeds", schema=None) as batch_op:
        batch_op.drop_column("content_hash")
