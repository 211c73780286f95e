"""Surveillance: findings become cases, enforce-mode findings take automatic actions that are
audited, reversible and may expire, and injected fraud suspends a tenant that the next admission
refuses (FRD-3, GOV-2)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st
from tests.world import World, build_world

from callwarden.adapters.store.cases import SqlCaseStore
from callwarden.adapters.store.tables import Base
from callwarden.adapters.stream.nats import JetStreamStream
from callwarden.core.admission.attempt import CallAttempt
from callwarden.core.admission.decision import Decision
from callwarden.core.admission.policy import RuleMode, RulePolicy
from callwarden.core.cases import (
    MAX_CASE_EVIDENCE,
    ActionPolicy,
    ActionStatus,
    Case,
    CaseAction,
    CaseStatus,
    merge_finding,
    open_case,
)
from callwarden.core.detectors import (
    DetectorConfig,
    DetectorFinding,
    DetectorPolicy,
    KeyKind,
    Severity,
    SuggestedAction,
)
from callwarden.core.errors import Conflict
from callwarden.core.model import NumberStatus, TenantStatus, ThrottleRates, UserStatus
from callwarden.core.usage.record import CallRecord, Direction, Disposition
from callwarden.platform import Platform
from callwarden.services.admission import AdmissionService
from callwarden.services.cases import CaseQuery
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import AuditQuery, PageRequest
from callwarden.services.surveillance import Surveillance, action_target
from callwarden.settings import Settings

RATES = "prefix,description,rate,connection fee,increments,effective date,currency\n"
PREMIUM = "+44909879"
"""A UK premium-rate range (09 numbers), priced at 1.50 EUR a minute by the test deck."""
ENFORCE_IRSF = DetectorConfig(defaults={"irsf": DetectorPolicy(mode=RuleMode.ENFORCE)})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def seeded(platform: Platform) -> World:
    """The two-tenant world with a deck pricing the premium range on its plan."""
    world = build_world(platform)
    deck = platform.rating.create_deck(SYSTEM, name="Carrier", currency="EUR")
    platform.rating.import_rates(
        SYSTEM,
        deck.id,
        [
            RATES,
            "44,UK,0.01,0,60/60,2024-01-01,EUR\n",
            "44909,UK premium,1.50,0,60/60,2024-01-01,EUR\n",
        ],
    )
    platform.rating.assign(SYSTEM, "plan", world.plan_id, deck.id)
    return world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The seeded world on the embedded default (SQLite, in-process stream)."""
    platform = Platform.build(
        Settings(database_url=f"sqlite:///{tmp_path / 'cw.db'}", api_key_cache_ttl_s=0)
    )
    yield seeded(platform)
    anyio.run(platform.aclose)


def fraud(
    world: World, count: int, *, start: datetime | None = None, first: int = 0
) -> list[CallRecord]:
    """``count`` answered one-minute calls 10 s apart from tenant 0's admin and number to the
    premium range (scattered numbers): each scores 1.50 x 2 = 3, so the first is high and the
    third critical."""
    at = start or datetime.now(UTC) - timedelta(minutes=30)
    calls = []
    for n in range(first, first + count):
        started = at + timedelta(seconds=10 * n)
        calls.append(
            CallRecord(
                call_id=f"fraud-{n}",
                tenant_id=world.tenants[0],
                user_id=world.admins[0],
                direction=Direction.OUTBOUND,
                caller="+442079460000",
                callee=f"{PREMIUM}{n * 397 % 10_000:04d}",  # scattered, not a sequential scan
                started_at=started,
                answered_at=started + timedelta(seconds=2),
                ended_at=started + timedelta(seconds=62),
                duration_s=60,
                disposition=Disposition.ANSWERED,
                source_format="callwarden-json",
            )
        )
    return calls


def surveillance(
    world: World, config: DetectorConfig | None = None, actions: ActionPolicy | None = None
) -> Surveillance:
    engine = world.platform.surveillance
    engine.configure(config or DetectorConfig(), actions or ActionPolicy())
    return engine


