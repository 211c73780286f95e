"""The admission service with real counters: in-process, and Redis at 127.0.0.1:6379."""

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
from callwarden.services.admission import AdmissionService, CallEvent
from callwarden.services.governance import SYSTEM
from callwarden.settings import Settings

pytestmark = pytest.mark.anyio

T0 = 1_800_000_000.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def world(tmp_path: Path, counters_url: str) -> AsyncIterator[World]:
    platform = Platform.build(
        Settings(database_url=f"sqlite:///{tmp_path / 'cw.db'}", counters_url=counters_url)
    )
    world = build_world(platform)
    limits = PlanLimits(
        concurrent_calls_per_tenant=2,
        concurrent_calls_per_user=5,
        attempts_per_second=None,
        attempts_per_minute=None,
        calls_per_destination_per_day=None,
    )
    platform.governance.update_plan(SYSTEM, world.plan_id, limits=limits)
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


def set_limits(world: World, **limits: object) -> None:
    base = dict(
        concurrent_calls_per_tenant=None,
        concurrent_calls_per_user=None,
        attempts_per_second=None,
        attempts_per_minute=None,
        calls_per_destination_per_day=None,
    )
    base.update(limits)
    world.platform.governance.update_plan(SYSTEM, world.plan_id, limits=PlanLimits(**base))  # type: ignore[arg-type]


async def test_the_concurrent_call_limit_refuses_the_next_call_with_lim_2(world: World) -> None:
    admission = world.platform.admission
    assert (await admission.decide(call(world, 1))).admit
    assert (await admission.decide(call(world, 2))).admit
    third = await admission.decide(call(world, 3))
    assert not third.admit and third.sip_status == 486 and third.clause_ids == ("LIM-2",)
    assert third.refused_by == "concurrent_calls"


async def test_an_ended_call_frees_its_lease_once(world: World) -> None:
    admission = world.platform.admission
    tid = world.tenants[0]
    for n in (1, 2):
        await admission.decide(call(world, n))
    assert await admission.call_event("call-1", CallEvent.ENDED, tenant_id=tid, source_ip=None)
    assert not await admission.call_event("call-1", CallEvent.ENDED, tenant_id=tid, source_ip=None)
    assert (await admission.decide(call(world, 3))).admit
    assert not (await admission.decide(call(world, 4))).admit


async def test_a_retransmitted_attempt_does_not_take_a_second_lease(world: World) -> None:
    admission = world.platform.admission
    assert (await admission.decide(call(world, 1))).admit
    assert (await admission.decide(call(world, 1))).admit
    assert (await admission.decide(call(world, 2))).admit
    holding = await world.platform.counters.calls_holding(world.tenants[0], T0)
    assert holding == ["call-1", "call-2"]


async def test_a_lost_end_event_cannot_leak_capacity_past_the_lease_ttl(world: World) -> None:
    set_limits(world, concurrent_calls_per_tenant=1, max_call_duration_s=600)
    admission = world.platform.admission
    assert (await admission.decide(call(world, 1))).admit
    assert not (await admission.decide(call(world, 2, at=T0 + 600))).admit
    later = T0 + 600 + admission.lease_grace_s + 1
    assert (await admission.decide(call(world, 3, at=later))).admit


async def test_the_decision_carries_the_plans_maximum_duration(world: World) -> None:
    set_limits(world, max_call_duration_s=1800)
    assert (await world.platform.admission.decide(call(world, 1))).max_duration_s == 1800


async def test_attempts_per_second_are_limited_per_tenant_with_lim_5(world: World) -> None:
    set_limits(world, attempts_per_second=3)
    admission = world.platform.admission
    results = [await admission.decide(call(world, n, at=T0 + n * 0.01)) for n in range(4)]
    assert [r.admit for r in results] == [True, True, True, False]
    assert results[3].clause_ids == ("LIM-5",) and results[3].sip_status == 503
    assert results[3].retry_after_s is not None and results[3].retry_after_s > 0
    assert (await admission.decide(call(world, 9, at=T0 + 1.5))).admit


