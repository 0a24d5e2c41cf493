"""Login throttling kept in the database: a lockout survives a restart and holds on every server of the database.

Revision ID: 0006
Revises: 0005
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'login_throttle',
        sa.Column('key', sa.String(500), primary_key=True),
        sa.Column('failures', sa.JSON(), nullable=False),
        sa.Column('locked_until', sa.Float(), nullable=False),
        sa.Column('trusted_until', sa.Float(), nullable=False),
        sa.Column('expires', sa.Float(), nullable=False),
    )
    op.create_index('ix_login_throttle_expires', 'login_throttle', ['expires'])


def downgrade() -> None:
    op.drop_index('ix_login_throttle_expires', 'login_throttle')
    op.drop_table('login_throttle')
