"""Auto labels carry their generator provenance and rollout settings, and when they were first computed.

Revision ID: 0002
Revises: 0001
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add auto_labels.provenance (JSON) and auto_labels.created (existing rows: their `updated` time)."""
    with op.batch_alter_table('auto_labels', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provenance', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('created', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE auto_labels SET created = updated")
    with op.batch_alter_table('auto_labels', schema=None) as batch_op:
        batch_op.alter_column('created', existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('auto_labels', schema=None) as batch_op:
        batch_op.drop_column('created')
        batch_op.drop_column('provenance')
