"""one head again; OAuth clients: bound manifests, resource audience, delegation, ID token algorithm;
webhook secrets stored encrypted (longer columns)

Revision ID: 0007_client_restrictions
Revises: 0002_oauth, 0004_realtime, 0006_webhooks
Create Date: 2026-12-04 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007_client_restrictions'
down_revision = ('0002_oauth', '0004_realtime', '0006_webhooks')
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('oauth_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('manifests', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('resource_audience', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('may_delegate', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('id_token_alg', sa.String(length=8), server_default='ES256', nullable=False))
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.alter_column('secret', type_=sa.Text(), existing_type=sa.String(length=100))
        batch_op.alter_column('previous_secret', type_=sa.Text(), existing_type=sa.String(length=100),
                              existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
        batch_op.alter_column('previous_secret', type_=sa.String(length=100), existing_type=sa.Text(),
                              existing_nullable=True)
        batch_op.alter_column('secret', type_=sa.String(length=100), existing_type=sa.Text())
    with op.batch_alter_table('oauth_clients', schema=None) as batch_op:
        batch_op.drop_column('id_token_alg')
        batch_op.drop_column('may_delegate')
        batch_op.drop_column('resource_audience')
        batch_op.drop_column('manifests')