def cases(world: World, **query: object) -> list[Case]:
    found = world.platform.surveillance.cases.list(
        SYSTEM,
        CaseQuery(**query),  # type: ignore[arg-type]
        PageRequest(limit=100),
    )
    return found.items


def only_case(world: World) -> Case:
    (case,) = cases(world)
    return case


def audit_actions(world: World, subject_type: str) -> list[str]:
    page = world.platform.audit.list(
        SYSTEM, AuditQuery(subject_type=subject_type), PageRequest(limit=500)
    )
    return [e.action for e in page.items]


def attempt(world: World, n: int, destination: str) -> CallAttempt:
    return CallAttempt(
        call_id=f"next-{n}",
        destination=destination,
        direction=Direction.OUTBOUND,
        at=datetime.now(UTC).timestamp(),
        tenant_id=world.tenants[0],
        user_id=world.admins[0],
        caller="+442079460000",
    )


def allow_premium(world: World) -> None:
    """Let tenant 0 call premium-rate numbers (its plan's number-type rule only observes)."""
    world.platform.admission_config.set_policy(
        SYSTEM, "tenant", world.tenants[0], "destination_type", RulePolicy(mode=RuleMode.OBSERVE)
    )


# -- cases -------------------------------------------------------------------------------------


def test_a_finding_opens_a_case_with_its_evidence_and_clause_ids(world: World) -> None:
    surveillance(world).process(fraud(world, 1))
    case = only_case(world)
    assert (case.detector, case.tenant_id, case.status) == ("irsf", world.tenants[0], "open")
    assert case.clause_ids == ("FRD-1", "FRD-2")
    assert (case.key_kind, case.key, case.severity) == (KeyKind.DESTINATION, "+44", Severity.HIGH)
    assert case.evidence.statistic == "cost_weighted_score"
    assert case.evidence.threshold == 3.0 and case.evidence.value >= 3.0
    assert case.evidence.call_ids == ("fraud-0",)
    assert case.finding_count == 1 and case.first_seen == case.last_seen
    assert "case.opened" in audit_actions(world, "case")


def test_observe_mode_opens_cases_and_takes_no_action(world: World) -> None:
    surveillance(world).process(fraud(world, 10))
    case = only_case(world)
    assert case.mode is RuleMode.OBSERVE and case.severity is Severity.CRITICAL
    assert case.actions == ()
    assert world.platform.admission_config.high_risk_prefixes(SYSTEM) == []
    assert world.platform.governance.get_tenant(SYSTEM, world.tenants[0]).status == "active"


def test_later_findings_for_the_same_key_update_the_active_case(world: World) -> None:
    engine = surveillance(world)
    engine.process(fraud(world, 1))
    opened = only_case(world)
    engine.process(fraud(world, 4, first=1))
    case = only_case(world)
    assert case.id == opened.id
    assert case.finding_count >= 2 and case.severity is Severity.CRITICAL
    assert case.last_seen > case.first_seen
    assert set(case.evidence.call_ids) >= {"fraud-0", "fraud-2"}


def test_an_acknowledged_case_is_still_updated_by_new_findings(world: World) -> None:
    engine = surveillance(world)
    engine.process(fraud(world, 1))
    opened = only_case(world)
    engine.cases.change_status(SYSTEM, opened.id, CaseStatus.ACKNOWLEDGED, "looking")
    engine.process(fraud(world, 4, first=1))
    case = only_case(world)
    assert case.id == opened.id and case.status is CaseStatus.ACKNOWLEDGED
    assert case.finding_count > 1


def test_a_finding_after_the_case_was_resolved_opens_a_new_case(world: World) -> None:
    engine = surveillance(world)
    engine.process(fraud(world, 1))
    first = only_case(world)
    engine.cases.change_status(SYSTEM, first.id, CaseStatus.RESOLVED, "customer confirmed")
    later = datetime.now(UTC) - timedelta(minutes=5)
    engine.process(fraud(world, 1, start=later, first=100))
    open_cases = cases(world, status=CaseStatus.OPEN)
    assert len(open_cases) == 1 and open_cases[0].id != first.id
    assert len(cases(world)) == 2


