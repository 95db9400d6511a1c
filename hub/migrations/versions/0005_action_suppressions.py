"""actions: suppressions with their reason, planning notes, routed-from action, channel, throttle key,
split variant and goal tracking

Revision ID: 0005_action_suppressions
Revises: 0004_merge_heads
Create Date: 2026-11-26
"""
import sqlalchemy as sa
from alembic import op

import hub.store.types

revision = "0005_action_suppressions"
down_revision = "0004_merge_heads"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("suppressed", sa.String(length=24)),
    ("note", sa.Text()),
    ("via", sa.String(length=80)),
    ("channel", sa.String(length=40)),
    ("throttle_key", sa.String(length=255)),
    ("variant", sa.String(length=40)),
    ("goal", sa.String(length=64)),
    ("goal_until", hub.store.types.UTCDateTime(timezone=True)),
    ("converted_by", sa.String(length=36)),
)


def upgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        for name, type_ in _COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.create_index("ix_actions_goal", "actions", ["subscriber_id", "goal"])


def downgrade() -> None:
    op.drop_index("ix_actions_goal", table_name="actions")
    with op.batch_alter_table("actions") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
