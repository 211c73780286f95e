"""A throttle tightens admission's attempt rates with the counters in process and in Redis:
past the tightened rate attempts are refused citing LIM-5 and FRD-3; lifting it restores the
plan's rate on the next attempt."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.world import World, build_world

from callwarden.core.admission.attempt import CallAttempt, Direction
from callwarden.core.admission.decision import Decision
from callwarden.core.model import PlanLimits, ThrottleRates
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def decide(world: World, first: int, count: int, at: float) -> list[Decision]:
    return [
        await world.platform.admission.decide(
            CallAttempt(
                call_id=f"th-{first + n}",
                destination=f"+44207946{first + n:04d}",
                direction=Direction.OUTBOUND,
                at=at,
                tenant_id=world.tenants[0],
                caller="+442079460000",
            )
        )
        for n in range(count)
    ]


async def test_a_fraction_of_the_plans_rate_holds_until_the_throttle_is_lifted(
    tmp_path: Path, counters_url: str
) -> None:
    platform = Platform.build(
        Settings(database_url=f"sqlite:///{tmp_path / 'cw.db'}", counters_url=counters_url)
    )
    try:
        world = build_world(platform)
        gov, tenant_id = platform.governance, world.tenants[0]
        gov.update_plan(
            SYSTEM, world.plan_id, limits=PlanLimits(attempts_per_second=5, attempts_per_minute=60)
        )
        throttle = gov.throttle(
            SYSTEM, tenant_id, rates=ThrottleRates(fraction=0.4), reason="robocall signature"
        )
        now = datetime.now(UTC).timestamp()
        held = await decide(world, 0, 3, now)  # 5 a second scaled by 0.4: 2
        assert [d.admit for d in held] == [True, True, False]
        assert held[2].clause_ids == ("LIM-5", "FRD-3") and held[2].sip_status == 503
        assert throttle.id in held[2].reason
        gov.lift_throttle(SYSTEM, tenant_id, throttle.id, reason="campaign paused")
        assert [d.admit for d in await decide(world, 10, 3, now)] == [True, True, True]
        (plan_limit,) = await decide(world, 20, 1, now)  # the plan's 5 a second hold underneath
        assert not plan_limit.admit and plan_limit.clause_ids == ("LIM-5",)
    finally:
        await platform.aclose()
