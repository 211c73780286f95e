"""Surveillance detector policies per default, plan and tenant, the automatic-action policy,
and throttles (tightened attempt rates per tenant or user).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 16:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from callwarden.adapters.store.tables import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detector_policies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", sa.String(length=32), nullable=False),
        sa.Column("detector", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("params", sa.JSON(), nullable=True),
        sa.Column("allow_users", sa.JSON(), nullable=False),
        sa.Column("allow_numbers", sa.JSON(), nullable=False),
        sa.Column("allow_destinations", sa.JSON(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "scope_id", "detector", name="uq_detector_policy_scope"),
    )
    op.create_index(
        "ix_detector_policies_scope_id", "detector_policies", ["scope_id"], unique=False
    )
    op.create_table(
        "action_policies",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "throttles",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        sa.Column("rates", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("clause_ids", sa.JSON(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_throttles_tenant_id", "throttles", ["tenant_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_throttles_tenant_id", table_name="throttles")
    op.drop_table("throttles")
    op.drop_table("action_policies")
    op.drop_index("ix_detector_policies_scope_id", table_name="detector_policies")
    op.drop_table("detector_policies")
