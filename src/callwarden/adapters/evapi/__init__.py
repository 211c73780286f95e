"""Kamailio integration over evapi: callwarden answers Kamailio's call attempts on a persistent
TCP connection and keeps Kamailio's own backstops current over JSON-RPC.

See integrations/kamailio/kamailio.cfg for the Kamailio side and docs/integrations/kamailio.md
for the whole picture.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from callwarden.adapters.evapi.backstops import BackstopSync
from callwarden.adapters.evapi.jsonrpc import KamailioRpc
from callwarden.adapters.evapi.peer import EvapiPeer

if TYPE_CHECKING:
    from callwarden.platform import Platform

__all__ = ["BackstopSync", "EvapiPeer", "KamailioRpc", "run_evapi"]


async def run_evapi(platform: Platform) -> None:
    """Stay connected to the Kamailio evapi socket the settings name, answering its call
    attempts and events, and (when `kamailio_jsonrpc_url` is set) keep its backstop tables
    current; until cancelled."""
    settings = platform.settings
    if settings.evapi_port is None:
        raise ValueError("evapi_port is not set: there is no Kamailio to connect to")
    rpc = KamailioRpc(settings.kamailio_jsonrpc_url) if settings.kamailio_jsonrpc_url else None
    sync = (
        BackstopSync(platform.store, rpc, interval_s=settings.kamailio_sync_interval_s)
        if rpc is not None
        else None
    )
    peer = EvapiPeer(
        platform.admission,
        settings.evapi_host,
        settings.evapi_port,
        on_connect=sync.request_full if sync is not None else None,
    )
    if sync is not None:
        platform.governance.listeners.append(sync)
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(peer.run())
            if sync is not None:
                tasks.create_task(sync.run())
    finally:
        if sync is not None:
            with contextlib.suppress(ValueError):
                platform.governance.listeners.remove(sync)
        if rpc is not None:
            await rpc.aclose()
