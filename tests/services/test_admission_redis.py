"""Admission on Redis: a limit holds across instances, and a Redis outage degrades, never
blocks an emergency call. The outage is real: a private redis-server is started and killed."""

from __future__ import annotations

import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from tests.world import World, build_world

from callwarden.adapters.counters import counters_from_url
from callwarden.core.admission.attempt import CallAttempt, Direction
from callwarden.core.admission.policy import FailureMode, RulePolicy
from callwarden.core.model import PlanLimits
from callwarden.platform import Platform
from callwarden.services.admission import AdmissionService
from callwarden.services.governance import SYSTEM
from callwarden.settings import Settings

pytestmark = [pytest.mark.anyio, pytest.mark.redis]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A redis-server of our own, so the test can stop it without touching the shared one."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port, proc
    proc.kill()
    proc.wait()


async def _world(tmp_path: Path, counters_url: str, **limits: object) -> World:
    platform = Platform.build(
        Settings(database_url=f"sqlite:///{tmp_path / 'cw.db'}", counters_url=counters_url)
    )
    world = build_world(platform)
    base: dict[str, object] = dict(
        concurrent_calls_per_tenant=2,
        attempts_per_second=None,
        attempts_per_minute=None,
        calls_per_destination_per_day=None,
    )
    base.update(limits)
    platform.governance.update_plan(SYSTEM, world.plan_id, limits=PlanLimits(**base))  # type: ignore[arg-type]
    return world


def call(world: World, n: int, destination: str = "+442079460123") -> CallAttempt:
    return CallAttempt(
        call_id=f"call-{n}",
        destination=destination,
        direction=Direction.OUTBOUND,
        at=time.time(),
        tenant_id=world.tenants[0],
        user_id=world.admins[0],
        caller="+442079460000",
    )


@pytest.fixture
async def shared_world(tmp_path: Path) -> AsyncIterator[World]:
    url = f"redis://127.0.0.1:6379/0?prefix=cwtest{secrets.token_hex(4)}"
    world = await _world(tmp_path, url)
    yield world
    await world.platform.aclose()


async def test_two_instances_never_exceed_the_tenant_limit_together(shared_world: World) -> None:
    platform = shared_world.platform
    second_counters = counters_from_url(platform.settings.counters_url)
    other = AdmissionService(platform.store, second_counters, platform.admission.numbering)
    decisions: list[bool] = []

    async def place(service: AdmissionService, n: int) -> None:
        decisions.append((await service.decide(call(shared_world, n))).admit)

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(place, platform.admission if n % 2 else other, n)
    await second_counters.close()
    assert decisions.count(True) == 2


async def test_with_redis_stopped_rules_fail_open_and_say_degraded(
    tmp_path: Path, private_redis: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, proc = private_redis
    world = await _world(tmp_path, f"redis://127.0.0.1:{port}/0?socket_timeout=0.2")
    admission = world.platform.admission
    healthy = await admission.decide(call(world, 1))
    assert healthy.admit and not healthy.degraded
    proc.kill()
    proc.wait()
    degraded = await admission.decide(call(world, 2))
    assert degraded.admit and degraded.degraded
    assert any("failed open" in w for w in degraded.warnings)
    await world.platform.aclose()


async def test_with_redis_stopped_a_fail_closed_rule_refuses_but_emergency_passes(
    tmp_path: Path, private_redis: tuple[int, subprocess.Popen[bytes]]
) -> None:
    port, proc = private_redis
    world = await _world(tmp_path, f"redis://127.0.0.1:{port}/0?socket_timeout=0.2")
    world.platform.admission_config.set_policy(
        SYSTEM, "plan", world.plan_id, "concurrent_calls", RulePolicy(failure=FailureMode.CLOSED)
    )
    admission = world.platform.admission
    proc.kill()
    proc.wait()
    refused = await admission.decide(call(world, 1))
    assert not refused.admit and refused.degraded and refused.sip_status == 503
    assert refused.clause_ids == ("LIM-2",)
    emergency = await admission.decide(call(world, 2, destination="112"))
    assert emergency.admit and emergency.emergency
    await world.platform.aclose()
