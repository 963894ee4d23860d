"""one click per reader, edition and article; the pages' rate limits kept in the store

Revision ID: 0013
Revises: 0012

Clicks counted twice by requests that arrived together are reduced to the first before the
constraint that keeps them one is added (its index replaces the edition and article one).
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM clicks WHERE EXISTS (SELECT 1 FROM clicks AS kept "
        "WHERE kept.edition_id = clicks.edition_id AND kept.article_id = clicks.article_id "
        "AND kept.subscriber_id = clicks.subscriber_id AND kept.id < clicks.id)"
    )
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.drop_index("ix_clicks_edition_article")
        batch_op.create_unique_constraint(
            "uq_clicks_edition_article_reader", ["edition_id", "article_id", "subscriber_id"]
        )
    op.create_table(
        "limit_hits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_limit_hits")),
    )
    with op.batch_alter_table("limit_hits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_limit_hits_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index("ix_limit_hits_key_expires_at", ["key", "expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("limit_hits")
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.drop_constraint("uq_clicks_edition_article_reader", type_="unique")
        batch_op.create_index("ix_clicks_edition_article", ["edition_id", "article_id"], unique=False)
