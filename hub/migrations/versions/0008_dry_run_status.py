"""dry runs get their own action status

Revision ID: 0008_dry_run_status
Revises: 0007_provider_sync
Create Date: 2026-11-26

Actions a connector without credentials finished without sending were stored as ``done`` with
``dry_run`` set; they now have the status ``dry_run``. Only data changes (``status`` is a string).
"""

from alembic import op

revision = "0008_dry_run_status"
down_revision = "0007_provider_sync"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE actions SET status = 'dry_run' WHERE status = 'done' AND dry_run")


def downgrade() -> None:
    op.execute("UPDATE actions SET status = 'done' WHERE status = 'dry_run'")
