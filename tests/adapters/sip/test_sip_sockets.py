"""The redirect interface over real UDP and TCP sockets, against a real platform."""

from __future__ import annotations

import asyncio
import socket

import pytest
from tests.adapters.sip.sipkit import (
    TcpClient,
    UdpClient,
    ack_for,
    cancel_for,
    request,
    response_of,
)
from tests.world import World

from callwarden.adapters.api.server import listeners
from callwarden.adapters.sip import SipEndpoint, run_sip, serve_sip
from callwarden.core.model import Billing, Channel, PlanLimits
from callwarden.services.governance import SYSTEM

pytestmark = pytest.mark.anyio

DESTINATION = "sip:+442079460123@gw.example;user=phone"
PREMIUM = "sip:+449098765432@gw.example;user=phone"


def invite(
    world: World, client: UdpClient | TcpClient, uri: str = DESTINATION, **kw: object
) -> bytes:
    """An INVITE naming tenant 0 and presenting its number, from the client's port."""
    headers = {"X-Callwarden-Tenant": world.tenants[0]}
    headers.update(kw.pop("headers", {}))  # type: ignore[arg-type]
    transport = "TCP" if isinstance(client, TcpClient) else "UDP"
    return request("INVITE", uri, port=client.port, transport=transport, headers=headers, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def udp(endpoint: SipEndpoint) -> UdpClient:
    client = await UdpClient.open(endpoint.port)
    yield client  # type: ignore[misc]
    client.close()


async def test_an_admitted_call_is_redirected_with_contact_and_max_duration(
    world: World, udp: UdpClient
) -> None:
    answer = await udp.final(invite(world, udp))
    assert answer.status == 302
    assert answer.get("Contact") == f"<{DESTINATION}>"
    assert answer.get("X-Callwarden-Max-Duration") == "14400"
    assert answer.get("X-Callwarden-Decision") == "admit"


async def test_a_premium_rate_destination_is_refused_403_citing_frd_1(
    world: World, udp: UdpClient
) -> None:
    answer = await udp.final(invite(world, udp, PREMIUM))
    assert answer.status == 403
    assert 'text="FRD-1: ' in (answer.get("Reason") or "")
    assert "premium_rate" in (answer.get("Reason") or "")


async def test_a_suspended_tenant_is_refused_but_its_emergency_calls_are_redirected(
    world: World, udp: UdpClient
) -> None:
    gov = world.platform.governance
    us = gov.create_tenant(
        SYSTEM, name="US", country="US", timezone="America/New_York", plan_id=world.plan_id
    )
    for tenant in (world.tenants[0], us.id):
        gov.suspend_tenant(SYSTEM, tenant, reason="unpaid invoices", clause_ids=["GOV-2"])
    refused = await udp.final(invite(world, udp))
    assert refused.status == 403 and "GOV-2" in (refused.get("X-Callwarden-Clauses") or "")
    for tenant, number in ((world.tenants[0], "112"), (us.id, "911"), (us.id, "112")):
        headers = {"X-Callwarden-Tenant": tenant}
        answer = await udp.final(invite(world, udp, f"sip:{number}@gw.example", headers=headers))
        assert answer.status == 302, number
        assert answer.get("X-Callwarden-Emergency") == "yes"


async def test_an_unknown_source_address_is_refused(world: World, udp: UdpClient) -> None:
    data = request("INVITE", DESTINATION, port=udp.port)
    answer = await udp.final(data)
    assert answer.status == 403
    assert "unknown tenant: source address 127.0.0.1" in (answer.get("Reason") or "")


async def test_a_trusted_proxy_identifies_the_tenant_by_the_original_source_address(
    world: World, udp: UdpClient
) -> None:
    headers = {"X-Callwarden-Source-IP": "192.0.2.1"}
    answer = await udp.final(request("INVITE", DESTINATION, port=udp.port, headers=headers))
    assert answer.status == 302


async def test_options_is_answered_200_for_health_checks(udp: UdpClient) -> None:
    answer = await udp.final(request("OPTIONS", "sip:callwarden@127.0.0.1", port=udp.port))
    assert answer.status == 200
    assert answer.get("Allow") == "INVITE, ACK, CANCEL, OPTIONS"


async def test_other_methods_are_answered_405(udp: UdpClient) -> None:
    answer = await udp.final(request("REGISTER", "sip:127.0.0.1", port=udp.port))
    assert answer.status == 405 and answer.get("Allow")


async def test_a_malformed_request_gets_400_naming_the_problem(
    world: World, udp: UdpClient
) -> None:
    data = invite(world, udp, headers={"X-Callwarden-Tenant": "tenant zero"})
    answer = await udp.final(data)
    assert answer.status == 400
    assert "X-Callwarden-Tenant" in (answer.get("Warning") or "")
    mismatched = request("OPTIONS", "sip:a@b", port=udp.port, cseq_method="INVITE")
    assert (await udp.final(mismatched)).status == 400


async def test_unanswerable_garbage_is_dropped_and_counted(
    endpoint: SipEndpoint, udp: UdpClient
) -> None:
    udp.send(b"\x16\x03\x01 not sip at all\r\n\r\n")
    answer = await udp.final(request("OPTIONS", "sip:a@b", port=udp.port))
    assert answer.status == 200  # the next answer is the OPTIONS': the garbage got none
    assert endpoint.handler.stats.events["dropped"] == 1


async def test_a_retransmitted_invite_gets_the_identical_answer_from_one_decision(
    world: World, endpoint: SipEndpoint, udp: UdpClient
) -> None:
    limits = PlanLimits(attempts_per_second=None, attempts_per_minute=1)
    world.platform.governance.update_plan(SYSTEM, world.plan_id, limits=limits)
    data = invite(world, udp)
    udp.send(data)
    first = await udp.receive()
    udp.send(data)
    udp.send(data)
    assert await udp.receive() == first
    assert await udp.receive() == first
    assert endpoint.handler.stats.events["decision"] == 1
    # The attempt was counted once: the tenant's one attempt a minute is used up by it.
    another = await udp.final(invite(world, udp))
    assert another.status == 503 and "LIM-5" in (another.get("Reason") or "")


async def test_the_ack_is_absorbed_and_stops_response_retransmissions(
    world: World, endpoint: SipEndpoint, udp: UdpClient
) -> None:
    data = invite(world, udp)
    answer = await udp.final(data)
    assert endpoint.handler.retransmitting == 1
    udp.send(ack_for(data, answer))
    assert (await udp.final(request("OPTIONS", "sip:a@b", port=udp.port))).status == 200
    assert endpoint.handler.stats.events["request_ack"] == 1
    assert endpoint.handler.stats.events["ack_unmatched"] == 0
    assert endpoint.handler.retransmitting == 0


async def test_an_unacknowledged_final_response_is_retransmitted(
    world: World, endpoint: SipEndpoint, udp: UdpClient
) -> None:
    udp.send(invite(world, udp))
    first = await udp.receive()
    assert b"302 Moved" in first
    assert await udp.receive(timeout=5.0) == first  # Timer G: T1, then doubling


async def test_a_cancel_after_the_answer_is_200_and_one_without_an_invite_is_481(
    world: World, udp: UdpClient
) -> None:
    data = invite(world, udp)
    await udp.final(data)
    assert (await udp.final(cancel_for(data))).status == 200
    orphan = cancel_for(invite(world, udp))
    assert (await udp.final(orphan)).status == 481


async def test_an_invite_inside_a_dialog_is_answered_481_without_a_decision(
    world: World, endpoint: SipEndpoint, udp: UdpClient
) -> None:
    data = invite(world, udp).replace(
        f"To: <{DESTINATION}>".encode(), f"To: <{DESTINATION}>;tag=dialog1".encode()
    )
    assert (await udp.final(data)).status == 481
    assert endpoint.handler.stats.events["decision"] == 0


# -- TCP ---------------------------------------------------------------------------------------
async def test_over_tcp_an_admitted_call_is_redirected(world: World, endpoint: SipEndpoint) -> None:
    client = await TcpClient.open(endpoint.port)
    try:
        await client.send(invite(world, client))
        answer = await client.receive()
        assert answer.status == 302 and answer.get("X-Callwarden-Max-Duration") == "14400"
    finally:
        await client.close()


async def test_over_tcp_messages_are_framed_by_content_length(
    world: World, endpoint: SipEndpoint
) -> None:
    client = await TcpClient.open(endpoint.port)
    try:
        body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
        first = invite(world, client, body=body)
        second = request("OPTIONS", "sip:a@b", port=client.port, transport="TCP")
        await client.send(first + second)
        statuses = {(await client.receive()).status, (await client.receive()).status}
        assert statuses == {200, 302}
        third = invite(world, client, PREMIUM)
        await client.send(third[:17])
        await asyncio.sleep(0.05)
        await client.send(third[17:])
        assert (await client.receive()).status == 403
    finally:
        await client.close()


async def test_over_tcp_a_keepalive_ping_gets_a_pong(endpoint: SipEndpoint) -> None:
    client = await TcpClient.open(endpoint.port)
    try:
        await client.send(b"\r\n\r\n")
        assert await asyncio.wait_for(client.reader.readexactly(2), 5) == b"\r\n"
    finally:
        await client.close()


async def test_over_tcp_an_unframeable_message_gets_400_and_the_connection_closes(
    endpoint: SipEndpoint,
) -> None:
    client = await TcpClient.open(endpoint.port)
    try:
        data = request("OPTIONS", "sip:a@b", port=client.port, transport="TCP")
        await client.send(data.replace(b"Content-Length: 0", b"Content-Length: lots"))
        answer = await client.receive()
        assert answer.status == 400 and "Content-Length" in (answer.get("Warning") or "")
        assert await asyncio.wait_for(client.reader.read(), 5) == b""
    finally:
        await client.close()


async def test_an_untrusted_peer_cannot_name_a_tenant_or_claim_an_inbound_call(
    world: World,
) -> None:
    platform = world.platform
    platform.settings = platform.settings.model_copy(update={"sip_trusted_proxies": ()})
    async with serve_sip(platform, "127.0.0.1", 0) as running:
        client = await UdpClient.open(running.port)
        try:
            headers = {"X-Callwarden-Direction": "inbound"}
            answer = await client.final(invite(world, client, PREMIUM, headers=headers))
            assert answer.status == 403
            assert "unknown tenant: source address 127.0.0.1" in (answer.get("Reason") or "")
        finally:
            client.close()


async def test_the_603_setting_declines_policy_refusals(world: World) -> None:
    platform = world.platform
    platform.settings = platform.settings.model_copy(update={"sip_refusal_status": "603"})
    async with serve_sip(platform, "127.0.0.1", 0) as running:
        client = await UdpClient.open(running.port)
        try:
            answer = await client.final(invite(world, client, PREMIUM))
            assert answer.status == 603 and "cause=403" in (answer.get("Reason") or "")
        finally:
            client.close()


async def test_a_plan_without_voice_is_refused_with_its_clause(
    world: World, udp: UdpClient
) -> None:
    plan = world.platform.governance.create_plan(
        SYSTEM,
        name="SMS only",
        billing=Billing.METERED,
        channels=[Channel.MESSAGING],
        currency="EUR",
        limits=PlanLimits(),
    )
    world.platform.governance.update_tenant(SYSTEM, world.tenants[0], plan_id=plan.id)
    answer = await udp.final(invite(world, udp))
    assert answer.status == 403 and answer.get("X-Callwarden-Clauses") == "ACC-1"


async def test_the_server_runs_the_interface_when_sip_port_is_set(world: World) -> None:
    platform = world.platform
    assert not [b for b in listeners(platform) if getattr(b, "func", None) is run_sip]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    platform.settings = platform.settings.model_copy(update={"sip_port": port})
    (background,) = [b for b in listeners(platform) if getattr(b, "func", None) is run_sip]
    task = asyncio.create_task(background())
    client = await UdpClient.open(port)
    try:
        for _ in range(50):  # until the listener is up
            client.send(request("OPTIONS", "sip:a@b", port=client.port))
            try:
                assert response_of(await client.receive(timeout=0.1)).status == 200
                break
            except TimeoutError:
                continue
        else:
            pytest.fail("the SIP interface did not answer")
    finally:
        client.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
