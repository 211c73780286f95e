"""A tenant's own monthly charge limits (LIM-1 hard, LIM-3 soft), replacing its plan's.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 14:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("monthly_charge_limit_minor", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("monthly_charge_soft_limit_minor", sa.BigInteger(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("monthly_charge_soft_limit_minor")
        batch.drop_column("monthly_charge_limit_minor")
