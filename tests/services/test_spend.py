"""Monthly charge limits in admission (LIM-1, LIM-3): reserve when a call starts, settle when it
ends, on the in-process counters and on Redis at 127.0.0.1:6379."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from tests.world import World, build_world

from callwarden.core.admission.attempt import CallAttempt, Direction
from callwarden.core.admission.policy import RuleMode, RulePolicy
from callwarden.core.model import PlanLimits
from callwarden.platform import Platform
from callwarden.services.admission import CallEvent
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import AuditQuery, PageRequest
from callwarden.settings import Settings

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
DECK = [
    "prefix,description,rate,connection fee,increments,effective date,currency",
    "44,United Kingdom,0.6000,0,60/60,2020-01-01,EUR",
    "4420,London,0.6000,0,60/60,2020-01-01,EUR",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def limits(**changes: object) -> PlanLimits:
    base: dict[str, object] = dict(
        concurrent_calls_per_tenant=None,
        concurrent_calls_per_user=None,
        attempts_per_second=None,
        attempts_per_minute=None,
        calls_per_destination_per_day=None,
        max_call_duration_s=600,
        monthly_charge_limit_minor=3_000,
    )
    base.update(changes)
    return PlanLimits(**base)  # type: ignore[arg-type]


@pytest.fixture
async def world(tmp_path: Path, counters_url: str) -> AsyncIterator[World]:
    platform = Platform.build(
        Settings(database_url=f"sqlite:///{tmp_path / 'cw.db'}", counters_url=counters_url)
    )
    world = build_world(platform)
    platform.governance.update_plan(SYSTEM, world.plan_id, limits=limits())
    deck = platform.rating.create_deck(SYSTEM, name="Retail", currency="EUR")
    platform.rating.import_rates(SYSTEM, deck.id, DECK)
    platform.rating.assign(SYSTEM, "plan", world.plan_id, deck.id)
    yield world
    await platform.aclose()


def call(world: World, n: int, at: float = T0, **changes: object) -> CallAttempt:
    fields: dict[str, object] = {
        "call_id": f"call-{n}",
        "destination": f"+4420794601{n % 100:02d}",
        "direction": Direction.OUTBOUND,
        "at": at,
        "tenant_id": world.tenants[0],
        "user_id": world.admins[0],
        "caller": "+442079460000",
    }
    fields.update(changes)
    return CallAttempt(**fields)  # type: ignore[arg-type]


async def end(world: World, n: int, duration_s: float | None) -> None:
    await world.platform.admission.call_event(
        f"call-{n}",
        CallEvent.ENDED,
        tenant_id=world.tenants[0],
        source_ip=None,
        duration_s=duration_s,
    )


async def totals(world: World, month: str = "2027-01") -> tuple[int, int]:
    return await world.platform.counters.spend_totals(world.tenants[0], month, T0)


async def test_max_duration_is_what_the_remaining_budget_affords(world: World) -> None:
    platform = world.platform
    platform.governance.update_plan(
        SYSTEM, world.plan_id, limits=limits(monthly_charge_limit_minor=250)
    )
    decision = await platform.admission.decide(call(world, 1))
    # 2.50 EUR at 0.60 EUR a minute billed per minute: four whole minutes; the call holds
    # what was left (the rest returns when it is settled).
    assert decision.admit and decision.max_duration_s == 240
    assert await totals(world) == (0, 250)


async def test_the_plans_maximum_duration_caps_an_ample_budget(world: World) -> None:
    decision = await world.platform.admission.decide(call(world, 1))
    assert decision.admit and decision.max_duration_s == 600
    assert await totals(world) == (0, 600)


async def test_an_ended_call_settles_its_real_cost_once(world: World) -> None:
    await world.platform.admission.decide(call(world, 1))
    await end(world, 1, 61.0)  # two billed minutes
    assert await totals(world) == (120, 0)
    await end(world, 1, 61.0)
    assert await totals(world) == (120, 0)


async def test_a_failed_call_costs_nothing_and_gives_its_budget_back(world: World) -> None:
    await world.platform.admission.decide(call(world, 1))
    await world.platform.admission.call_event(
        "call-1", CallEvent.FAILED, tenant_id=world.tenants[0], source_ip=None
    )
    assert await totals(world) == (0, 0)


async def test_an_exhausted_budget_refuses_with_lim_1(world: World) -> None:
    admission = world.platform.admission
    for n in range(5):
        assert (await admission.decide(call(world, n))).admit
    refused = await admission.decide(call(world, 5))
    assert not refused.admit and refused.sip_status == 403
    assert refused.clause_ids == ("LIM-1", "LIM-3") and refused.refused_by == "monthly_charges"
    assert "30.00 EUR" in refused.reason


async def test_budget_returns_when_calls_end_cheaper_than_reserved(world: World) -> None:
    admission = world.platform.admission
    for n in range(5):
        await admission.decide(call(world, n))
    await end(world, 0, 30.0)  # one minute: 0.60 of the 6.00 held
    decision = await admission.decide(call(world, 5))
    assert decision.admit and decision.max_duration_s == 540
    assert await totals(world) == (60, 2_940)


async def test_concurrent_attempts_never_hold_more_than_the_hard_limit(world: World) -> None:
    admission = world.platform.admission
    decisions = []

    async def attempt(n: int) -> None:
        decisions.append(await admission.decide(call(world, n)))

    async with anyio.create_task_group() as tasks:
        for n in range(40):
            tasks.start_soon(attempt, n)
    admitted = [d for d in decisions if d.admit]
    assert len(admitted) == 5
    settled, reserved = await totals(world)
    assert settled + reserved <= 3_000
    assert sum(d.max_duration_s or 0 for d in admitted) * 60 // 60 == 3_000


async def test_a_refusal_by_a_later_rule_gives_the_reservation_back(world: World) -> None:
    platform = world.platform
    platform.governance.update_plan(
        SYSTEM, world.plan_id, limits=limits(concurrent_calls_per_tenant=1)
    )
    assert (await platform.admission.decide(call(world, 1))).admit
    busy = await platform.admission.decide(call(world, 2))
    assert not busy.admit and busy.clause_ids == ("LIM-2",)
    assert await totals(world) == (0, 600)


async def test_soft_limit_admits_and_warns(world: World) -> None:
    platform = world.platform
    platform.governance.update_plan(
        SYSTEM,
        world.plan_id,
        limits=limits(monthly_charge_limit_minor=None, monthly_charge_soft_limit_minor=500),
    )
    first = await platform.admission.decide(call(world, 1))
    assert first.admit and first.max_duration_s == 600 and not first.warnings
    second = await platform.admission.decide(call(world, 2))
    assert second.admit
    assert any("soft charge limit" in w for w in second.warnings)


async def test_a_tenants_own_limit_replaces_its_plans(world: World) -> None:
    platform = world.platform
    platform.governance.set_charge_limits(SYSTEM, world.tenants[0], hard_minor=90, soft_minor=None)
    decision = await platform.admission.decide(call(world, 1))
    assert decision.admit and decision.max_duration_s == 60


async def test_observe_mode_admits_past_the_limit_and_records_it(world: World) -> None:
    platform = world.platform
    platform.governance.update_plan(
        SYSTEM, world.plan_id, limits=limits(monthly_charge_limit_minor=100)
    )
    platform.admission_config.set_policy(
        SYSTEM, "plan", world.plan_id, "monthly_charges", RulePolicy(mode=RuleMode.OBSERVE)
    )
    first = await platform.admission.decide(call(world, 1))
    second = await platform.admission.decide(call(world, 2))
    assert first.admit and second.admit and second.max_duration_s == 600
    assert [f.rule for f in second.observed] == ["monthly_charges"]


async def test_an_unrated_destination_is_refused_under_a_hard_limit(world: World) -> None:
    decision = await world.platform.admission.decide(call(world, 1, destination="+48221234567"))
    assert not decision.admit and decision.refused_by == "monthly_charges"
    assert "no rate" in decision.reason


async def test_emergency_calls_are_admitted_with_the_budget_spent(world: World) -> None:
    platform = world.platform
    platform.governance.update_plan(
        SYSTEM, world.plan_id, limits=limits(monthly_charge_limit_minor=0)
    )
    assert not (await platform.admission.decide(call(world, 1))).admit
    emergency = await platform.admission.decide(call(world, 2, destination="999"))
    assert emergency.admit and emergency.emergency


async def test_thresholds_are_recorded_once_per_month(world: World) -> None:
    platform = world.platform
    admission = platform.admission
    for n in range(3):
        await admission.decide(call(world, n))
        await end(world, n, 600.0)  # 6.00 each of the 30.00
    assert await totals(world) == (1_800, 0)
    for n in range(3, 6):
        await admission.decide(call(world, n))
        await end(world, n, 600.0)
    with platform.store.transaction() as tx:
        page = tx.list_audit(
            AuditQuery(tenant_id=world.tenants[0], action="spend.threshold"),
            PageRequest(50, 0),
        )
    marks = sorted(str((e.details or {})["mark"]) for e in page.items)
    assert marks == ["hard:100", "hard:50", "hard:80"]
    assert all(e.clause_ids == ("LIM-1", "LIM-3") for e in page.items)


async def test_spend_statement_shows_the_month_in_the_tenants_timezone(world: World) -> None:
    platform = world.platform
    statement = await platform.spend.statement(SYSTEM, world.tenants[0])
    assert statement.settled_minor == 0 and statement.limits.hard_minor == 3_000
    assert statement.remaining_minor == 3_000 and statement.currency == "EUR"
