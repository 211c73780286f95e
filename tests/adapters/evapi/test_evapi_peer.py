"""The evapi peer over a real TCP connection: it answers every attempt by its transaction,
applies call events to the leases, refuses malformed attempts with a 400 (admitting emergency
calls all the same) and reconnects whenever the connection is lost.

The Kamailio end here is a TCP server speaking evapi's framing; the same peer against a real
Kamailio is exercised by tests/integrations/test_kamailio_e2e.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from tests.world import World

from callwarden.adapters.evapi.netstring import NetstringDecoder, encode
from callwarden.adapters.evapi.peer import EvapiPeer
from callwarden.core.model import PlanLimits
from callwarden.services.governance import SYSTEM


class EvapiEnd:
    """One accepted connection, seen from Kamailio's side."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.decoder = NetstringDecoder()
        self.received: list[dict[str, Any]] = []

    def send(self, message: dict[str, object] | bytes) -> None:
        raw = message if isinstance(message, bytes) else orjson.dumps(message)
        self.writer.write(encode(raw))

    async def receive(self, count: int) -> list[dict[str, Any]]:
        while len(self.received) < count:
            data = await asyncio.wait_for(self.reader.read(65536), 5)
            assert data, "the peer closed the connection"
            self.received += [orjson.loads(p) for p in self.decoder.feed(data)]
        out, self.received = self.received[:count], self.received[count:]
        return out


class EvapiServer:
    """Accepts the peer's connections like Kamailio's evapi socket."""

    def __init__(self) -> None:
        self.connections: asyncio.Queue[EvapiEnd] = asyncio.Queue()
        self.port = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.connections.put(EvapiEnd(reader, writer))

    async def next(self) -> EvapiEnd:
        return await asyncio.wait_for(self.connections.get(), 5)


@contextlib.asynccontextmanager
async def running(world: World, **options: Any) -> AsyncIterator[tuple[EvapiServer, EvapiPeer]]:
    server = EvapiServer()
    listener = await asyncio.start_server(server._accept, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    peer = EvapiPeer(world.platform.admission, "127.0.0.1", server.port, **options)
    task = asyncio.create_task(peer.run())
    try:
        yield server, peer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        listener.close()
        await listener.wait_closed()


def attempt(world: World, tindex: int, destination: str, **fields: object) -> dict[str, object]:
    return {
        "type": "attempt",
        "tindex": tindex,
        "tlabel": 1000 + tindex,
        "call_id": f"call-{tindex}@pbx.example",
        "destination": destination,
        "caller": "+442079460000",
        "source_ip": "192.0.2.1",
        "tenant_id": world.tenants[0],
        **fields,
    }


@pytest.mark.anyio
async def test_every_attempt_is_answered_by_its_own_transaction(world: World) -> None:
    async with running(world) as (server, _):
        kamailio = await server.next()
        kamailio.send(attempt(world, 1, "02079460123"))
        kamailio.send(attempt(world, 2, "09098790000"))
        kamailio.send(attempt(world, 3, "02079460124"))
        verdicts = {v["tindex"]: v for v in await kamailio.receive(3)}

    assert {t: v["tlabel"] for t, v in verdicts.items()} == {1: 1001, 2: 1002, 3: 1003}
    assert (verdicts[1]["admit"], verdicts[3]["admit"]) == (1, 1)
    assert verdicts[1]["max_duration"] == PlanLimits().max_call_duration_s
    assert (verdicts[2]["admit"], verdicts[2]["status"]) == (0, 403)
    assert "FRD-1" in verdicts[2]["headers"]


@pytest.mark.anyio
async def test_call_events_renew_and_release_the_call_leases(world: World) -> None:
    platform = world.platform
    platform.governance.update_plan(
        SYSTEM, world.plan_id, limits=PlanLimits(concurrent_calls_per_tenant=5)
    )
    tenant = world.tenants[0]
    async with running(world) as (server, _):
        kamailio = await server.next()
        kamailio.send(attempt(world, 1, "02079460123"))
        assert (await kamailio.receive(1))[0]["admit"] == 1
        held = await platform.counters.calls_holding(tenant, time.time())
        for event in ("answered", "ended"):
            kamailio.send(
                {
                    "type": "event",
                    "event": event,
                    "call_id": "call-1@pbx.example",
                    "source_ip": "192.0.2.1",
                    "tenant_id": tenant,
                }
            )
        async with asyncio.timeout(5):
            while await platform.counters.calls_holding(tenant, time.time()):
                await asyncio.sleep(0.01)

    assert held == ["call-1@pbx.example"]


@pytest.mark.anyio
async def test_a_malformed_attempt_is_refused_with_400_naming_the_field(world: World) -> None:
    async with running(world) as (server, _):
        kamailio = await server.next()
        kamailio.send(attempt(world, 1, "02079460123", tenant_id="not a tenant"))
        verdict = (await kamailio.receive(1))[0]

    assert (verdict["tindex"], verdict["admit"], verdict["status"]) == (1, 0, 400)
    assert "tenant_id" in verdict["headers"]


@pytest.mark.anyio
async def test_a_malformed_emergency_attempt_is_admitted(world: World) -> None:
    async with running(world) as (server, _):
        kamailio = await server.next()
        kamailio.send(attempt(world, 1, "999", call_id=""))
        verdict = (await kamailio.receive(1))[0]

    assert (verdict["admit"], verdict["clause_ids"]) == (1, ["CID-3"])


@pytest.mark.anyio
async def test_the_peer_reconnects_after_losing_the_connection(world: World) -> None:
    connects: list[float] = []
    async with running(
        world, backoff_initial_s=0.01, on_connect=lambda: connects.append(time.time())
    ) as (server, peer):
        first = await server.next()
        first.writer.close()
        second = await server.next()
        second.send(attempt(world, 1, "02079460123"))
        verdict = (await second.receive(1))[0]

    assert len(connects) == 2
    assert verdict["admit"] == 1 and peer.answered == 1


@pytest.mark.anyio
async def test_a_stream_that_is_not_netstrings_drops_the_connection(world: World) -> None:
    async with running(world, backoff_initial_s=0.01) as (server, _):
        first = await server.next()
        first.writer.write(b"GET / HTTP/1.1\r\n\r\n")
        assert await asyncio.wait_for(first.reader.read(), 5) == b""
        second = await server.next()
        second.send(attempt(world, 2, "02079460123"))
        assert (await second.receive(1))[0]["tindex"] == 2
