"""Usage records, dead letters of usage input, and the usage publish outbox.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from callwarden.adapters.store.tables import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("leg", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("user_id", sa.Text(), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("source_format", sa.String(length=64), nullable=False),
        sa.Column("trunk_id", sa.Text(), nullable=True),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("direction", sa.String(length=8), nullable=True),
        sa.Column("caller", sa.Text(), nullable=True),
        sa.Column("callee", sa.Text(), nullable=True),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.Column("ended_at", UtcDateTime(), nullable=True),
        sa.Column("duration_s", sa.Integer(), nullable=True),
        sa.Column("disposition", sa.String(length=16), nullable=True),
        sa.Column("cost_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("campaign", sa.Text(), nullable=True),
        sa.Column("attestation", sa.String(length=1), nullable=True),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("recipient", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=True),
        sa.Column("method", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("record_id", "leg"),
    )
    op.create_index("ix_usage_records_tenant_started", "usage_records", ["tenant_id", "started_at"])
    op.create_table(
        "usage_dead_letters",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("format", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("replayed_at", UtcDateTime(), nullable=True),
        sa.Column("tenant_id", sa.String(length=64), nullable=True),
        sa.Column("whole_body", sa.Boolean(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_usage_dead_letters_status_received", "usage_dead_letters", ["status", "received_at"]
    )
    op.create_index("ix_usage_dead_letters_tenant", "usage_dead_letters", ["tenant_id"])
    op.create_index("ix_usage_dead_letters_digest", "usage_dead_letters", ["digest"])
    op.create_table(
        "usage_outbox",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("keys", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("usage_outbox")
    op.drop_index("ix_usage_dead_letters_digest", table_name="usage_dead_letters")
    op.drop_index("ix_usage_dead_letters_tenant", table_name="usage_dead_letters")
    op.drop_index("ix_usage_dead_letters_status_received", table_name="usage_dead_letters")
    op.drop_table("usage_dead_letters")
    op.drop_index("ix_usage_records_tenant_started", table_name="usage_records")
    op.drop_table("usage_records")
