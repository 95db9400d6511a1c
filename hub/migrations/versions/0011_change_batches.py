"""subscription-change batches posted to the API, and their rows

Revision ID: 0011_change_batches
Revises: 0010_ledger_figures
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import hub.store.types

revision = "0011_change_batches"
down_revision = "0010_ledger_figures"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "change_batches",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("created_at", hub.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", hub.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "change_batch_rows",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("batch_id", BIGID, nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("subscription", sa.String(length=255), nullable=False),
        sa.Column("request", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("change_id", BIGID, nullable=True),
        sa.Column("new", sa.Boolean(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["change_batches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("batch_id", "line", name="uq_change_batch_rows_line"),
    )


def downgrade() -> None:
    op.drop_table("change_batch_rows")
    op.drop_table("change_batches")
