"""merge the privacy and profiles branches into one head

Revision ID: 0004_merge_heads
Revises: 0002_privacy, 0003_profiles
Create Date: 2026-11-21
"""

revision = "0004_merge_heads"
down_revision = ("0002_privacy", "0003_profiles")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # both branches only added tables; from here on migrations have a single parent


def downgrade() -> None:
    pass
