"""room in the deliveries' pages for their updates (PostgreSQL)

Revision ID: 0016
Revises: 0015

A delivery is written three times while it is sent (claim, hand-over, outcome). With its page
full, each write put the new version on another page and a new entry in every index; with a
fifth of each page kept free, the hand-over (no indexed column changes) stays on its page as a
heap-only update: less of the store's CPU, and less WAL for the hand-over's commit to wait for.
New pages only: the rows already there stay where they are (no rewrite, no lock held long).
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries RESET (fillfactor)")
