"""an index for the changes' own events, which the provider's webhook for the same fact looks up

Revision ID: 0012_change_events
Revises: 0011_change_batches
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

revision = "0012_change_events"
down_revision = "0011_change_batches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_change", "events", ["provider", "type", "time"], unique=False,
                    postgresql_where=sa.text("origin = 'change'"), sqlite_where=sa.text("origin = 'change'"))


def downgrade() -> None:
    op.drop_index("ix_events_change", table_name="events")
