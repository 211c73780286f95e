"""The store, on SQLite and on the real PostgreSQL server: same migrations, same behaviour."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import inspect, text
from tests.world import build_world

from callwarden.core.audit import AuditFact
from callwarden.core.errors import Conflict
from callwarden.core.model import NumberOwnership, UserRole
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import PageRequest, TenantQuery


def _tamper(platform: Platform, sql: str) -> None:
    """Change a stored audit row directly, as someone with database access could."""
    engine = platform.store.engine
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
            conn.execute(text(sql))
            conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
            conn.execute(text("DROP TRIGGER audit_log_no_delete"))
            conn.execute(text(sql))


def test_migrations_create_every_table(platform: Platform) -> None:
    tables = set(inspect(platform.store.engine).get_table_names())
    assert {"plans", "tenants", "orders", "users", "phone_numbers", "trunks"} <= tables
    assert {"api_keys", "overrides", "audit_log", "audit_head", "alembic_version"} <= tables


def test_entities_round_trip_through_the_store(platform: Platform) -> None:
    world = build_world(platform)
    gov = platform.governance
    tenant = gov.get_tenant(SYSTEM, world.tenants[1])
    assert (tenant.country, tenant.timezone) == ("PL", "Europe/Warsaw")
    assert tenant.created_at.tzinfo is not None
    number = gov.get_number(SYSTEM, world.tenants[1], world.numbers[1])
    assert number.e164 == "+48123456789" and number.ownership is NumberOwnership.OWNED
    trunk = gov.get_trunk(SYSTEM, world.tenants[0], world.trunks[0])
    assert trunk.source_addresses == ("192.0.2.1/32",)
    plan = gov.get_plan(SYSTEM, world.plan_id)
    assert plan.limits.blocked_number_types[0] == "premium_rate"


def test_list_filters_and_pagination(platform: Platform) -> None:
    build_world(platform)
    gov = platform.governance
    page = gov.list_tenants(SYSTEM, TenantQuery(), PageRequest(limit=1))
    assert page.total == 2 and len(page.items) == 1 and page.next_offset == 1
    assert gov.list_tenants(SYSTEM, TenantQuery(country="PL"), PageRequest()).total == 1
    assert gov.list_tenants(SYSTEM, TenantQuery(name_contains="%"), PageRequest()).total == 0


def test_a_duplicate_number_is_a_conflict(platform: Platform) -> None:
    world = build_world(platform)
    with pytest.raises(Conflict):
        platform.governance.add_number(
            SYSTEM, world.tenants[1], e164="+442079460000", ownership=NumberOwnership.OWNED
        )


def test_a_change_and_its_audit_entry_commit_or_roll_back_together(platform: Platform) -> None:
    world = build_world(platform)
    before = platform.audit.verify()[0]
    with pytest.raises(RuntimeError), platform.store.transaction() as tx:
        tx.append_audit(
            AuditFact("us_x", "tenant.updated", "tenant", world.tenants[0], world.tenants[0]),
            platform.governance.clock(),
        )
        raise RuntimeError("the change failed after its audit entry was written")
    assert platform.audit.verify() == (before, None)


def test_the_database_refuses_to_update_audit_rows(platform: Platform) -> None:
    build_world(platform)
    with pytest.raises(Exception, match="append-only"), platform.store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'someone else' WHERE seq = 1"))


def test_verify_reports_the_first_row_altered_directly_in_the_database(platform: Platform) -> None:
    build_world(platform)
    count, broken = platform.audit.verify()
    assert broken is None and count > 10
    _tamper(platform, "UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 7")
    count, broken = platform.audit.verify()
    assert broken is not None
    assert broken.seq == 7
    assert "no longer matches" in broken.problem


def test_verify_reports_a_deleted_row(platform: Platform) -> None:
    build_world(platform)
    _tamper(platform, "DELETE FROM audit_log WHERE seq = 4")
    _, broken = platform.audit.verify()
    assert broken is not None and broken.seq == 5


def test_concurrent_changes_keep_the_audit_chain_linear(platform: Platform) -> None:
    world = build_world(platform)
    errors: list[BaseException] = []

    def invite(n: int) -> None:
        try:
            for i in range(5):
                platform.governance.create_user(
                    SYSTEM,
                    world.tenants[n % 2],
                    email=f"w{n}-{i}@load.example",
                    display_name="Load",
                    role=UserRole.AGENT,
                )
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=invite, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    count, broken = platform.audit.verify()
    assert broken is None
    with platform.store.transaction() as tx:
        assert tx.audit_head()[0] == count
