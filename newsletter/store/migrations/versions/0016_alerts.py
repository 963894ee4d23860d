"""breaking-news alerts: an edition of one article, unique per newsletter and article, and the
time a quiet-hours alert waits for

Revision ID: 0016
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("editions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("article_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_editions_article_id_articles"),
            "articles",
            ["article_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_unique_constraint("uq_editions_newsletter_article", ["newsletter", "article_id"])


def downgrade() -> None:
    with op.batch_alter_table("editions", schema=None) as batch_op:
        batch_op.drop_constraint("uq_editions_newsletter_article", type_="unique")
        batch_op.drop_constraint(batch_op.f("fk_editions_article_id_articles"), type_="foreignkey")
        batch_op.drop_column("not_before")
        batch_op.drop_column("article_id")
