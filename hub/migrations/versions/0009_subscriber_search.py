"""indexes for the console's subscriber search: the start of an e-mail, a first or last name (any
case) and any provider's id

Revision ID: 0009_subscriber_search
Revises: 0008_dry_run_status
Create Date: 2026-11-26

On PostgreSQL a ``LIKE 'prefix%'`` reads a btree index only with the pattern operator classes
(unless the database collation is plain "C"), so the e-mail index is rebuilt with one; SQLite reads
the same indexes through range comparisons.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_subscriber_search"
down_revision = "0008_dry_run_status"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_subscribers_email", table_name="subscribers")
    op.create_index("ix_subscribers_email", "subscribers", ["email"],
                    postgresql_ops={"email": "varchar_pattern_ops"})
    op.create_index("ix_subscribers_first_name", "subscribers", [sa.text("lower(first_name) text_pattern_ops")
                                                                  if _pg() else sa.text("lower(first_name)")])
    op.create_index("ix_subscribers_last_name", "subscribers", [sa.text("lower(last_name) text_pattern_ops")
                                                                 if _pg() else sa.text("lower(last_name)")])
    op.create_index("ix_external_ids_external_id", "external_ids", ["external_id"],
                    postgresql_ops={"external_id": "varchar_pattern_ops"})
    if _pg():  # statistics for the expressions now, not at autovacuum's next pass: the planner needs them
        op.execute("ANALYZE subscribers")
        op.execute("ANALYZE external_ids")


def downgrade() -> None:
    op.drop_index("ix_external_ids_external_id", table_name="external_ids")
    op.drop_index("ix_subscribers_last_name", table_name="subscribers")
    op.drop_index("ix_subscribers_first_name", table_name="subscribers")
    op.drop_index("ix_subscribers_email", table_name="subscribers")
    op.create_index("ix_subscribers_email", "subscribers", ["email"])


def _pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"
