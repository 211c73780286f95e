"""sipp straight against the redirect interface: real SIP traffic, with retransmissions.

Each test gives the tenant exactly as many attempts a minute as sipp places calls, so an
attempt decided twice would be refused 503 (LIM-5) and sipp would fail the call.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.world import World

from callwarden.adapters.sip import SipEndpoint
from callwarden.core.model import PlanLimits
from callwarden.services.governance import SYSTEM

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp is missing: make sip-tools"),
]

SCENARIOS = Path(__file__).parent / "scenarios"


@dataclass(frozen=True)
class SippRun:
    exit_code: int
    errors: str


async def sipp(
    endpoint: SipEndpoint,
    world: World,
    scenario: str,
    workdir: Path,
    *,
    calls: int,
    transport: str = "u1",
) -> SippRun:
    """Run one sipp scenario to completion against the endpoint, as tenant 0's PBX."""
    limits = PlanLimits(
        attempts_per_second=None, attempts_per_minute=calls, calls_per_destination_per_day=None
    )
    world.platform.governance.update_plan(SYSTEM, world.plan_id, limits=limits)
    command = [
        "sipp",
        f"127.0.0.1:{endpoint.port}",
        "-sf",
        str(SCENARIOS / scenario),
        "-t",
        transport,
        "-i",
        "127.0.0.1",
        "-s",
        "+442079460123",
        "-key",
        "tenant",
        world.tenants[0],
        "-key",
        "caller",
        "+442079460000",
        "-m",
        str(calls),
        "-r",
        "50",
        "-nostdin",
        "-timeout",
        "20s",
        "-timeout_error",
        "-trace_err",
        "-error_file",
        str(workdir / "errors.log"),
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=workdir,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    code = await process.wait()
    log = workdir / "errors.log"
    return SippRun(code, log.read_text(errors="replace") if log.exists() else "")


async def test_sipp_calls_over_udp_are_redirected_once_each(
    world: World, endpoint: SipEndpoint, tmp_path: Path
) -> None:
    run = await sipp(endpoint, world, "redirect.xml", tmp_path, calls=10)
    assert run.exit_code == 0, run.errors
    assert endpoint.handler.stats.events["decision"] == 10
    assert endpoint.handler.stats.statuses[302] == 10


async def test_sipp_calls_over_tcp_are_redirected(
    world: World, endpoint: SipEndpoint, tmp_path: Path
) -> None:
    run = await sipp(endpoint, world, "redirect.xml", tmp_path, calls=10, transport="t1")
    assert run.exit_code == 0, run.errors
    assert endpoint.handler.stats.statuses[302] == 10


async def test_sipp_retransmitting_lost_answers_gets_them_again_without_new_decisions(
    world: World, endpoint: SipEndpoint, tmp_path: Path
) -> None:
    run = await sipp(endpoint, world, "redirect_lossy.xml", tmp_path, calls=20)
    assert run.exit_code == 0, run.errors
    stats = endpoint.handler.stats.events
    assert stats["retransmission"] > 0  # a quarter of the 302s were dropped by sipp
    assert stats["decision"] == 20


async def test_sipp_sending_an_invite_twice_gets_the_identical_answer(
    world: World, endpoint: SipEndpoint, tmp_path: Path
) -> None:
    run = await sipp(endpoint, world, "redirect_twice.xml", tmp_path, calls=5)
    assert run.exit_code == 0, run.errors
    stats = endpoint.handler.stats.events
    assert stats["retransmission"] == 5 and stats["decision"] == 5