def test_a_closed_case_cannot_change_status_again(world: World) -> None:
    engine = surveillance(world)
    engine.process(fraud(world, 1))
    case = only_case(world)
    engine.cases.change_status(SYSTEM, case.id, CaseStatus.FALSE_POSITIVE, "test traffic")
    with pytest.raises(Conflict, match="false_positive"):
        engine.cases.change_status(SYSTEM, case.id, CaseStatus.ACKNOWLEDGED, "again")
    assert "case.false_positive" in audit_actions(world, "case")


# -- actions -----------------------------------------------------------------------------------


def test_enforce_mode_blocks_the_rated_range_and_admission_refuses_it(world: World) -> None:
    allow_premium(world)
    engine = surveillance(world, ENFORCE_IRSF)
    engine.process(fraud(world, 1))
    (action,) = only_case(world).actions
    assert (action.kind, action.target) == (SuggestedAction.BLOCK_PREFIX, "44909")
    assert action.status is ActionStatus.APPLIED and action.expires_at is None
    (entry,) = world.platform.admission_config.high_risk_prefixes(SYSTEM)
    assert entry.prefix == "44909" and entry.label is not None and action.case_id in entry.label
    refused = anyio.run(world.platform.admission.decide, attempt(world, 1, f"{PREMIUM}5555"))
    assert not refused.admit and refused.refused_by == "high_risk_prefix"
    assert refused.clause_ids == ("FRD-1",)
    assert "case.action_applied" in audit_actions(world, "case")
    assert "high_risk_prefixes.replaced" in audit_actions(world, "high_risk_prefixes")


def test_reverting_a_blocked_range_removes_it_from_the_list(world: World) -> None:
    allow_premium(world)
    engine = surveillance(world, ENFORCE_IRSF)
    engine.process(fraud(world, 1))
    case = only_case(world)
    after = engine.cases.revert_action(SYSTEM, case.id, case.actions[0].id, "legitimate campaign")
    (action,) = after.actions
    assert action.status is ActionStatus.REVERTED and action.ended_by == SYSTEM.user_id
    assert world.platform.admission_config.high_risk_prefixes(SYSTEM) == []
    assert (anyio.run(world.platform.admission.decide, attempt(world, 1, f"{PREMIUM}5555"))).admit
    assert "case.action_reverted" in audit_actions(world, "case")
    with pytest.raises(Conflict, match="not in force"):
        engine.cases.revert_action(SYSTEM, case.id, action.id, "twice")


def test_an_action_is_taken_once_per_case_kind_and_target(world: World) -> None:
    engine = surveillance(world, ENFORCE_IRSF)
    engine.process(fraud(world, 1))
    engine.process(fraud(world, 10, first=1))
    case = only_case(world)
    assert case.finding_count > 1
    assert [a.kind for a in case.actions] == [SuggestedAction.BLOCK_PREFIX]


def test_a_severity_bound_action_suspends_the_tenant_and_a_revert_reinstates_it(
    world: World,
) -> None:
    policy = ActionPolicy(by_severity={Severity.CRITICAL: SuggestedAction.SUSPEND_TENANT})
    engine = surveillance(world, ENFORCE_IRSF, policy)
    engine.process(fraud(world, 3))
    case = only_case(world)
    kinds = {a.kind: a for a in case.actions}
    assert set(kinds) == {SuggestedAction.BLOCK_PREFIX, SuggestedAction.SUSPEND_TENANT}
    suspend = kinds[SuggestedAction.SUSPEND_TENANT]
    gov = world.platform.governance
    tenant = gov.get_tenant(SYSTEM, world.tenants[0])
    assert tenant.status is TenantStatus.SUSPENDED and tenant.suspension is not None
    assert suspend.id in tenant.suspension.reason and case.id in tenant.suspension.reason
    assert tenant.suspension.clause_ids == ("FRD-1", "FRD-2", "FRD-3", "GOV-2")
    engine.cases.revert_action(SYSTEM, case.id, suspend.id, "fraud stopped at the source")
    assert gov.get_tenant(SYSTEM, world.tenants[0]).status is TenantStatus.ACTIVE
    assert "tenant.reinstated" in audit_actions(world, "tenant")


