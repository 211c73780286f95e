"""callwarden keeps a real Kamailio's backstop tables equal to its own state, over JSON-RPC:
a full reconciliation removes what is stale, and a change to a tenant reaches Kamailio at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integrations.sip_stack import Kamailio, free_port, tools_present
from tests.world import World

from callwarden.adapters.evapi.backstops import BackstopSync
from callwarden.adapters.evapi.jsonrpc import KamailioRpc, KamailioRpcError
from callwarden.core.model import PlanLimits
from callwarden.services.governance import SYSTEM

pytestmark = pytest.mark.skipif(
    not tools_present(), reason="Kamailio and sipp are installed by `make sip-tools`"
)


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    """A Kamailio with the callwarden configuration and nobody connected to its evapi."""
    instance = Kamailio(tmp_path, free_port())
    try:
        yield instance
    finally:
        instance.stop()


async def _get(rpc: KamailioRpc, table: str, key: str) -> object:
    try:
        answer = await rpc.call("htable.get", table, key)
    except KamailioRpcError:
        return None
    return answer["item"]["value"]


async def _eventually(rpc: KamailioRpc, table: str, key: str, value: object) -> None:
    async with asyncio.timeout(5):
        while await _get(rpc, table, key) != value:
            await asyncio.sleep(0.02)


@pytest.mark.anyio
async def test_full_reconciliation_publishes_the_store_and_removes_stale_entries(
    world: World, kamailio: Kamailio
) -> None:
    platform = world.platform
    platform.governance.update_plan(
        SYSTEM, world.plan_id, limits=PlanLimits(concurrent_calls_per_tenant=7)
    )
    rpc = KamailioRpc(kamailio.rpc_url)
    await rpc.call("htable.sets", "cw_suspended", "tn_0000000000000000", "GOV-2")
    await rpc.call("htable.seti", "cw_limits", "tn_0000000000000000::calls", 3)
    sync = BackstopSync(platform.store, rpc)
    try:
        changes = await sync.full_sync()
        tenant = world.tenants[0]

        assert await _get(rpc, "cw_suspended", "tn_0000000000000000") is None
        assert await _get(rpc, "cw_limits", "tn_0000000000000000::calls") is None
        assert await _get(rpc, "cw_limits", f"{tenant}::calls") == 7
        assert await _get(rpc, "cw_limits", f"{tenant}::secs") == PlanLimits().max_call_duration_s
        assert await _get(rpc, "cw_sources", "192.0.2.1") == tenant
        # 2 stale entries removed; 3 limits and 1 trunk address for each of 2 tenants written.
        assert changes == 2 + 2 * 4
        assert await sync.full_sync() == 0
    finally:
        await rpc.aclose()


@pytest.mark.anyio
async def test_a_tenant_change_reaches_kamailio_at_once(world: World, kamailio: Kamailio) -> None:
    platform = world.platform
    rpc = KamailioRpc(kamailio.rpc_url)
    sync = BackstopSync(platform.store, rpc, interval_s=3600)
    platform.governance.listeners.append(sync)
    task = asyncio.create_task(sync.run())
    tenant = world.tenants[1]
    try:
        await _eventually(rpc, "cw_sources", "192.0.2.2", tenant)

        platform.governance.suspend_tenant(
            SYSTEM, tenant, reason="chargeback fraud", clause_ids=["FRD-3"]
        )
        await _eventually(rpc, "cw_suspended", tenant, "FRD-3,GOV-2")

        platform.governance.reinstate_tenant(SYSTEM, tenant, reason="cleared")
        await _eventually(rpc, "cw_suspended", tenant, None)

        platform.governance.delete_trunk(SYSTEM, tenant, world.trunks[1])
        await _eventually(rpc, "cw_sources", "192.0.2.2", None)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await rpc.aclose()
