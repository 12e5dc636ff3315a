"""rate limits kept in the database (token buckets of integrity.StoredRateLimiter)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 15:40:00

A database created at 0001 opens unchanged otherwise: this revision only adds the table (applied on start by
``storage.upgrade``).
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rate_limits',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('tokens', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name', 'key')
    )
    with op.batch_alter_table('rate_limits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rate_limits_updated_at'), ['updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rate_limits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rate_limits_updated_at'))
    op.drop_table('rate_limits')
