"""privacy: redaction records and data exports

Revision ID: 0002_privacy
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import hub.store.types

revision = "0002_privacy"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "redactions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("identifiers_hash", sa.String(length=64), nullable=False),
        sa.Column("identifier_hashes", _JSON, nullable=False),
        sa.Column("subscriber_ids", _JSON, nullable=False),
        sa.Column("counts", _JSON, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=True),
        sa.Column("provider", sa.String(length=40), nullable=True),
        sa.Column("requested_at", hub.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", hub.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("redactions", schema=None) as batch_op:
        batch_op.create_index("ix_redactions_requested", ["requested_at"], unique=False)

    op.create_table(
        "data_exports",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("subscriber_id", _ID, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=True),
        sa.Column("provider", sa.String(length=40), nullable=True),
        sa.Column("document", _JSON, nullable=False),
        sa.Column("created_at", hub.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("data_exports", schema=None) as batch_op:
        batch_op.create_index("ix_data_exports_subscriber", ["subscriber_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("data_exports", schema=None) as batch_op:
        batch_op.drop_index("ix_data_exports_subscriber")
    op.drop_table("data_exports")
    with op.batch_alter_table("redactions", schema=None) as batch_op:
        batch_op.drop_index("ix_redactions_requested")
    op.drop_table("redactions")
