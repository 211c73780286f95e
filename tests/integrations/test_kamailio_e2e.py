"""Kamailio in front of callwarden, end to end: sipp calls through integrations/kamailio.

Every test places real calls: a sipp caller sends INVITEs to Kamailio, which asks callwarden
over evapi and relays admitted calls to a sipp callee. All of it runs on loopback and is
started and stopped here (tests/integrations/sip_stack.py).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.integrations.sip_stack import (
    Callee,
    Caller,
    Calls,
    Callwarden,
    Kamailio,
    place_calls,
    tools_present,
    wait_for,
)

from callwarden.core.model import Billing, Channel, NumberOwnership, PlanLimits, UserRole
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.settings import Settings

pytestmark = pytest.mark.skipif(
    not tools_present(), reason="Kamailio and sipp are installed by `make sip-tools`"
)

OPEN = PlanLimits(
    concurrent_calls_per_tenant=50,
    concurrent_calls_per_user=None,
    attempts_per_second=None,
    attempts_per_minute=None,
    calls_per_destination_per_day=None,
)
"""Limits that refuse nothing the tests do, unless a test sets its own."""


@dataclass(frozen=True)
class Tenant:
    """A seeded tenant and the caller ID it owns."""

    id: str
    number: str


@dataclass
class Stack:
    """callwarden, Kamailio and a callee, with the seeded tenants and an operator's API key."""

    workdir: Path
    kamailio: Kamailio
    callwarden: Callwarden
    key: str
    tenants: dict[str, Tenant]

    def calls(self, tenant: str, destination: str, **options: Any) -> Calls:
        """Place calls as `tenant` (see `Caller`) and return their outcomes."""
        t = self.tenants[tenant]
        return place_calls(
            self.workdir,
            self.kamailio,
            destination=destination,
            tenant=t.id,
            caller=t.number,
            **options,
        )

    def assert_no_leases(self, tenant: str) -> None:
        """Wait until callwarden holds no lease for the tenant (call events are asynchronous)."""
        tenant_id = self.tenants[tenant].id
        wait_for(
            f"{tenant}'s leases to be released",
            lambda: self.callwarden.leases(tenant_id, self.key) == [],
            timeout_s=5,
        )


def _seed(database_url: str, tenants: dict[str, PlanLimits]) -> tuple[str, dict[str, Tenant]]:
    """An operator key, and one tenant per entry with its own plan and caller ID (GB)."""
    platform = Platform.build(Settings(database_url=database_url))
    try:
        gov = platform.governance
        operator = gov.create_user(
            SYSTEM, None, email="noc@provider.example", display_name="NOC", role=UserRole.OPERATOR
        )
        key = platform.access.issue(SYSTEM, None, operator.id, "e2e").secret
        seeded: dict[str, Tenant] = {}
        for i, (name, limits) in enumerate(tenants.items()):
            plan = gov.create_plan(
                SYSTEM,
                name=f"plan {name}",
                billing=Billing.METERED,
                channels=[Channel.VOICE],
                currency="GBP",
                limits=limits,
            )
            tenant = gov.create_tenant(
                SYSTEM, name=name, country="GB", timezone="Europe/London", plan_id=plan.id
            )
            number = f"+4420794600{i:02d}"
            gov.add_number(SYSTEM, tenant.id, e164=number, ownership=NumberOwnership.OWNED)
            seeded[name] = Tenant(tenant.id, number)
        return key, seeded
    finally:
        platform.close()


