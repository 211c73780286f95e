"""What callwarden publishes to Kamailio's backstop tables, from a tenant's standing, plan and
trunks; and how an `htable.dump` answer is read back."""

from __future__ import annotations

from datetime import UTC, datetime

from callwarden.adapters.evapi.backstops import (
    LIMITS,
    SOURCES,
    SUSPENDED,
    Entry,
    parse_dump,
    tenant_entries,
)
from callwarden.core.model import PlanLimits, Suspension, Tenant, TenantStatus, Trunk

NOW = datetime(2026, 1, 5, tzinfo=UTC)
TID = "tn_0123456789abcdef"


def _tenant(status: TenantStatus = TenantStatus.ACTIVE, clauses: tuple[str, ...] = ()) -> Tenant:
    suspension = (
        Suspension("fraud", clauses, NOW, "us_1") if status is not TenantStatus.ACTIVE else None
    )
    return Tenant(TID, "Acme", "GB", "Europe/London", "pl_1", status, suspension, NOW)


def _trunk(*addresses: str, tenant_id: str = TID) -> Trunk:
    return Trunk("tk_1", tenant_id, "PBX", addresses, NOW)


def test_an_active_tenant_publishes_its_plan_limits_only() -> None:
    limits = PlanLimits(
        concurrent_calls_per_tenant=5, attempts_per_second=3, max_call_duration_s=600
    )

    assert tenant_entries(_tenant(), limits, []) == {
        Entry(LIMITS, f"{TID}::calls", 5),
        Entry(LIMITS, f"{TID}::cps", 3),
        Entry(LIMITS, f"{TID}::secs", 600),
    }


def test_a_limit_the_plan_does_not_set_is_published_as_zero_meaning_none() -> None:
    limits = PlanLimits(concurrent_calls_per_tenant=None, attempts_per_second=None)

    entries = tenant_entries(_tenant(), limits, [])

    assert Entry(LIMITS, f"{TID}::calls", 0) in entries
    assert Entry(LIMITS, f"{TID}::cps", 0) in entries


def test_a_suspended_tenant_is_listed_with_its_clauses_and_gov_2() -> None:
    entries = tenant_entries(_tenant(TenantStatus.SUSPENDED, ("FRD-3",)), None, [])

    assert entries == {Entry(SUSPENDED, TID, "FRD-3,GOV-2")}


def test_a_terminated_tenant_is_listed_as_suspended() -> None:
    entries = tenant_entries(_tenant(TenantStatus.TERMINATED, ("GOV-2",)), None, [])

    assert entries == {Entry(SUSPENDED, TID, "GOV-2")}


def test_single_address_trunks_map_their_address_to_the_tenant() -> None:
    trunks = [
        _trunk("192.0.2.10/32", "198.51.100.0/24", "2001:db8::5/128"),
        _trunk("203.0.113.9/32", tenant_id="tn_ffffffffffffffff"),
    ]

    sources = {e for e in tenant_entries(_tenant(), None, trunks) if e.table == SOURCES}

    assert sources == {Entry(SOURCES, "192.0.2.10", TID), Entry(SOURCES, "2001:db8::5", TID)}


def test_every_entry_knows_its_tenant() -> None:
    trunk = _trunk("192.0.2.10/32")
    entries = tenant_entries(_tenant(TenantStatus.SUSPENDED), PlanLimits(), [trunk])

    assert {e.tenant_id for e in entries} == {TID}


def test_a_dump_answer_is_read_slot_by_slot() -> None:
    answer = [
        {"entry": 346, "size": 1, "slot": [{"name": "tn_1", "value": "GOV-2", "type": "str"}]},
        {
            "entry": 1467,
            "size": 2,
            "slot": [
                {"name": "tn_1::calls", "value": 5, "type": "int"},
                {"name": "tn_1::cps", "value": 0, "type": "int"},
            ],
        },
    ]

    assert parse_dump(LIMITS, answer) == {
        Entry(LIMITS, "tn_1", "GOV-2"),
        Entry(LIMITS, "tn_1::calls", 5),
        Entry(LIMITS, "tn_1::cps", 0),
    }


def test_an_empty_or_odd_dump_answer_holds_nothing() -> None:
    assert parse_dump(SUSPENDED, None) == set()
    assert parse_dump(SUSPENDED, []) == set()
    assert parse_dump(SUSPENDED, [{"slot": "x"}, "y", {"slot": [{"name": 1}]}]) == set()
