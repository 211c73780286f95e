"""The request handler on its own, fed messages directly: cancellation while a decision is
under way, failing decisions, emergency calls in unusable requests, and fuzzing."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.adapters.sip.sipkit import ack_for, cancel_for, request, response_of
from tests.world import World

from callwarden.adapters.sip.fields import Via
from callwarden.adapters.sip.handler import RedirectHandler
from callwarden.adapters.sip.message import Response
from callwarden.core.admission.attempt import CallAttempt
from callwarden.core.admission.decision import Decision
from callwarden.core.model import PlanLimits
from callwarden.core.numbering import NumberingPlan
from callwarden.services.admission import AdmissionService, CallEvent
from callwarden.services.governance import SYSTEM

DESTINATION = "sip:+442079460123@gw.example;user=phone"


class MemoryChannel:
    """A transport that keeps what the handler sends, in order (the packets on the wire)."""

    reliable = False

    def __init__(self, source: tuple[str, int] = ("127.0.0.1", 5060)) -> None:
        self.source = source
        self.sent: list[bytes] = []

    def send(self, data: bytes, via: Via | None) -> None:
        self.sent.append(data)

    def responses(self) -> list[Response]:
        return [response_of(d) for d in self.sent]


class HeldAdmission:
    """The real admission service, with each decision held until `release` is set: the
    window in which a CANCEL can overtake the answer."""

    def __init__(self, service: AdmissionService) -> None:
        self.service = service
        self.numbering: NumberingPlan = service.numbering
        self.release = asyncio.Event()

    async def decide(self, attempt: CallAttempt) -> Decision:
        await self.release.wait()
        return await self.service.decide(attempt)

    async def call_event(
        self, call_id: str, event: CallEvent, *, tenant_id: str | None, source_ip: str | None
    ) -> bool:
        return await self.service.call_event(
            call_id, event, tenant_id=tenant_id, source_ip=source_ip
        )


def invite(world: World, uri: str = DESTINATION, **headers: str) -> bytes:
    return request("INVITE", uri, headers={"X-Callwarden-Tenant": world.tenants[0], **headers})


@pytest.mark.anyio
async def test_a_cancel_during_the_decision_answers_487_and_gives_the_lease_back(
    world: World,
) -> None:
    limits = PlanLimits(concurrent_calls_per_tenant=5)
    world.platform.governance.update_plan(SYSTEM, world.plan_id, limits=limits)
    admission = HeldAdmission(world.platform.admission)
    handler = RedirectHandler(admission)
    channel = MemoryChannel()
    data = invite(world, call_id="held-1@test")
    handler.handle(data, channel)
    handler.handle(data, channel)  # a retransmission while deciding: 100 Trying
    handler.handle(cancel_for(data), channel)
    admission.release.set()
    await handler.idle()
    statuses = [r.status for r in channel.responses()]
    assert statuses == [100, 200, 487]
    cancel_answer, invite_answer = channel.responses()[1:]
    assert (cancel_answer.get("CSeq"), invite_answer.get("CSeq")) == ("1 CANCEL", "1 INVITE")
    holding = await world.platform.counters.calls_holding(world.tenants[0], 1e12)
    assert holding == []  # admitted after the CANCEL, and released at once
    handler.handle(data, channel)
    assert channel.sent[-1] == channel.sent[2]  # a later retransmission gets the same 487
    await handler.aclose()


@pytest.mark.anyio
async def test_a_failing_decision_answers_500_but_still_redirects_an_emergency_call(
    world: World,
) -> None:
    with world.platform.store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE plans RENAME TO plans_gone")
    handler = RedirectHandler(world.platform.admission)
    channel = MemoryChannel()
    handler.handle(invite(world), channel)
    await handler.idle()
    handler.handle(invite(world, "sip:112@gw.example"), channel)
    await handler.idle()
    failed, emergency = channel.responses()
    assert failed.status == 500 and "decision failed" in (failed.get("Reason") or "")
    assert emergency.status == 302
    assert (
        emergency.get("X-Callwarden-Degraded") == emergency.get("X-Callwarden-Emergency") == "yes"
    )
    assert handler.stats.events["decision_error"] == 2 and handler.stats.events["error"] == 0
    await handler.aclose()


@pytest.mark.anyio
async def test_an_emergency_call_in_an_otherwise_unusable_request_is_redirected(
    world: World,
) -> None:
    handler = RedirectHandler(world.platform.admission)
    channel = MemoryChannel()
    handler.handle(invite(world, "sip:999@gw.example", **{"X-Callwarden-Tenant": "bad"}), channel)
    mismatched = request("INVITE", "sip:112@gw.example", cseq_method="OPTIONS")
    handler.handle(mismatched, channel)
    handler.handle(request("INVITE", "urn:service:sos.police"), channel)
    await handler.idle()
    answers = channel.responses()
    assert [a.status for a in answers] == [302, 302, 302]
    assert all(a.get("X-Callwarden-Emergency") == "yes" for a in answers)
    assert handler.stats.events["decision"] == 0
    await handler.aclose()


@pytest.mark.anyio
async def test_over_a_reliable_transport_the_answer_is_not_retransmitted(world: World) -> None:
    handler = RedirectHandler(world.platform.admission)
    channel = MemoryChannel()
    channel.reliable = True  # type: ignore[misc]
    handler.handle(invite(world), channel)
    await handler.idle()
    assert [r.status for r in channel.responses()] == [302]
    assert handler.retransmitting == 0
    await handler.aclose()


# -- fuzzing the whole handler ----------------------------------------------------------------
@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    running = asyncio.new_event_loop()
    yield running
    running.close()


@functools.cache
def _seeds(tenant: str) -> list[bytes]:
    """Valid messages to mutate, the same bytes for every example of one tenant."""
    invite_data = request("INVITE", DESTINATION, headers={"X-Callwarden-Tenant": tenant})
    answer = response_of(
        b"SIP/2.0 302 Moved Temporarily\r\nTo: <" + DESTINATION.encode() + b">;tag=cw1\r\n\r\n"
    )
    return [
        invite_data,
        request("OPTIONS", "sip:a@b"),
        ack_for(invite_data, answer),
        cancel_for(invite_data),
        request("INVITE", "tel:112", headers={"X-Callwarden-Source-IP": "192.0.2.1"}),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",
    ]


@st.composite
def datagrams(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed message with some bytes replaced, inserted or deleted, or arbitrary bytes."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=600))
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 5))):
        at = draw(st.integers(0, len(data) - 1))
        byte = draw(st.sampled_from([*b'\r\n:;,<>"\\ @=/0z', 0, 0x80, 0xFF]))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "replace":
            data[at] = byte
        elif action == "insert":
            data.insert(at, byte)
        else:
            del data[at]
    return bytes(data)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_datagram_makes_the_handler_raise_or_fail(
    world: World, loop: asyncio.AbstractEventLoop, data: st.DataObject
) -> None:
    packets = data.draw(st.lists(datagrams(_seeds(world.tenants[0])), min_size=1, max_size=4))

    async def feed() -> RedirectHandler:
        handler = RedirectHandler(world.platform.admission)
        channel = MemoryChannel()
        for packet in packets:
            handler.handle(packet, channel)
        await handler.idle()
        await handler.aclose()
        for sent in channel.sent:
            assert response_of(sent).status >= 100
        return handler

    handler = loop.run_until_complete(feed())
    assert handler.stats.events["error"] == 0
    assert handler.stats.events["decision_error"] == 0


def test_the_counts_are_exported_as_prometheus_metrics(world: World) -> None:
    handler = RedirectHandler(world.platform.admission)
    handler.handle(b"\x00\x01 not SIP", MemoryChannel())
    text = world.client.get("/metrics").text
    dropped = [
        line
        for line in text.splitlines()
        if line.startswith('callwarden_sip_events_total{event="dropped"}')
    ]
    assert dropped and float(dropped[0].split()[-1]) >= 1
    assert handler.stats.events["dropped"] == 1