def _start(workdir: Path, tenants: dict[str, PlanLimits]) -> Iterator[Stack]:
    database_url = f"sqlite:///{workdir / 'callwarden.db'}"
    key, seeded = _seed(database_url, tenants)
    callee = Callee(workdir)
    kamailio: Kamailio | None = None
    callwarden: Callwarden | None = None
    try:
        kamailio = Kamailio(workdir, callee.port)
        callwarden = Callwarden(workdir, database_url, kamailio)
        yield Stack(workdir, kamailio, callwarden, key, seeded)
    finally:
        for part in (callwarden, kamailio, callee):
            if part is not None:
                part.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the tests that keep callwarden up; each test has its own tenant."""
    yield from _start(
        tmp_path_factory.mktemp("kamailio-e2e"),
        {
            "limited": PlanLimits(
                concurrent_calls_per_tenant=5,
                concurrent_calls_per_user=None,
                attempts_per_second=None,
                attempts_per_minute=None,
                calls_per_destination_per_day=None,
            ),
            "premium": OPEN,
            "suspended": OPEN,
            "short": PlanLimits(
                concurrent_calls_per_tenant=50,
                attempts_per_second=None,
                attempts_per_minute=None,
                calls_per_destination_per_day=None,
                max_call_duration_s=2,
            ),
            "leases": OPEN,
        },
    )


def test_a_tenant_limited_to_five_calls_has_five_of_twenty_simultaneous_calls_answered(
    stack: Stack,
) -> None:
    """(a) 20 calls at once, each held 3 s, for a tenant allowed 5 concurrent calls (LIM-2)."""
    calls = stack.calls("limited", "02079460101", calls=20, rate=200, hold_ms=3000)

    assert len(calls.answered) == 5
    assert calls.statuses() == {486: 15}
    assert all("LIM-2" in call.reason for call in calls.refused)
    assert all(call.ended_by == "caller" for call in calls.answered)
    stack.assert_no_leases("limited")


def test_b_premium_rate_destination_is_refused_with_403_and_the_clause_in_reason(
    stack: Stack,
) -> None:
    """(b) A UK premium-rate number (09xx) is refused before anything rings (FRD-1)."""
    calls = stack.calls("premium", "09098790000")

    assert calls.answered == []
    assert calls.statuses() == {403: 1}
    reason = calls.refused[0].reason
    assert reason.startswith('SIP;cause=403;text="FRD-1: ')
    assert "FRD-1" in reason and "premium_rate" in reason


def test_c_suspended_tenant_is_refused_but_its_112_and_911_calls_connect(stack: Stack) -> None:
    """(c) Suspension through the API refuses the tenant's next call (GOV-2); emergency
    numbers are still connected (CID-3)."""
    tenant_id = stack.tenants["suspended"].id
    stack.callwarden.api(
        "POST",
        f"/v1/tenants/{tenant_id}/suspend",
        stack.key,
        {"reason": "toll fraud under investigation", "clause_ids": ["FRD-3"]},
    )

    ordinary = stack.calls("suspended", "02079460102")
    emergency = [stack.calls("suspended", number, hold_ms=500) for number in ("112", "911")]

    assert ordinary.statuses() == {403: 1}
    assert "GOV-2" in ordinary.refused[0].reason and "FRD-3" in ordinary.refused[0].reason
    for calls in emergency:
        assert len(calls.answered) == 1
        assert calls.answered[0].ended_by == "caller"
    # Kamailio's own table of suspended tenants was updated too, for when callwarden is down.
    wait_for(
        "the suspension to reach Kamailio",
        lambda: stack.kamailio.htable("cw_suspended", tenant_id) == "FRD-3,GOV-2",
        timeout_s=5,
    )


def test_d_call_is_cut_by_kamailio_at_the_maximum_duration(stack: Stack) -> None:
    """(d) A plan allowing 2-second calls: the caller would hold 10 s, Kamailio ends the call
    with a BYE (LIM-3) and callwarden releases its lease."""
    calls = stack.calls("short", "02079460103", hold_ms=10_000)

    assert len(calls.answered) == 1
    assert calls.answered[0].ended_by == "proxy"
    assert "LIM-3" in calls.answered[0].reason
    stack.assert_no_leases("short")


def test_f_leases_held_during_calls_are_all_released_when_the_calls_end(stack: Stack) -> None:
    """(f) Three answered calls hold three leases while they last, and none remains after."""
    t = stack.tenants["leases"]
    caller = Caller(
        stack.workdir,
        stack.kamailio,
        destination="02079460104",
        tenant=t.id,
        caller=t.number,
        calls=3,
        hold_ms=2000,
    )
    try:
        wait_for(
            "three calls to hold leases",
            lambda: len(stack.callwarden.leases(t.id, stack.key)) == 3,
            timeout_s=5,
        )
    finally:
        calls = caller.wait()

    assert len(calls.answered) == 3
    stack.assert_no_leases("leases")


@pytest.fixture
def backstop_stack(tmp_path: Path) -> Iterator[Stack]:
    """A stack of its own, since its test stops callwarden."""
    capped = PlanLimits(
        concurrent_calls_per_tenant=2,
        attempts_per_second=None,
        attempts_per_minute=None,
        calls_per_destination_per_day=None,
    )
    rated = PlanLimits(
        concurrent_calls_per_tenant=50,
        attempts_per_second=2,
        attempts_per_minute=None,
        calls_per_destination_per_day=None,
    )
    yield from _start(tmp_path, {"capped": capped, "suspended": OPEN, "rated": rated})


def test_e_with_callwarden_hung_or_stopped_kamailio_backstops_apply_and_emergency_calls_route(
    backstop_stack: Stack,
) -> None:
    """(e) The tables callwarden published keep working without it: the suspended tenant is
    refused (GOV-2), the capped tenant gets 2 calls at once (LIM-2), the rated one 2 attempts a
    second (LIM-5), and 112 connects; both while callwarden does not answer (the verdict wait
    runs out) and after it has stopped."""
    s = backstop_stack
    suspended, capped = s.tenants["suspended"].id, s.tenants["capped"].id
    s.callwarden.api(
        "POST",
        f"/v1/tenants/{suspended}/suspend",
        s.key,
        {"reason": "unpaid invoices", "clause_ids": ["LIM-1"]},
    )
    wait_for(
        "the backstop tables to be published",
        lambda: (
            s.kamailio.htable("cw_suspended", suspended) == "LIM-1,GOV-2"
            and s.kamailio.htable("cw_limits", f"{capped}::calls") == 2
        ),
        timeout_s=5,
    )

    def check_backstops() -> None:
        refused = s.calls("suspended", "02079460105")
        assert refused.statuses() == {403: 1}
        assert "GOV-2" in refused.refused[0].reason
        emergency = s.calls("suspended", "112", hold_ms=500)
        assert len(emergency.answered) == 1
        burst = s.calls("capped", "02079460106", calls=6, rate=200, hold_ms=2000)
        assert len(burst.answered) == 2
        assert burst.statuses() == {486: 4}
        assert all("LIM-2" in call.reason for call in burst.refused)
        # 2 attempts per second (LIM-5): of 6 placed within a few milliseconds, 2 pass, or up
        # to 4 when the burst happens to straddle the pipe's one-second boundary.
        rated = s.calls("rated", "02079460107", calls=6, rate=1000, hold_ms=300)
        assert 2 <= len(rated.answered) <= 4
        assert set(rated.statuses()) == {503}
        assert all("LIM-5" in call.reason for call in rated.refused)

    # Hung: the connection is up but nothing answers; each attempt waits CW_WAIT_MS.
    os.kill(s.callwarden.process.proc.pid, signal.SIGSTOP)
    try:
        check_backstops()
    finally:
        os.kill(s.callwarden.process.proc.pid, signal.SIGCONT)

    # Stopped: Kamailio sees the connection close and goes to the backstops at once.
    s.callwarden.stop()
    wait_for("Kamailio to notice callwarden is gone", lambda: s.kamailio.evapi_links() == 0)
    check_backstops()
