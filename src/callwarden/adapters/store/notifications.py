"""Notification subscriptions and their delivery log in SQL, on the store's own database.

Each subscription row keeps ``last_seq``, the last audit entry the follower has dealt with, so
delivery resumes where it stopped after a restart. Audit entries are read straight from the
audit log by sequence number; tenants and the audit chain are reached through the main store's
transaction on the same session, so a subscription and its audit entry commit together.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Engine,
    Index,
    Integer,
    String,
    Text,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from callwarden.adapters.store import mapping as m
from callwarden.adapters.store.sql import SqlTransaction
from callwarden.adapters.store.tables import AuditRow, Base, TenantRow
from callwarden.core.audit import AuditEntry, AuditFact
from callwarden.services.notifications import (
    Channel,
    Delivery,
    DeliveryStatus,
    Subscription,
)
from callwarden.services.ports import Page, PageRequest

__all__ = [
    "NotificationDeliveryRow",
    "NotificationSubscriptionRow",
    "SqlNotificationStore",
    "SqlNotificationTransaction",
]


class NotificationSubscriptionRow(Base):
    """One subscription; `tenant_id` NULL means every tenant."""

    __tablename__ = "notification_subscriptions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(Text)
    secret: Mapped[str | None] = mapped_column(Text)
    actions: Mapped[list[Any]]
    tenant_id: Mapped[str | None] = mapped_column(String(32), index=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seq: Mapped[int] = mapped_column(BigInteger)


class NotificationDeliveryRow(Base):
    """One event sent, or given up on, to one subscription."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_notification_deliveries_subscription", "subscription_id", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime]


def _subscription(r: NotificationSubscriptionRow) -> Subscription:
    return Subscription(
        id=r.id,
        channel=Channel(r.channel),
        target=r.target,
        actions=tuple(r.actions),
        tenant_id=r.tenant_id,
        created_by=r.created_by,
        created_at=r.created_at,
        last_seq=r.last_seq,
        secret=r.secret,
    )


def _delivery(r: NotificationDeliveryRow) -> Delivery:
    return Delivery(
        id=r.id,
        subscription_id=r.subscription_id,
        seq=r.seq,
        event=r.event,
        status=DeliveryStatus(r.status),
        attempts=r.attempts,
        last_error=r.last_error,
        created_at=r.created_at,
        finished_at=r.finished_at,
    )


class SqlNotificationTransaction:
    """The `NotificationTransaction` port over one SQLAlchemy session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._main = SqlTransaction(session)

    # -- subscriptions -------------------------------------------------------------------------
    def add_subscription(self, subscription: Subscription) -> None:
        """Store a new subscription."""
        self.session.add(
            NotificationSubscriptionRow(
                id=subscription.id,
                channel=subscription.channel.value,
                target=subscription.target,
                secret=subscription.secret,
                actions=list(subscription.actions),
                tenant_id=subscription.tenant_id,
                created_by=subscription.created_by,
                created_at=subscription.created_at,
                last_seq=subscription.last_seq,
            )
        )
        self.session.flush()

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        """The subscription with this id, if any."""
        row = self.session.get(NotificationSubscriptionRow, subscription_id)
        return _subscription(row) if row is not None else None

    def list_subscriptions(self, tenant_id: str | None, page: PageRequest) -> Page[Subscription]:
        """A tenant's subscriptions, or every one when `tenant_id` is None; oldest first."""
        stmt = select(NotificationSubscriptionRow).order_by(
            NotificationSubscriptionRow.created_at, NotificationSubscriptionRow.id
        )
        if tenant_id is not None:
            stmt = stmt.where(NotificationSubscriptionRow.tenant_id == tenant_id)
        total = self.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = self.session.scalars(stmt.limit(page.limit).offset(page.offset)).all()
        return Page([_subscription(r) for r in rows], total, page.limit, page.offset)

    def all_subscriptions(self) -> list[Subscription]:
        """Every subscription, for the follower."""
        rows = self.session.scalars(
            select(NotificationSubscriptionRow).order_by(NotificationSubscriptionRow.id)
        )
        return [_subscription(r) for r in rows]

    def delete_subscription(self, subscription_id: str) -> bool:
        """Delete a subscription and its delivery log; False when there was none."""
        self.session.execute(
            delete(NotificationDeliveryRow).where(
                NotificationDeliveryRow.subscription_id == subscription_id
            )
        )
        result = self.session.execute(
            delete(NotificationSubscriptionRow).where(
                NotificationSubscriptionRow.id == subscription_id
            )
        )
        return bool(getattr(result, "rowcount", 0))

    def advance(self, subscription_id: str, seq: int) -> None:
        """Move a subscription's position forward to `seq` (never back)."""
        self.session.execute(
            update(NotificationSubscriptionRow)
            .where(
                NotificationSubscriptionRow.id == subscription_id,
                NotificationSubscriptionRow.last_seq < seq,
            )
            .values(last_seq=seq)
        )

    # -- deliveries ----------------------------------------------------------------------------
    def record_delivery(self, delivery: Delivery) -> None:
        """Log a delivery; a redelivery of the same entry replaces its earlier record."""
        self.session.merge(
            NotificationDeliveryRow(
                id=delivery.id,
                subscription_id=delivery.subscription_id,
                seq=delivery.seq,
                event=delivery.event,
                status=delivery.status.value,
                attempts=delivery.attempts,
                last_error=delivery.last_error,
                created_at=delivery.created_at,
                finished_at=delivery.finished_at,
            )
        )
        self.session.flush()

    def list_deliveries(self, subscription_id: str, page: PageRequest) -> Page[Delivery]:
        """A subscription's deliveries, newest first."""
        stmt = (
            select(NotificationDeliveryRow)
            .where(NotificationDeliveryRow.subscription_id == subscription_id)
            .order_by(NotificationDeliveryRow.created_at.desc(), NotificationDeliveryRow.id)
        )
        total = self.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = self.session.scalars(stmt.limit(page.limit).offset(page.offset)).all()
        return Page([_delivery(r) for r in rows], total, page.limit, page.offset)

    # -- the rest of the store -----------------------------------------------------------------
    def audit_after(self, seq: int, limit: int) -> list[AuditEntry]:
        """Up to `limit` audit entries after `seq`, oldest first."""
        rows = self.session.scalars(
            select(AuditRow).where(AuditRow.seq > seq).order_by(AuditRow.seq).limit(limit)
        )
        return [m.audit_from_row(r) for r in rows]

    def audit_head_seq(self) -> int:
        """The sequence number of the newest audit entry (0 for an empty log)."""
        return self._main.audit_head()[0]

    def tenant_names(self, tenant_ids: set[str]) -> dict[str, str]:
        """The names of these tenants, by id (unknown ids are left out)."""
        if not tenant_ids:
            return {}
        rows = self.session.execute(
            select(TenantRow.id, TenantRow.name).where(TenantRow.id.in_(sorted(tenant_ids)))
        )
        return {tenant_id: name for tenant_id, name in rows}

    def tenant_exists(self, tenant_id: str) -> bool:
        """True when a tenant with this id exists."""
        return self.session.get(TenantRow, tenant_id) is not None

    def append_audit(self, fact: AuditFact, at: datetime) -> AuditEntry:
        """Append to the audit log in this same transaction (GOV-1)."""
        return self._main.append_audit(fact, at)


class SqlNotificationStore:
    """The `NotificationStore` port on the same database as the rest of the store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[SqlNotificationTransaction]:
        """One unit of work: committed when the block ends, rolled back if it raises."""
        with self._sessions() as session, session.begin():
            yield SqlNotificationTransaction(session)
