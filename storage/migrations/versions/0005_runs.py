"""Runs: a search configuration over a problem set, one result per problem; named problem sets.

Revision ID: 0005
Revises: 0003
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'problem_set_items',
        sa.Column('set_name', sa.String(200), primary_key=True),
        sa.Column('position', sa.Integer(), primary_key=True),
        sa.Column('problem_id', sa.String(200), sa.ForeignKey('problems.id'), nullable=False),
    )
    op.create_index('ix_problem_set_items_problem_id', 'problem_set_items', ['problem_id'])
    op.create_table(
        'runs',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('name', sa.String(300), nullable=False),
        sa.Column('problem_set', sa.String(200), nullable=False),
        sa.Column('algorithm', sa.String(40), nullable=False),
        sa.Column('config', sa.JSON(), nullable=False),
        sa.Column('models', sa.JSON(), nullable=False),
        sa.Column('seed', sa.Integer(), nullable=False),
        sa.Column('started_by', sa.String(200), nullable=False),
        sa.Column('status', sa.String(20), nullable=False),
        sa.Column('started', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended', sa.DateTime(timezone=True), nullable=True),
        sa.Column('meta', sa.JSON(), nullable=True),
    )
    op.create_table(
        'run_items',
        sa.Column('run_id', sa.Integer(), sa.ForeignKey('runs.id'), primary_key=True),
        sa.Column('position', sa.Integer(), primary_key=True),
        sa.Column('problem_id', sa.String(200), sa.ForeignKey('problems.id'), nullable=False),
        sa.Column('status', sa.String(20), nullable=False),
        sa.Column('session_id', sa.Integer(), sa.ForeignKey('sessions.id'), nullable=True),
        sa.Column('answer', sa.Text(), nullable=True),
        sa.Column('correct', sa.Boolean(), nullable=True),
        sa.Column('nodes', sa.Integer(), nullable=True),
        sa.Column('tokens', sa.Integer(), nullable=True),
        sa.Column('seconds', sa.Float(), nullable=True),
        sa.Column('found', sa.Boolean(), nullable=True),
        sa.Column('depth', sa.Integer(), nullable=True),
        sa.Column('duplicates', sa.Integer(), nullable=True),
        sa.Column('value', sa.Float(), nullable=True),
        sa.Column('factors', sa.JSON(), nullable=True),
        sa.Column('finished', sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint('run_id', 'problem_id', name='uq_run_item_problem'),
    )
    op.create_index('ix_run_items_problem_id', 'run_items', ['problem_id'])


def downgrade() -> None:
    op.drop_index('ix_run_items_problem_id', 'run_items')
    op.drop_table('run_items')
    op.drop_table('runs')
    op.drop_index('ix_problem_set_items_problem_id', 'problem_set_items')
    op.drop_table('problem_set_items')