def test_a_revert_leaves_alone_a_suspension_a_person_made_since(world: World) -> None:
    policy = ActionPolicy(by_severity={Severity.HIGH: SuggestedAction.SUSPEND_TENANT})
    engine = surveillance(world, ENFORCE_IRSF, policy)
    engine.process(fraud(world, 1))
    case = only_case(world)
    gov, tenant_id = world.platform.governance, world.tenants[0]
    gov.reinstate_tenant(SYSTEM, tenant_id, reason="checked")
    gov.suspend_tenant(SYSTEM, tenant_id, reason="unpaid invoices", clause_ids=["GOV-2"])
    after = engine.cases.revert_action(SYSTEM, case.id, case.actions[0].id, "done")
    assert after.actions[0].status is ActionStatus.REVERTED
    assert after.actions[0].note is not None and "left as it is" in after.actions[0].note
    tenant = gov.get_tenant(SYSTEM, tenant_id)
    assert tenant.status is TenantStatus.SUSPENDED and tenant.suspension is not None
    assert tenant.suspension.reason == "unpaid invoices"


def test_a_suspend_user_action_suspends_the_calling_user_until_reverted(world: World) -> None:
    policy = ActionPolicy(by_severity={Severity.HIGH: SuggestedAction.SUSPEND_USER})
    engine = surveillance(world, ENFORCE_IRSF, policy)
    engine.process(fraud(world, 1))
    case = only_case(world)
    (action,) = case.actions
    gov, tenant_id, user_id = world.platform.governance, world.tenants[0], world.admins[0]
    assert action.target == user_id
    assert gov.get_user(SYSTEM, tenant_id, user_id).status is UserStatus.SUSPENDED
    refused = anyio.run(world.platform.admission.decide, attempt(world, 1, "+442079460123"))
    assert not refused.admit and "GOV-2" in refused.clause_ids
    engine.cases.revert_action(SYSTEM, case.id, action.id, "agent retrained")
    assert gov.get_user(SYSTEM, tenant_id, user_id).status is UserStatus.ACTIVE


def test_a_suspend_number_action_suspends_the_calling_number_until_reverted(
    world: World,
) -> None:
    policy = ActionPolicy(by_severity={Severity.HIGH: SuggestedAction.SUSPEND_NUMBER})
    engine = surveillance(world, ENFORCE_IRSF, policy)
    engine.process(fraud(world, 1))
    case = only_case(world)
    (action,) = case.actions
    gov, tenant_id = world.platform.governance, world.tenants[0]
    assert (action.target, action.reference) == (world.numbers[0], "+442079460000")
    assert gov.get_number(SYSTEM, tenant_id, world.numbers[0]).status is NumberStatus.SUSPENDED
    engine.cases.revert_action(SYSTEM, case.id, action.id, "number cleaned")
    assert gov.get_number(SYSTEM, tenant_id, world.numbers[0]).status is NumberStatus.ACTIVE


def test_an_action_with_an_expiry_is_undone_once_it_is_due(world: World) -> None:
    policy = ActionPolicy(expire_after_s={SuggestedAction.BLOCK_PREFIX: 600})
    engine = surveillance(world, ENFORCE_IRSF, policy)
    engine.process(fraud(world, 1))
    (action,) = only_case(world).actions
    assert action.expires_at is not None
    assert engine.runner.expire_due(action.expires_at - timedelta(seconds=1)) == []
    (expired,) = engine.runner.expire_due(action.expires_at)
    assert expired.status is ActionStatus.EXPIRED and expired.id == action.id
    assert world.platform.admission_config.high_risk_prefixes(SYSTEM) == []
    assert only_case(world).actions[0].status is ActionStatus.EXPIRED
    assert "case.action_expired" in audit_actions(world, "case")
    assert engine.runner.expire_due(action.expires_at + timedelta(days=1)) == []


