"""shared short-lived state in the database: sign-in sessions and counters, sliding windows, revocations

Revision ID: 0008_expiring_state
Revises: 0007_client_restrictions
Create Date: 2026-12-04 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008_expiring_state'
down_revision = '0007_client_restrictions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'expiring_entries',
        sa.Column('key', sa.String(length=300), nullable=False),
        sa.Column('value', sa.Text(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_expiring_entries')),
    )
    op.create_index(op.f('ix_expiring_entries_expires_at'), 'expiring_entries', ['expires_at'])
    op.create_table(
        'window_hits',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=300), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_window_hits')),
    )
    op.create_index(op.f('ix_window_hits_key'), 'window_hits', ['key'])
    op.create_table(
        'revocations',
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_revocations')),
    )
    op.create_index(op.f('ix_revocations_expires_at'), 'revocations', ['expires_at'])


def downgrade() -> None:
    op.drop_index(op.f('ix_revocations_expires_at'), table_name='revocations')
    op.drop_table('revocations')
    op.drop_index(op.f('ix_window_hits_key'), table_name='window_hits')
    op.drop_table('window_hits')
    op.drop_index(op.f('ix_expiring_entries_expires_at'), table_name='expiring_entries')
    op.drop_table('expiring_entries')
