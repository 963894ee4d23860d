"""the provider's word on a delivery: the event that settled it, and when

Revision ID: 0012
Revises: 0010

Deliveries left unsettled (sending, uncertain, or put back to be sent again) that an event
already told of (kept in provider_events, and acted on by nobody before) get that word now. Those
put back are settled here (sent, or failed for a drop), as nobody holds them; the next send's
recovery settles the others (a sender may still hold them) rather than sending them again.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None

# The word kept for a delivery: a drop first (the message never went), else the earliest event.
_FIRST = """
    SELECT {column} FROM provider_events AS told
    WHERE told.delivery_id = deliveries.id AND told.edition_id = deliveries.edition_id
      AND told.outcome NOT IN ('unmatched', 'repeated')
    ORDER BY CASE WHEN told.event = 'dropped' THEN 0 ELSE 1 END,
             COALESCE(told.happened_at, told.received_at), told.id
    LIMIT 1
"""


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_event", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("provider_event_at", sa.DateTime(timezone=True), nullable=True))
    event = _FIRST.format(column="told.event")
    at = _FIRST.format(column="COALESCE(told.happened_at, told.received_at)")
    op.execute(
        f"UPDATE deliveries SET provider_event = ({event}), provider_event_at = ({at}) "
        "WHERE (status IN ('sending', 'uncertain') OR (status = 'pending' AND handed_at IS NOT NULL "
        f"AND detail LIKE 'sent again%')) AND EXISTS ({_FIRST.format(column='1')})"
    )
    op.execute(
        "UPDATE deliveries SET status = CASE WHEN provider_event = 'dropped' THEN 'failed' ELSE 'sent' END, "
        "detail = 'settled by the provider''s ' || provider_event || ' event', "
        "sent_at = CASE WHEN provider_event = 'dropped' THEN sent_at "
        "ELSE COALESCE(provider_event_at, handed_at) END, "
        "retry_at = NULL WHERE status = 'pending' AND provider_event IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("provider_event_at")
        batch_op.drop_column("provider_event")