def call_at(world: World, n: int, at: float, user: int | None = 0) -> CallAttempt:
    """An ordinary UK call of tenant 0 at epoch second ``at`` (a distinct destination each)."""
    return CallAttempt(
        call_id=f"rate-{n}",
        destination=f"+44207946{n:04d}",
        direction=Direction.OUTBOUND,
        at=at,
        tenant_id=world.tenants[0],
        user_id=world.admins[0] if user == 0 else (world.agents[0] if user == 1 else None),
        caller="+442079460000",
    )


def decide(world: World, *attempts: CallAttempt) -> list[Decision]:
    async def run() -> list[Decision]:
        return [await world.platform.admission.decide(a) for a in attempts]

    return anyio.run(run)


THROTTLE_ONE_A_SECOND = ActionPolicy(
    by_severity={Severity.HIGH: SuggestedAction.THROTTLE},
    throttle=ThrottleRates(attempts_per_second=1),
)


def test_a_throttle_action_refuses_attempts_past_the_tightened_rate_until_reverted(
    world: World,
) -> None:
    """A high IRSF finding in enforce mode bound to throttle: the tenant's next attempts are
    held to one a second (LIM-5, FRD-3) while the plan allows ten; a revert restores the plan's
    rate on the very next attempt."""
    engine = surveillance(world, ENFORCE_IRSF, THROTTLE_ONE_A_SECOND)
    engine.process(fraud(world, 1))
    case = only_case(world)
    (action,) = case.actions
    assert (action.kind, action.status) == (SuggestedAction.THROTTLE, ActionStatus.APPLIED)
    assert action.target == world.tenants[0] and action.reference is not None
    gov = world.platform.governance
    (throttle,) = gov.list_throttles(SYSTEM, world.tenants[0])
    assert throttle.id == action.reference and throttle.user_id is None
    assert throttle.clause_ids == ("FRD-1", "FRD-2", "LIM-5", "FRD-3")
    assert action.id in throttle.reason and throttle.expires_at is None
    now = datetime.now(UTC).timestamp()
    first, second = decide(world, call_at(world, 1, now), call_at(world, 2, now, user=None))
    assert first.admit
    assert not second.admit and second.refused_by == "attempt_rate"
    assert second.clause_ids == ("LIM-5", "FRD-3") and second.sip_status == 503
    assert "throttled" in second.reason and second.retry_after_s is not None
    engine.cases.revert_action(SYSTEM, case.id, action.id, "customer confirmed the campaign")
    (third,) = decide(world, call_at(world, 3, now, user=None))
    assert third.admit
    assert gov.list_throttles(SYSTEM, world.tenants[0]) == []
    assert "throttle.applied" in audit_actions(world, "throttle")
    assert "throttle.lifted" in audit_actions(world, "throttle")
    assert "case.action_reverted" in audit_actions(world, "case")


def test_a_throttle_action_with_an_expiry_stops_at_it_and_the_expiry_job_lifts_it(
    world: World,
) -> None:
    policy = replace(THROTTLE_ONE_A_SECOND, expire_after_s={SuggestedAction.THROTTLE: 600.0})
    engine = surveillance(world, ENFORCE_IRSF, policy)
    engine.process(fraud(world, 1))
    (action,) = only_case(world).actions
    assert action.expires_at is not None
    (throttle,) = world.platform.governance.list_throttles(SYSTEM, world.tenants[0])
    assert throttle.expires_at == action.expires_at
    now = datetime.now(UTC).timestamp()
    held = decide(world, call_at(world, 1, now, user=None), call_at(world, 2, now, user=None))
    assert [d.admit for d in held] == [True, False]
    later = action.expires_at.timestamp() + 1  # admission stops applying it at its expiry
    after = decide(world, call_at(world, 3, later, user=None), call_at(world, 4, later, user=None))
    assert [d.admit for d in after] == [True, True]
    (expired,) = engine.runner.expire_due(action.expires_at)
    assert expired.status is ActionStatus.EXPIRED
    assert world.platform.governance.list_throttles(SYSTEM, world.tenants[0]) == []
    assert "case.action_expired" in audit_actions(world, "case")


