"""Assigned work: sessions assigned to annotators (with an overlap), their skips and flags, and the guideline.

Revision ID: 0007
Revises: 0006
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'assignments',
        sa.Column('session_id', sa.Integer(), sa.ForeignKey('sessions.id'), primary_key=True),
        sa.Column('annotator', sa.String(200), primary_key=True),
        sa.Column('assigned_by', sa.String(200), nullable=False),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_assignments_annotator', 'assignments', ['annotator'])
    op.create_table(
        'queue_marks',
        sa.Column('session_id', sa.Integer(), primary_key=True),
        sa.Column('node_id', sa.String(400), primary_key=True),
        sa.Column('annotator', sa.String(200), primary_key=True),
        sa.Column('kind', sa.String(20), nullable=False),
        sa.Column('reason', sa.String(200), nullable=False),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['session_id', 'node_id'], ['nodes.session_id', 'nodes.node_id']),
    )
    op.create_table(
        'guidelines',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('author', sa.String(200), nullable=False),
        sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('guidelines')
    op.drop_table('queue_marks')
    op.drop_index('ix_assignments_annotator', 'assignments')
    op.drop_table('assignments')
