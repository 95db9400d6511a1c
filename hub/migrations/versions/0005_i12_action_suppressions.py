"""actions: suppressions with their reason, planning notes, routed-from action, channel, throttle key

Revision ID: 0005_i12
Revises: 0004_merge_heads
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = "0005_i12"
down_revision = "0004_merge_heads"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("suppressed", sa.String(length=24)),
    ("note", sa.Text()),
    ("via", sa.String(length=80)),
    ("channel", sa.String(length=40)),
    ("throttle_key", sa.String(length=255)),
)


def upgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        for name, type_ in _COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