def test_a_revert_after_a_person_lifted_the_throttle_leaves_things_as_they_are(
    world: World,
) -> None:
    engine = surveillance(world, ENFORCE_IRSF, THROTTLE_ONE_A_SECOND)
    engine.process(fraud(world, 1))
    case = only_case(world)
    gov, tenant_id = world.platform.governance, world.tenants[0]
    (throttle,) = gov.list_throttles(SYSTEM, tenant_id)
    gov.lift_throttle(SYSTEM, tenant_id, throttle.id, reason="checked by the NOC")
    after = engine.cases.revert_action(SYSTEM, case.id, case.actions[0].id, "done")
    assert after.actions[0].status is ActionStatus.REVERTED
    assert after.actions[0].note is not None and "lifted already" in after.actions[0].note


def test_a_second_throttle_of_the_same_party_is_skipped(world: World) -> None:
    gov, tenant_id = world.platform.governance, world.tenants[0]
    held = gov.throttle(
        SYSTEM, tenant_id, rates=ThrottleRates(fraction=0.5), reason="flood from the PBX"
    )
    engine = surveillance(world, ENFORCE_IRSF, THROTTLE_ONE_A_SECOND)
    engine.process(fraud(world, 1))
    (action,) = only_case(world).actions
    assert action.status is ActionStatus.SKIPPED
    assert action.note is not None and held.id in action.note
    assert "case.action_skipped" in audit_actions(world, "case")


def test_a_user_throttle_holds_that_user_only(world: World) -> None:
    gov, tenant_id = world.platform.governance, world.tenants[0]
    gov.throttle(
        SYSTEM,
        tenant_id,
        user_id=world.agents[0],
        rates=ThrottleRates(attempts_per_second=1),
        reason="sequential dialing",
    )
    gov.activate_user(SYSTEM, tenant_id, world.agents[0])
    now = datetime.now(UTC).timestamp()
    agent = decide(world, call_at(world, 1, now, user=1), call_at(world, 2, now, user=1))
    admin = decide(world, call_at(world, 3, now, user=0), call_at(world, 4, now, user=0))
    assert [d.admit for d in agent] == [True, False]
    assert agent[1].clause_ids == ("LIM-5", "FRD-3")
    assert [d.admit for d in admin] == [True, True]


def test_another_admission_instance_learns_of_a_throttle_from_the_change_feed(
    world: World,
) -> None:
    platform = world.platform
    other = AdmissionService(platform.store, platform.counters, platform.admission.numbering)
    other.poll_changes()
    now = datetime.now(UTC).timestamp()

    async def two(first: int) -> list[bool]:
        return [
            (await other.decide(call_at(world, first + i, now, user=None))).admit for i in (0, 1)
        ]

    assert anyio.run(two, 0) == [True, True]
    throttle = platform.governance.throttle(
        SYSTEM, world.tenants[0], rates=ThrottleRates(attempts_per_second=1), reason="flood"
    )
    assert other.poll_changes() == 1
    assert anyio.run(two, 10) == [True, False]  # one a second, on the throttle's own keys
    platform.governance.lift_throttle(SYSTEM, world.tenants[0], throttle.id, reason="over")
    assert other.poll_changes() == 1
    assert anyio.run(two, 20) == [True, True]


