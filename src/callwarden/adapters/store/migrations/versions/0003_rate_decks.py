"""Rate decks: named decks, their effective-dated rates, and assignments to plans or tenants.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from callwarden.adapters.store.tables import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_decks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("rate_count", sa.BigInteger(), nullable=False),
        sa.Column("effective_dates", sa.JSON(), nullable=False),
        sa.Column("effective_date_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "rate_deck_rates",
        sa.Column("deck_id", sa.String(length=32), nullable=False),
        sa.Column("prefix", sa.String(length=15), nullable=False),
        sa.Column("effective_from", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("rate_per_minute_nano", sa.BigInteger(), nullable=False),
        sa.Column("connection_fee_nano", sa.BigInteger(), nullable=False),
        sa.Column("initial_s", sa.Integer(), nullable=False),
        sa.Column("subsequent_s", sa.Integer(), nullable=False),
        # No foreign key to rate_decks: a check per row triples a bulk import's time.
        sa.PrimaryKeyConstraint("deck_id", "prefix", "effective_from"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "rate_deck_assignments",
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("scope_id", sa.String(length=32), nullable=False),
        sa.Column("deck_id", sa.String(length=32), nullable=False),
        sa.Column("assigned_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["deck_id"], ["rate_decks.id"]),
        sa.PrimaryKeyConstraint("scope", "scope_id"),
    )
    with op.batch_alter_table("rate_deck_assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rate_deck_assignments_deck_id"), ["deck_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("rate_deck_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rate_deck_assignments_deck_id"))

    op.drop_table("rate_deck_assignments")
    op.drop_table("rate_deck_rates")
    op.drop_table("rate_decks")
