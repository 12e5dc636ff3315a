"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 02:31:07.341539
"""
import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('models',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('meta', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('prompts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('item_id', sa.String(length=200), nullable=False),
    sa.Column('suite', sa.String(length=100), nullable=False),
    sa.Column('category', sa.String(length=100), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('item_id')
    )
    op.create_table('settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('voters',
    sa.Column('pseudonym', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('quarantined', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('pseudonym')
    )
    op.create_table('clips',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('prompt_id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.String(length=200), nullable=False),
    sa.Column('source_path', sa.Text(), nullable=False),
    sa.Column('source_hash', sa.String(length=64), nullable=False),
    sa.Column('playback_file', sa.String(length=200), nullable=False),
    sa.Column('playback_sha256', sa.String(length=64), nullable=False),
    sa.Column('duration', sa.Float(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('fps', sa.Float(), nullable=False),
    sa.Column('loudness_in', sa.Float(), nullable=True),
    sa.Column('gold_group', sa.String(length=64), nullable=True),
    sa.Column('gold_role', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('clips', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clips_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_clips_prompt_id'), ['prompt_id'], unique=False)

    op.create_table('battles',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('prompt_id', sa.Integer(), nullable=False),
    sa.Column('clip_a', sa.String(length=32), nullable=False),
    sa.Column('clip_b', sa.String(length=32), nullable=False),
    sa.Column('model_a', sa.String(length=200), nullable=True),
    sa.Column('model_b', sa.String(length=200), nullable=True),
    sa.Column('gold_answer', sa.String(length=8), nullable=True),
    sa.Column('pair_prob', sa.Float(), nullable=False),
    sa.Column('prompt_prob', sa.Float(), nullable=False),
    sa.Column('side_prob', sa.Float(), nullable=False),
    sa.Column('sampler', sa.String(length=32), nullable=False),
    sa.Column('voter', sa.String(length=32), nullable=False),
    sa.Column('ip_hash', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.Column('voted', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['clip_a'], ['clips.id'], ),
    sa.ForeignKeyConstraint(['clip_b'], ['clips.id'], ),
    sa.ForeignKeyConstraint(['prompt_id'], ['prompts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('battles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_battles_voter'), ['voter'], unique=False)

    op.create_table('votes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('battle_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('choice', sa.String(length=8), nullable=False),
    sa.Column('model_a', sa.String(length=200), nullable=True),
    sa.Column('model_b', sa.String(length=200), nullable=True),
    sa.Column('item_id', sa.String(length=200), nullable=False),
    sa.Column('category', sa.String(length=100), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('pair_prob', sa.Float(), nullable=False),
    sa.Column('gold_answer', sa.String(length=8), nullable=True),
    sa.Column('heard_a_s', sa.Float(), nullable=False),
    sa.Column('heard_b_s', sa.Float(), nullable=False),
    sa.Column('elapsed_s', sa.Float(), nullable=False),
    sa.Column('tags_a', sa.JSON(), nullable=False),
    sa.Column('tags_b', sa.JSON(), nullable=False),
    sa.Column('voter', sa.String(length=32), nullable=False),
    sa.Column('ip_hash', sa.String(length=32), nullable=False),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['battle_id'], ['battles.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('battle_id')
    )
    with op.batch_alter_table('votes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_votes_voter'), ['voter'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('votes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_votes_voter'))

    op.drop_table('votes')
    with op.batch_alter_table('battles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_battles_voter'))

    op.drop_table('battles')
    with op.batch_alter_table('clips', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clips_prompt_id'))
        batch_op.drop_index(batch_op.f('ix_clips_model_id'))

    op.drop_table('clips')
    op.drop_table('voters')
    op.drop_table('settings')
    op.drop_table('prompts')
    op.drop_table('models')
