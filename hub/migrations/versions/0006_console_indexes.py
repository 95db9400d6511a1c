"""indexes the console's pages read by: events by time and by delivery, deliveries by connector

Revision ID: 0006_console_indexes
Revises: 0005_action_suppressions
Create Date: 2026-11-26
"""

from alembic import op

revision = "0006_console_indexes"
down_revision = "0005_action_suppressions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_time", "events", ["time", "id"])
    op.create_index("ix_events_delivery", "events", ["delivery_id"])
    op.create_index("ix_deliveries_connector", "deliveries", ["connector", "id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_connector", table_name="deliveries")
    op.drop_index("ix_events_delivery", table_name="events")
    op.drop_index("ix_events_time", table_name="events")
