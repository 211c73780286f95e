"""The relational schema, shared by SQLite and PostgreSQL.

Column types are chosen to behave the same on both: text ids, JSON for small nested values,
timezone-aware UTC timestamps. Migrations under `migrations/` create exactly these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite forgets zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every callwarden table."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class PlanRow(Base):
    __tablename__ = "plans"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    billing: Mapped[str] = mapped_column(String(16))
    channels: Mapped[list[Any]]
    currency: Mapped[str] = mapped_column(String(3))
    limits: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class TenantRow(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    country: Mapped[str] = mapped_column(String(2))
    timezone: Mapped[str] = mapped_column(String(64))
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    suspension: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]
    monthly_charge_limit_minor: Mapped[int | None] = mapped_column(BigInteger)
    monthly_charge_soft_limit_minor: Mapped[int | None] = mapped_column(BigInteger)
    sim_box_consent: Mapped[dict[str, Any] | None]


class OrderRow(Base):
    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    seat_limit: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime | None]
    reference: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (Index("ix_users_tenant_status", "tenant_id", "status"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    suspension: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]


class PhoneNumberRow(Base):
    __tablename__ = "phone_numbers"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    e164: Mapped[str] = mapped_column(String(16), unique=True)
    ownership: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    suspension: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime]


class TrunkRow(Base):
    __tablename__ = "trunks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    source_addresses: Mapped[list[Any]]
    created_at: Mapped[datetime]


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class OverrideRow(Base):
    __tablename__ = "overrides"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    clause_id: Mapped[str] = mapped_column(String(8))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    details: Mapped[dict[str, Any]]


class AuditRow(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_tenant_seq", "tenant_id", "seq"),)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    clause_ids: Mapped[list[Any]]
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """One row: the last appended entry. Appends lock it, which keeps the chain linear."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class RulePolicyRow(Base):
    """How one admission rule runs for a plan or a tenant (the tenant's row wins)."""

    __tablename__ = "rule_policies"
    __table_args__ = (UniqueConstraint("scope", "scope_id", "rule", name="uq_rule_policy_scope"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))
    scope_id: Mapped[str] = mapped_column(String(32), index=True)
    rule: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(8))
    failure: Mapped[str] = mapped_column(String(8))
    allow_destinations: Mapped[list[Any]]
    allow_users: Mapped[list[Any]]
    updated_at: Mapped[datetime]


class HighRiskPrefixRow(Base):
    """One range of the operator's high-risk destination list (FRD-1)."""

    __tablename__ = "high_risk_prefixes"
    prefix: Mapped[str] = mapped_column(String(15), primary_key=True)
    label: Mapped[str | None] = mapped_column(String(200))
    added_at: Mapped[datetime]


class RateDeckRow(Base):
    """A named rate deck (LIM-1): its currency, and figures kept current by every import."""

    __tablename__ = "rate_decks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(200))
    rate_count: Mapped[int] = mapped_column(BigInteger)
    effective_dates: Mapped[list[Any]]
    effective_date_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RateDeckRateRow(Base):
    """One rate of a deck: a prefix's price from one effective date (epoch seconds) on.

    Prices are the core's nano units. Without a rowid on SQLite, so the table is its primary
    key's B-tree alone: a million-row import writes one tree instead of two. No foreign key to
    ``rate_decks``: checking it on every row triples the time of a bulk import on PostgreSQL,
    and rates are written only for a deck whose row the import has just locked.
    """

    __tablename__ = "rate_deck_rates"
    __table_args__ = ({"sqlite_with_rowid": False},)
    deck_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(15), primary_key=True)
    effective_from: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    rate_per_minute_nano: Mapped[int] = mapped_column(BigInteger)
    connection_fee_nano: Mapped[int] = mapped_column(BigInteger)
    initial_s: Mapped[int] = mapped_column(Integer)
    subsequent_s: Mapped[int] = mapped_column(Integer)


class RateDeckAssignmentRow(Base):
    """Which deck rates the calls of a plan's tenants or of one tenant (the tenant's wins)."""

    __tablename__ = "rate_deck_assignments"
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    scope_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    deck_id: Mapped[str] = mapped_column(ForeignKey("rate_decks.id"), index=True)
    assigned_at: Mapped[datetime]


class DetectorPolicyRow(Base):
    """How one surveillance detector runs by default (scope ``default``, empty ``scope_id``),
    for a plan or for a tenant: mode, parameters (null for the detector's own) and allowlists.
    The most specific row wins whole."""

    __tablename__ = "detector_policies"
    __table_args__ = (
        UniqueConstraint("scope", "scope_id", "detector", name="uq_detector_policy_scope"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))
    scope_id: Mapped[str] = mapped_column(String(32), index=True)
    detector: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(8))
    params: Mapped[dict[str, Any] | None]
    allow_users: Mapped[list[Any]]
    allow_numbers: Mapped[list[Any]]
    allow_destinations: Mapped[list[Any]]
    updated_at: Mapped[datetime]


class ActionPolicyRow(Base):
    """The automatic-action policy of surveillance (FRD-3): one row, id ``default``."""

    __tablename__ = "action_policies"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    policy: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class ThrottleRow(Base):
    """Tightened attempt rates for a tenant or one of its users (LIM-5, FRD-3), until lifted or
    expired."""

    __tablename__ = "throttles"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    user_id: Mapped[str | None] = mapped_column(String(32))
    rates: Mapped[dict[str, Any]]
    reason: Mapped[str] = mapped_column(Text)
    clause_ids: Mapped[list[Any]]
    at: Mapped[datetime]
    by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime | None]
