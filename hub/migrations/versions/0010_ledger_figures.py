"""per-row figures of the MRR ledger for the cohort KPIs (filled in by hub/kpis/ledger.py)

Revision ID: 0010_ledger_figures
Revises: 0009_subscriber_search
Create Date: 2026-11-26

NULL until the first KPI read after this migration derives them for every subscriber.
"""

import sqlalchemy as sa
from alembic import op

import hub.store.types

revision = "0010_ledger_figures"
down_revision = "0009_subscriber_search"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("mrr_movements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opening_day_minor", BIG, nullable=True))
        batch_op.add_column(sa.Column("opening_week_minor", BIG, nullable=True))
        batch_op.add_column(sa.Column("opening_month_minor", BIG, nullable=True))
        batch_op.add_column(sa.Column("paying_change", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("first_payment", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("first_paid_at", hub.store.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_mrr_movements_underived", ["subscriber_id"], unique=False,
                              postgresql_where=sa.text("paying_change IS NULL"),
                              sqlite_where=sa.text("paying_change IS NULL"))


def downgrade() -> None:
    with op.batch_alter_table("mrr_movements", schema=None) as batch_op:
        batch_op.drop_index("ix_mrr_movements_underived")
        for name in ("first_paid_at", "first_payment", "paying_change", "opening_month_minor",
                     "opening_week_minor", "opening_day_minor"):
            batch_op.drop_column(name)
