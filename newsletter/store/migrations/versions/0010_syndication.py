"""the public archive: publications, rendered documents, WebSub pushes; clicks by edition

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "publications",
        sa.Column("edition_id", sa.Integer(), nullable=False),
        sa.Column("newsletter", sa.String(length=64), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["edition_id"],
            ["editions.id"],
            name=op.f("fk_publications_edition_id_editions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("edition_id", name=op.f("pk_publications")),
        sa.UniqueConstraint("newsletter", "slug", name="uq_publications_newsletter_slug"),
    )
    op.create_table(
        "documents",
        sa.Column("path", sa.String(length=300), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gone", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_documents")),
    )
    op.create_table(
        "hub_pushes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hub", sa.String(length=500), nullable=False),
        sa.Column("topic", sa.String(length=500), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_pushes")),
        sa.UniqueConstraint("hub", "topic", name="uq_hub_pushes_hub_topic"),
    )
    with op.batch_alter_table("hub_pushes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hub_pushes_next_at"), ["next_at"], unique=False)
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.create_index("ix_clicks_edition_article", ["edition_id", "article_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.drop_index("ix_clicks_edition_article")
    with op.batch_alter_table("hub_pushes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hub_pushes_next_at"))
    op.drop_table("hub_pushes")
    op.drop_table("documents")
    op.drop_table("publications")
