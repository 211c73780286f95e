"""Admission rule policies per plan or tenant, and the operator's high-risk prefix list.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:21:17.436895
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from callwarden.adapters.store.tables import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "high_risk_prefixes",
        sa.Column("prefix", sa.String(length=15), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("added_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("prefix"),
    )
    op.create_table(
        "rule_policies",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("failure", sa.String(length=8), nullable=False),
        sa.Column("allow_destinations", sa.JSON(), nullable=False),
        sa.Column("allow_users", sa.JSON(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "scope_id", "rule", name="uq_rule_policy_scope"),
    )
    with op.batch_alter_table("rule_policies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rule_policies_scope_id"), ["scope_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rule_policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rule_policies_scope_id"))

    op.drop_table("rule_policies")
    op.drop_table("high_risk_prefixes")
