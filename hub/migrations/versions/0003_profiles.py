"""profiles: merges, identity conflicts, profile stats, segment memberships and sync state, KPI ledgers

Revision ID: 0003_profiles
Revises: 0001
Create Date: 2026-11-21 19:28:29.570677
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import hub.store.types

revision = '0003_profiles'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('identity_conflicts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('subscriber_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('other_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', hub.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', hub.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['other_id'], ['subscribers.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('subscriber_id', 'other_id', name='uq_identity_conflicts')
    )
    op.create_table('kpi_facts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('subscriber_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('provider', sa.String(length=40), nullable=False),
    sa.Column('subscription_id', sa.String(length=255), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('time', hub.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('amount_minor', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id', 'kind', name='uq_kpi_facts_event')
    )
    with op.batch_alter_table('kpi_facts', schema=None) as batch_op:
        batch_op.create_index('ix_kpi_facts_subscription', ['provider', 'subscription_id', 'time'], unique=False)
        batch_op.create_index('ix_kpi_facts_time', ['time', 'kind', 'currency'], unique=False)

    op.create_table('merges',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('winner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('loser_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=True),
    sa.Column('moved', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', hub.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('undone_at', hub.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['loser_id'], ['subscribers.id'], ),
    sa.ForeignKeyConstraint(['winner_id'], ['subscribers.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('merges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_merges_loser_id'), ['loser_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_merges_winner_id'), ['winner_id'], unique=False)

    op.create_table('mrr_movements',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('subscriber_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('time', hub.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('delta_minor', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('mrr_before_minor', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('mrr_after_minor', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id', 'currency', name='uq_mrr_movements_event')
    )
    with op.batch_alter_table('mrr_movements', schema=None) as batch_op:
        batch_op.create_index('ix_mrr_movements_subscriber', ['subscriber_id', 'time'], unique=False)
        batch_op.create_index('ix_mrr_movements_time', ['time', 'kind', 'currency'], unique=False)

    op.create_table('profile_stats',
    sa.Column('subscriber_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('engagement_score', sa.Float(), nullable=False),
    sa.Column('engagement_at', hub.store.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('engagement_count', sa.Integer(), nullable=False),
    sa.Column('active_months', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('paid', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('emails', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('consent_at', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('lifecycle', sa.String(length=40), nullable=True),
    sa.Column('updated_at', hub.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id')
    )
    op.create_table('segment_memberships',
    sa.Column('subscriber_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('segment', sa.String(length=80), nullable=False),
    sa.Column('entered_at', hub.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('subscriber_id', 'segment')
    )
    with op.batch_alter_table('segment_memberships', schema=None) as batch_op:
        batch_op.create_index('ix_segment_memberships_segment', ['segment'], unique=False)

    op.create_table('segment_sync_state',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('subscriber_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('segment', sa.String(length=80), nullable=True),
    sa.Column('value', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('action_key', sa.String(length=255), nullable=True),
    sa.Column('updated_at', hub.store.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('subscriber_id', 'target', name='uq_segment_sync_state')
    )
    with op.batch_alter_table('segment_sync_state', schema=None) as batch_op:
        batch_op.create_index('ix_segment_sync_state_target', ['target'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('segment_sync_state', schema=None) as batch_op:
        batch_op.drop_index('ix_segment_sync_state_target')

    op.drop_table('segment_sync_state')
    with op.batch_alter_table('segment_memberships', schema=None) as batch_op:
        batch_op.drop_index('ix_segment_memberships_segment')

    op.drop_table('segment_memberships')
    op.drop_table('profile_stats')
    with op.batch_alter_table('mrr_movements', schema=None) as batch_op:
        batch_op.drop_index('ix_mrr_movements_time')
        batch_op.drop_index('ix_mrr_movements_subscriber')

    op.drop_table('mrr_movements')
    with op.batch_alter_table('merges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_merges_winner_id'))
        batch_op.drop_index(batch_op.f('ix_merges_loser_id'))

    op.drop_table('merges')
    with op.batch_alter_table('kpi_facts', schema=None) as batch_op:
        batch_op.drop_index('ix_kpi_facts_time')
        batch_op.drop_index('ix_kpi_facts_subscription')

    op.drop_table('kpi_facts')
    op.drop_table('identity_conflicts')