def test_a_throttle_targets_the_user_a_finding_is_about_else_the_tenant(world: World) -> None:
    about_user = finding(world.tenants[0], key_kind=KeyKind.USER, key=world.agents[0])
    about_range = finding(world.tenants[0])
    record = fraud(world, 1)[0]
    ctx = world.platform.surveillance.context.event(record)
    assert action_target(SuggestedAction.THROTTLE, about_user, ctx).target == world.agents[0]
    assert action_target(SuggestedAction.THROTTLE, about_range, ctx).target == world.tenants[0]


def test_findings_below_the_action_threshold_take_no_action(world: World) -> None:
    policy = ActionPolicy(threshold=Severity.CRITICAL)
    engine = surveillance(world, ENFORCE_IRSF, policy)
    engine.process(fraud(world, 1))
    assert only_case(world).actions == ()
    engine.process(fraud(world, 2, first=1))
    assert [a.kind for a in only_case(world).actions] == [SuggestedAction.BLOCK_PREFIX]


# -- end to end --------------------------------------------------------------------------------


async def fraud_until_suspended(world: World, admission: AdmissionService) -> list[Decision]:
    """Run surveillance, ingest an IRSF burst, wait for the tenant's suspension, then ask
    ``admission`` about an ordinary call and an emergency call."""
    platform = world.platform
    policy = ActionPolicy(by_severity={Severity.CRITICAL: SuggestedAction.SUSPEND_TENANT})
    engine = surveillance(world, ENFORCE_IRSF, policy)
    assert (await admission.decide(attempt(world, 0, "+442079460123"))).admit
    await engine.start()  # subscribed before the records are published; run() keeps it
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(engine.run)
        result = await platform.usage.ingest_records(fraud(world, 5))
        assert result.stored == 5
        with anyio.fail_after(10):
            while True:
                tenant = platform.governance.get_tenant(SYSTEM, world.tenants[0])
                if tenant.status is TenantStatus.SUSPENDED:
                    break
                await anyio.sleep(0.02)
        if admission is not platform.admission:  # another instance reads the change feed
            with anyio.fail_after(10):
                while not await anyio.to_thread.run_sync(admission.poll_changes):
                    await anyio.sleep(platform.settings.change_poll_interval_s)
        refused = await admission.decide(attempt(world, 1, "+442079460123"))
        emergency = await admission.decide(attempt(world, 2, "999"))
        tasks.cancel_scope.cancel()
    return [refused, emergency]


@pytest.mark.anyio
async def test_injected_fraud_suspends_the_tenant_and_the_next_admission_refuses(
    world: World,
) -> None:
    """IRSF usage ingested through the usage service reaches surveillance over the stream; the
    critical finding suspends the tenant; the next ordinary call is refused under GOV-2 and an
    emergency call is still admitted."""
    platform = world.platform
    refused, emergency = await fraud_until_suspended(world, platform.admission)
    assert not refused.admit and "GOV-2" in refused.clause_ids
    assert emergency.admit and emergency.emergency
    case = only_case(world)
    suspend = next(a for a in case.actions if a.kind is SuggestedAction.SUSPEND_TENANT)
    assert suspend.status is ActionStatus.APPLIED and suspend.target == world.tenants[0]
    tenant = platform.governance.get_tenant(SYSTEM, world.tenants[0])
    assert tenant.suspension is not None and suspend.id in tenant.suspension.reason
    audit = platform.audit.list(
        SYSTEM, AuditQuery(tenant_id=world.tenants[0], action="tenant.suspended"), PageRequest()
    ).items
    assert [e.actor for e in audit] == ["system"]


@pytest.mark.anyio
@pytest.mark.postgres
@pytest.mark.nats
async def test_on_the_scaled_out_path_another_instance_refuses_the_suspended_tenant(
    postgres_url: str,
) -> None:
    """The same fraud over PostgreSQL and NATS JetStream: a second admission instance, which
    learns of changes only from the change feed, refuses the tenant's next call."""
    tag = uuid.uuid4().hex[:12]
    platform = Platform.build(
        Settings(
            database_url=postgres_url,
            nats_url="nats://127.0.0.1:4222",
            nats_stream=f"CWTEST_{tag}",
            nats_subject_prefix=f"cwtest{tag}.usage",
        )
    )
    try:
        world = seeded(platform)
        other = AdmissionService(platform.store, platform.counters, platform.admission.numbering)
        other.poll_changes()
        refused, emergency = await fraud_until_suspended(world, other)
        assert not refused.admit and "GOV-2" in refused.clause_ids
        assert emergency.admit and emergency.emergency
    finally:
        stream = platform.stream
        assert isinstance(stream, JetStreamStream)
        await stream.delete()
        await platform.aclose()


