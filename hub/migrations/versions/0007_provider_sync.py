"""provider sync: backfill cursors and registered webhook subscriptions

Revision ID: 0007_provider_sync
Revises: 0006_console_indexes
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import hub.store.types

revision = "0007_provider_sync"
down_revision = "0006_console_indexes"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "backfill_runs",
        sa.Column("connector", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("window_start", hub.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("window_end", hub.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("cursor", JSON, nullable=True),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("counts", JSON, nullable=False),
        sa.Column("started_at", hub.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connector"),
    )
    op.create_table(
        "webhook_registrations",
        sa.Column("connector", sa.String(length=40), nullable=False),
        sa.Column("remote_id", sa.String(length=255), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("topics", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("checked_at", hub.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", hub.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("connector"),
    )


def downgrade() -> None:
    op.drop_table("webhook_registrations")
    op.drop_table("backfill_runs")
