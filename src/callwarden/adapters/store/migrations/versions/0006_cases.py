"""Surveillance cases and the automatic actions taken because of them (FRD-3).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 15:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from callwarden.adapters.store.tables import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("detector", sa.String(length=64), nullable=False),
        sa.Column("clause_ids", sa.JSON(), nullable=False),
        sa.Column("key_kind", sa.String(length=16), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("window", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=False),
        sa.Column("finding_count", sa.Integer(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_cases_key", "cases", ["tenant_id", "detector", "key_kind", "key", "status"])
    op.create_index("ix_cases_status_last_seen", "cases", ["status", "last_seen"])
    op.create_table(
        "case_actions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("ended_by", sa.Text(), nullable=True),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_case_actions_case", "case_actions", ["case_id"])
    op.create_index("ix_case_actions_status_expires", "case_actions", ["status", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_case_actions_status_expires", table_name="case_actions")
    op.drop_index("ix_case_actions_case", table_name="case_actions")
    op.drop_table("case_actions")
    op.drop_index("ix_cases_status_last_seen", table_name="cases")
    op.drop_index("ix_cases_key", table_name="cases")
    op.drop_table("cases")
