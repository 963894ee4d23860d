"""breaking-news alerts: an edition of one article, unique per newsletter and article, and the
time a quiet-hours alert waits for

Revision ID: 0018
Revises: 0017

Columns and an index are added in place, the article's id without a foreign key: on SQLite a
key would need `editions` copied and the old table dropped, and dropping it deletes every
delivery, variant and publication its keys cascade to. (No article is ever deleted.)
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("editions", sa.Column("article_id", sa.Integer(), nullable=True))
    op.add_column("editions", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.create_index("uq_editions_newsletter_article", "editions", ["newsletter", "article_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_editions_newsletter_article", table_name="editions")
    op.drop_column("editions", "not_before")  # in place on SQLite 3.35+ too
    op.drop_column("editions", "article_id")