CASE_TABLES = {"cases", "case_actions"}


def test_the_migration_creates_exactly_the_case_tables_of_the_model(platform: Platform) -> None:
    with platform.store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if any(t in repr(d) for t in CASE_TABLES)] == []


def finding(tenant_id: str, **changes: object) -> DetectorFinding:
    base = DetectorFinding(
        detector="irsf",
        clause_ids=("FRD-1", "FRD-2"),
        tenant_id=tenant_id,
        key_kind=KeyKind.DESTINATION,
        key="+371",
        severity=Severity.HIGH,
        score=1.5,
        window="5m",
        statistic="cost_weighted_score",
        value=4.5,
        threshold=3.0,
        at=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
        summary="burst",
        baseline=None,
        evidence=("c1", "c2"),
        action=SuggestedAction.BLOCK_PREFIX,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_the_case_store_keeps_cases_and_actions_as_saved(platform: Platform) -> None:
    store = SqlCaseStore(platform.store.engine)
    now = datetime(2026, 3, 2, 10, 1, tzinfo=UTC)
    case = open_case("cs_0000000000000001", finding("tn_a"), now)
    later = merge_finding(case, finding("tn_a", severity=Severity.CRITICAL, evidence=("c3",)), now)
    action = CaseAction(
        id="ca_0000000000000001",
        case_id=case.id,
        kind=SuggestedAction.BLOCK_PREFIX,
        target="37167",
        status=ActionStatus.APPLIED,
        created_at=now,
        severity=Severity.CRITICAL,
        expires_at=now + timedelta(hours=1),
        reference="case cs_0000000000000001 (irsf)",
    )
    with store.transaction() as tx:
        tx.add_case(case)
        tx.save_case(later)
        tx.add_action(action)
    with store.transaction() as tx:
        assert tx.get_case(case.id) == replace(later, actions=(action,))
        assert tx.active_case("tn_a", "irsf", "destination", "+371") == replace(
            later, actions=(action,)
        )
        assert tx.active_case("tn_b", "irsf", "destination", "+371") is None
        assert tx.due_actions(now + timedelta(minutes=59), 10) == []
        assert tx.due_actions(now + timedelta(hours=1), 10) == [action]
        assert tx.list_cases(CaseQuery(status=CaseStatus.RESOLVED), PageRequest()).total == 0
        assert tx.list_cases(CaseQuery(tenant_id="tn_a"), PageRequest()).items[0].id == case.id


@given(
    severities=st.lists(st.sampled_from(list(Severity)), min_size=1, max_size=12),
    ids=st.lists(st.text("abc", min_size=1, max_size=3), max_size=80),
)
def test_a_merged_case_holds_the_highest_severity_and_the_latest_call_ids(
    severities: list[Severity], ids: list[str]
) -> None:
    now = datetime(2026, 3, 2, 10, 1, tzinfo=UTC)
    case = open_case("cs_1", finding("tn_a", severity=severities[0]), now)
    for n, severity in enumerate(severities[1:], start=1):
        chunk = tuple(ids[n * 5 : n * 5 + 5])
        case = merge_finding(case, finding("tn_a", severity=severity, evidence=chunk), now)
    assert case.severity.rank == max(s.rank for s in severities)
    assert case.finding_count == len(severities)
    assert len(case.evidence.call_ids) <= MAX_CASE_EVIDENCE
    assert len(set(case.evidence.call_ids)) == len(case.evidence.call_ids)
