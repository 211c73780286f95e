"""Notification subscriptions and deliveries in SQL, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from callwarden.adapters.store.notifications import SqlNotificationStore
from callwarden.adapters.store.tables import Base
from callwarden.core.audit import AuditFact
from callwarden.platform import Platform
from callwarden.services.notifications import Channel, Delivery, DeliveryStatus, Subscription
from callwarden.services.ports import PageRequest

TABLES = {"notification_subscriptions", "notification_deliveries"}
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _subscription(sub_id: str, tenant_id: str | None = None, last_seq: int = 0) -> Subscription:
    return Subscription(
        id=sub_id,
        channel=Channel.WEBHOOK,
        target="https://hooks.example/cw",
        actions=("spend.threshold", "case.*"),
        tenant_id=tenant_id,
        created_by="system",
        created_at=T0,
        last_seq=last_seq,
        secret="whsec_x",
    )


def _delivery(delivery_id: str, sub_id: str, seq: int, status: DeliveryStatus) -> Delivery:
    return Delivery(
        id=delivery_id,
        subscription_id=sub_id,
        seq=seq,
        event="spend.threshold",
        status=status,
        attempts=3,
        last_error=None if status is DeliveryStatus.DELIVERED else "HTTP 500: boom",
        created_at=T0 + timedelta(seconds=seq),
        finished_at=T0 + timedelta(seconds=seq + 1),
    )


def test_the_migration_creates_exactly_the_notification_tables_of_the_model(
    platform: Platform,
) -> None:
    with platform.store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if any(t in repr(d) for t in TABLES)] == []


def test_a_subscription_comes_back_as_it_went_in(platform: Platform) -> None:
    store = SqlNotificationStore(platform.store.engine)
    with store.transaction() as tx:
        tx.add_subscription(_subscription("ns_0000000000000001"))
    with store.transaction() as tx:
        assert tx.get_subscription("ns_0000000000000001") == _subscription("ns_0000000000000001")
        assert tx.get_subscription("ns_0000000000000002") is None


def test_a_position_only_moves_forward(platform: Platform) -> None:
    store = SqlNotificationStore(platform.store.engine)
    with store.transaction() as tx:
        tx.add_subscription(_subscription("ns_0000000000000001", last_seq=5))
        tx.advance("ns_0000000000000001", 9)
        tx.advance("ns_0000000000000001", 7)
    with store.transaction() as tx:
        found = tx.get_subscription("ns_0000000000000001")
    assert found is not None and found.last_seq == 9


def test_a_redelivery_replaces_the_earlier_record(platform: Platform) -> None:
    store = SqlNotificationStore(platform.store.engine)
    sub = "ns_0000000000000001"
    with store.transaction() as tx:
        tx.add_subscription(_subscription(sub))
        tx.record_delivery(_delivery("dl_0000000000000001", sub, 1, DeliveryStatus.FAILED))
        tx.record_delivery(_delivery("dl_0000000000000002", sub, 2, DeliveryStatus.DELIVERED))
    with store.transaction() as tx:
        tx.record_delivery(_delivery("dl_0000000000000001", sub, 1, DeliveryStatus.DELIVERED))
    with store.transaction() as tx:
        page = tx.list_deliveries(sub, PageRequest())
    assert page.total == 2
    assert [d.id for d in page.items] == ["dl_0000000000000002", "dl_0000000000000001"]
    assert {d.status for d in page.items} == {DeliveryStatus.DELIVERED}


def test_deleting_a_subscription_drops_its_deliveries(platform: Platform) -> None:
    store = SqlNotificationStore(platform.store.engine)
    sub = "ns_0000000000000001"
    with store.transaction() as tx:
        tx.add_subscription(_subscription(sub))
        tx.record_delivery(_delivery("dl_0000000000000001", sub, 1, DeliveryStatus.DELIVERED))
    with store.transaction() as tx:
        assert tx.delete_subscription(sub)
        assert not tx.delete_subscription(sub)
    with store.transaction() as tx:
        assert tx.list_deliveries(sub, PageRequest()).total == 0


def test_audit_entries_are_read_after_a_position_in_order(platform: Platform) -> None:
    store = SqlNotificationStore(platform.store.engine)
    with platform.store.transaction() as tx:
        start = tx.audit_head()[0]
        for i in range(5):
            tx.append_audit(AuditFact("system", f"test.e{i}", "tenant", "t", None), T0)
    with store.transaction() as tx:
        entries = tx.audit_after(start + 1, 3)
        head = tx.audit_head_seq()
    assert [e.action for e in entries] == ["test.e1", "test.e2", "test.e3"]
    assert head == start + 5