async def test_repeat_calls_to_one_destination_are_capped_over_a_rolling_day(world: World) -> None:
    set_limits(world, calls_per_destination_per_day=2)
    admission = world.platform.admission
    same = "+442079460999"
    hours = [0, 5, 23]
    results = [
        await admission.decide(call(world, n, at=T0 + h * 3600, destination=same))
        for n, h in enumerate(hours)
    ]
    assert [r.admit for r in results] == [True, True, False]
    assert results[2].clause_ids == ("DIA-4",)
    # 24 hours after the first call (not at midnight) one more call fits again.
    assert (await admission.decide(call(world, 7, at=T0 + 24 * 3600 + 1, destination=same))).admit


async def test_a_suspension_takes_effect_on_the_very_next_attempt(world: World) -> None:
    admission = world.platform.admission
    assert (await admission.decide(call(world, 1))).admit
    world.platform.governance.suspend_tenant(
        SYSTEM, world.tenants[0], reason="fraud", clause_ids=["FRD-3"]
    )
    refused = await admission.decide(call(world, 2))
    assert not refused.admit and refused.clause_ids == ("FRD-3", "GOV-2")
    assert (await admission.decide(call(world, 3, destination="999"))).emergency


async def test_another_instance_sees_a_change_through_the_change_feed(world: World) -> None:
    platform = world.platform
    other = AdmissionService(platform.store, platform.counters, platform.admission.numbering)
    other.poll_changes()
    assert (await other.decide(call(world, 1))).admit
    platform.governance.suspend_tenant(SYSTEM, world.tenants[0], reason="x", clause_ids=["GOV-2"])
    assert (await other.decide(call(world, 2))).admit  # still its cached view
    assert other.poll_changes() >= 1
    assert not (await other.decide(call(world, 3))).admit


async def test_observe_mode_admits_over_the_limit_and_records_it(world: World) -> None:
    world.platform.admission_config.set_policy(
        SYSTEM, "tenant", world.tenants[0], "concurrent_calls", RulePolicy(mode=RuleMode.OBSERVE)
    )
    admission = world.platform.admission
    results = [await admission.decide(call(world, n)) for n in range(3)]
    assert all(r.admit for r in results)
    assert results[2].observed and results[2].observed[0].clause_ids == ("LIM-2",)
    assert not results[1].observed


async def test_an_allowlisted_destination_skips_the_repeat_cap(world: World) -> None:
    set_limits(world, calls_per_destination_per_day=1)
    world.platform.admission_config.set_policy(
        SYSTEM,
        "plan",
        world.plan_id,
        "repeat_calls",
        RulePolicy(allow_destinations=("4420794609",)),
    )
    admission = world.platform.admission
    same = "+442079460999"
    assert all([(await admission.decide(call(world, n, destination=same))).admit for n in range(3)])


async def test_inbound_calls_take_leases_on_the_called_number(world: World) -> None:
    set_limits(world, concurrent_calls_per_number=1)
    admission = world.platform.admission
    inbound = {
        "direction": Direction.INBOUND,
        "destination": "+442079460000",
        "user_id": None,
        "caller": "+48221234567",
    }
    assert (await admission.decide(call(world, 1, **inbound))).admit
    second = await admission.decide(call(world, 2, **inbound))
    assert not second.admit and "number:+442079460000" in second.reason


async def test_attempts_per_hour_pace_a_burst_over_the_rolling_hour(world: World) -> None:
    set_limits(world, attempts_per_hour=3)
    admission = world.platform.admission
    minutes = [0, 1, 2, 3]
    results = [
        await admission.decide(call(world, n, at=T0 + m * 60)) for n, m in enumerate(minutes)
    ]
    assert [r.admit for r in results] == [True, True, True, False]
    assert results[3].clause_ids == ("LIM-5",)
    # 3 per hour sustained: one slot frees 20 minutes after the burst, whatever the clock hour.
    assert not (await admission.decide(call(world, 8, at=T0 + 15 * 60))).admit
    assert (await admission.decide(call(world, 9, at=T0 + 21 * 60))).admit


async def test_a_burst_for_a_cold_tenant_reads_its_snapshot_once(world: World) -> None:
    admission = world.platform.admission
    admission.all_changed()
    loads: list[str] = []
    original = admission.load_snapshot

    def counting(tenant_id: str):  # type: ignore[no-untyped-def]
        loads.append(tenant_id)
        return original(tenant_id)

    admission.load_snapshot = counting  # type: ignore[method-assign]
    async with anyio.create_task_group() as tasks:
        for n in range(20):
            tasks.start_soon(admission.decide, call(world, n))
    assert loads == [world.tenants[0]]
