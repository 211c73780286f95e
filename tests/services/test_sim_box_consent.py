"""A tenant's written SIM-box consent (FRD-6): stored, audited, and honoured by surveillance from
the tenant's next record; withdrawn, the simbox detector watches the tenant again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.world import World, build_world

from callwarden.core.errors import InvalidInput, NotFound
from callwarden.core.usage.record import CallRecord, Direction, Disposition
from callwarden.platform import Platform
from callwarden.services.cases import CaseQuery
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import AuditQuery, PageRequest


@pytest.fixture
def seeded(platform: Platform) -> World:
    """The two-tenant world on each database."""
    return build_world(platform)


def gateway_calls(world: World, first: int, start: datetime) -> list[CallRecord]:
    """A GSM gateway on tenant 0's trunk: outbound only, 40 SIM numbers in turn, short calls
    of equal length."""
    calls = []
    for n in range(first, first + 60):
        started = start + timedelta(seconds=30 * (n - first))
        calls.append(
            CallRecord(
                call_id=f"gw-{n}",
                tenant_id=world.tenants[0],
                trunk_id="gw-1",
                direction=Direction.OUTBOUND,
                caller=f"+447400{100000 + n % 40}",
                callee=f"+4420794{60000 + n:05d}",
                started_at=started,
                answered_at=started + timedelta(seconds=3),
                ended_at=started + timedelta(seconds=43),
                duration_s=40,
                disposition=Disposition.ANSWERED,
                source_format="callwarden-json",
            )
        )
    return calls


def simbox_cases(world: World) -> int:
    page = world.platform.surveillance.cases.list(
        SYSTEM, CaseQuery(detector="simbox"), PageRequest(limit=100)
    )
    return len(page.items)


def test_a_recorded_consent_is_kept_on_the_tenant_and_audited_under_frd_6(
    seeded: World,
) -> None:
    gov = seeded.platform.governance
    tid = seeded.tenants[0]
    gov.record_sim_box_consent(SYSTEM, tid, reference="  Annex 4 to contract 2026-117 ")
    consent = gov.get_tenant(SYSTEM, tid).sim_box_consent
    assert consent is not None and consent.reference == "Annex 4 to contract 2026-117"
    gov.withdraw_sim_box_consent(SYSTEM, tid, reason="the gateway contract ended")
    assert gov.get_tenant(SYSTEM, tid).sim_box_consent is None
    entries = seeded.platform.audit.list(
        SYSTEM, AuditQuery(subject_type="tenant"), PageRequest(limit=100)
    ).items
    kept = [e for e in entries if e.action.startswith("tenant.sim_box_consent")]
    assert sorted(e.action for e in kept) == [
        "tenant.sim_box_consent.recorded",
        "tenant.sim_box_consent.withdrawn",
    ]
    assert all(e.clause_ids == ("FRD-6",) for e in kept)


def test_a_consent_needs_a_reference(seeded: World) -> None:
    with pytest.raises(InvalidInput, match="reference"):
        seeded.platform.governance.record_sim_box_consent(
            SYSTEM, seeded.tenants[0], reference="   "
        )


def test_withdrawing_a_consent_that_is_not_on_record_is_not_found(seeded: World) -> None:
    with pytest.raises(NotFound, match="no SIM-box consent"):
        seeded.platform.governance.withdraw_sim_box_consent(
            SYSTEM, seeded.tenants[0], reason="none was given"
        )


def test_surveillance_leaves_a_consenting_tenant_alone_and_watches_it_again_once_withdrawn(
    seeded: World,
) -> None:
    platform = seeded.platform
    tid = seeded.tenants[0]
    start = datetime.now(UTC) - timedelta(hours=3)
    platform.governance.record_sim_box_consent(SYSTEM, tid, reference="Annex 4")
    platform.surveillance.process(gateway_calls(seeded, 0, start))
    assert simbox_cases(seeded) == 0
    platform.governance.withdraw_sim_box_consent(SYSTEM, tid, reason="contract ended")
    platform.surveillance.process(gateway_calls(seeded, 100, start + timedelta(hours=1)))
    assert simbox_cases(seeded) == 1
