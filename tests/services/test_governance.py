"""Governance: seats, suspensions and overrides, each written to the audit log."""

from __future__ import annotations

import pytest
from tests.world import build_world

from callwarden.core.errors import Conflict, Forbidden, InvalidInput, PolicyRefusal
from callwarden.core.model import Principal, TenantStatus, UserRole, UserStatus
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import AuditQuery, PageRequest


def _audit_actions(platform: Platform, tenant_id: str) -> list[str]:
    page = platform.audit.list(SYSTEM, AuditQuery(tenant_id=tenant_id), PageRequest(limit=500))
    return [e.action for e in page.items]


def _invite(platform: Platform, tenant_id: str, n: int) -> list[str]:
    return [
        platform.governance.create_user(
            SYSTEM,
            tenant_id,
            email=f"extra{i}@{tenant_id}.example",
            display_name="X",
            role=UserRole.AGENT,
        ).id
        for i in range(n)
    ]


def test_activating_past_the_seat_limit_is_refused_with_acc_3(platform: Platform) -> None:
    world = build_world(platform)
    tenant = world.tenants[0]
    gov = platform.governance
    extra = _invite(platform, tenant, 3)
    gov.activate_user(SYSTEM, tenant, world.agents[0])
    gov.activate_user(SYSTEM, tenant, extra[0])
    assert gov.seat_count(SYSTEM, tenant).available == 0
    with pytest.raises(PolicyRefusal) as exc:
        gov.activate_user(SYSTEM, tenant, extra[1])
    assert exc.value.clause_ids == ("ACC-3",)
    assert gov.get_user(SYSTEM, tenant, extra[1]).status is UserStatus.INVITED


def test_an_operator_override_past_the_limit_is_recorded_with_its_reason(
    platform: Platform,
) -> None:
    world = build_world(platform)
    tenant = world.tenants[0]
    gov = platform.governance
    extra = _invite(platform, tenant, 3)
    for user_id in (world.agents[0], extra[0]):
        gov.activate_user(SYSTEM, tenant, user_id)
    user = gov.activate_user(
        SYSTEM, tenant, extra[1], override_reason="order SO-77 is in signature"
    )
    assert user.status is UserStatus.ACTIVE
    overrides = gov.list_overrides(SYSTEM, tenant, PageRequest()).items
    assert [(o.clause_id, o.reason) for o in overrides] == [
        ("ACC-3", "order SO-77 is in signature")
    ]
    entries = platform.audit.list(SYSTEM, AuditQuery(action="override.recorded"), PageRequest())
    assert entries.items[0].clause_ids == ("ACC-3", "GOV-7")


def test_a_tenant_admin_cannot_override_the_seat_limit(platform: Platform) -> None:
    world = build_world(platform)
    admin = Principal(world.admins[0], world.tenants[0], UserRole.TENANT_ADMIN)
    with pytest.raises(Forbidden):
        platform.governance.activate_user(
            admin, world.tenants[0], world.agents[0], override_reason="please"
        )


def test_an_expired_order_stops_granting_seats(platform: Platform) -> None:
    world = build_world(platform)
    gov = platform.governance
    tenant = world.tenants[1]
    before = gov.seat_count(SYSTEM, tenant).limit
    now = gov.clock()
    from datetime import timedelta

    gov.add_order(
        SYSTEM,
        tenant,
        seat_limit=10,
        valid_from=now - timedelta(days=30),
        valid_until=now - timedelta(days=1),
    )
    gov.add_order(SYSTEM, tenant, seat_limit=2, reference="add-on")
    assert gov.seat_count(SYSTEM, tenant).limit == before + 2


def test_suspension_needs_known_clause_ids_and_is_audited(platform: Platform) -> None:
    world = build_world(platform)
    gov = platform.governance
    tenant = world.tenants[0]
    with pytest.raises(InvalidInput, match="NOPE-1"):
        gov.suspend_tenant(SYSTEM, tenant, reason="fraud", clause_ids=["NOPE-1"])
    suspended = gov.suspend_tenant(
        SYSTEM, tenant, reason="IRSF burst to satellite ranges", clause_ids=["FRD-1", "FRD-3"]
    )
    assert suspended.status is TenantStatus.SUSPENDED
    assert suspended.suspension is not None
    assert suspended.suspension.clause_ids == ("FRD-1", "FRD-3")
    gov.reinstate_tenant(SYSTEM, tenant, reason="customer secured its PBX")
    actions = _audit_actions(platform, tenant)
    assert actions[:2] == ["tenant.reinstated", "tenant.suspended"]
    with pytest.raises(Conflict):
        gov.reinstate_tenant(SYSTEM, tenant, reason="again")


def test_user_and_number_suspensions_carry_reason_and_clauses(platform: Platform) -> None:
    world = build_world(platform)
    gov = platform.governance
    tenant = world.tenants[0]
    user = gov.suspend_user(
        SYSTEM, tenant, world.admins[0], reason="credential sharing", clause_ids=["ACC-5"]
    )
    assert user.suspension is not None and user.suspension.clause_ids == ("ACC-5",)
    from callwarden.core.model import NumberStatus

    number = gov.set_number_status(
        SYSTEM,
        tenant,
        world.numbers[0],
        status=NumberStatus.SUSPENDED,
        reason="spoofing complaints",
        clause_ids=["CID-1"],
    )
    assert number.status is NumberStatus.SUSPENDED
    assert number.suspension is not None and number.suspension.reason == "spoofing complaints"


def test_a_suspended_users_key_stops_working(platform: Platform) -> None:
    world = build_world(platform)
    assert platform.access.recognise(world.admin_keys[0]) is not None
    platform.governance.suspend_user(
        SYSTEM, world.tenants[0], world.admins[0], reason="left the company", clause_ids=["ACC-2"]
    )
    assert platform.access.recognise(world.admin_keys[0]) is None


def test_change_listeners_hear_of_every_tenant_change(platform: Platform) -> None:
    world = build_world(platform)
    heard: list[str] = []

    class Listener:
        def tenant_changed(self, tenant_id: str) -> None:
            heard.append(tenant_id)

        def key_changed(self) -> None:
            pass

        def all_changed(self) -> None:
            pass

    platform.governance.listeners.append(Listener())
    platform.governance.suspend_tenant(
        SYSTEM, world.tenants[1], reason="unpaid", clause_ids=["GOV-2"]
    )
    assert heard == [world.tenants[1]]
