"""Surveillance configuration stored by operators: detector policies per default, plan and
tenant and the action policy are validated, audited with before and after, and put in force
by surveillance without a restart (in this process at once, in others on their next re-read)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from tests.world import World, build_world

from callwarden.core.admission.policy import RuleMode
from callwarden.core.cases import ActionPolicy, ActionStatus
from callwarden.core.detectors import DetectorConfig, DetectorPolicy, IrsfParams
from callwarden.core.detectors.base import Severity, SuggestedAction
from callwarden.core.errors import Forbidden, InvalidInput, NotFound
from callwarden.core.model import Principal, ThrottleRates, UserRole
from callwarden.core.usage.record import CallRecord, Direction, Disposition
from callwarden.platform import Platform
from callwarden.services.cases import CaseQuery
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import AuditQuery, PageRequest
from callwarden.services.surveillance import Surveillance, overlay
from callwarden.settings import Settings

RATES = "prefix,description,rate,connection fee,increments,effective date,currency\n"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Two tenants on a plan whose deck prices UK premium numbers at 1.50 EUR a minute."""
    platform = Platform.build(
        Settings(database_url=f"sqlite:///{tmp_path / 'cw.db'}", api_key_cache_ttl_s=0)
    )
    world = build_world(platform)
    deck = platform.rating.create_deck(SYSTEM, name="Carrier", currency="EUR")
    platform.rating.import_rates(
        SYSTEM, deck.id, [RATES, "44909,UK premium,1.50,0,60/60,2024-01-01,EUR\n"]
    )
    platform.rating.assign(SYSTEM, "plan", world.plan_id, deck.id)
    yield world
    anyio.run(platform.aclose)


def premium_calls(world: World, tenant: int, count: int, first: int = 0) -> list[CallRecord]:
    """One-minute answered calls to UK premium numbers: each scores 3, a high IRSF finding."""
    at = datetime.now(UTC) - timedelta(minutes=30)
    return [
        CallRecord(
            call_id=f"t{tenant}-{n}",
            tenant_id=world.tenants[tenant],
            user_id=world.admins[tenant],
            direction=Direction.OUTBOUND,
            caller=None,
            callee=f"+44909879{n * 397 % 10_000:04d}",
            started_at=at + timedelta(seconds=10 * n),
            answered_at=at + timedelta(seconds=10 * n + 2),
            ended_at=at + timedelta(seconds=10 * n + 62),
            duration_s=60,
            disposition=Disposition.ANSWERED,
            source_format="callwarden-json",
        )
        for n in range(first, first + count)
    ]


def cases_of(world: World, tenant: int) -> list[object]:
    query = CaseQuery(tenant_id=world.tenants[tenant])
    return list(world.platform.surveillance.cases.list(SYSTEM, query, PageRequest()).items)


def audit(world: World, action: str) -> list[dict[str, object]]:
    page = world.platform.audit.list(SYSTEM, AuditQuery(action=action), PageRequest(limit=50))
    return [dict(e.details) for e in page.items]


ENFORCE = DetectorPolicy(mode=RuleMode.ENFORCE)


def test_a_stored_default_policy_is_in_force_on_the_next_record(world: World) -> None:
    engine = world.platform.surveillance
    config = engine.config
    engine.process(premium_calls(world, 0, 1))
    (observed,) = engine.process(premium_calls(world, 1, 1))
    assert observed.mode is RuleMode.OBSERVE and observed.actions == ()
    config.set_policy(SYSTEM, "default", "", "irsf", ENFORCE)
    (case,) = engine.process(premium_calls(world, 0, 3, first=10))
    assert case.mode is RuleMode.ENFORCE
    assert [a.kind for a in case.actions] == [SuggestedAction.BLOCK_PREFIX]
    (entry,) = audit(world, "detector_policy.set")
    assert entry["detector"] == "irsf" and entry["before"] is None
    assert isinstance(entry["after"], dict) and entry["after"]["mode"] == "enforce"


def test_a_tenant_policy_beats_the_plan_policy_which_beats_the_default(world: World) -> None:
    config = world.platform.surveillance.config
    config.set_policy(SYSTEM, "default", "", "irsf", ENFORCE)
    quiet = DetectorPolicy(mode=RuleMode.ENFORCE, params=IrsfParams(fast_score=50.0))
    config.set_policy(SYSTEM, "plan", world.plan_id, "irsf", quiet)
    config.set_policy(SYSTEM, "tenant", world.tenants[1], "irsf", ENFORCE)
    world.platform.surveillance.process(premium_calls(world, 0, 3) + premium_calls(world, 1, 3))
    assert cases_of(world, 0) == []  # the plan's threshold of 50 is far away
    assert len(cases_of(world, 1)) == 1  # the tenant's own policy has the default threshold
    config.delete_policy(SYSTEM, "plan", world.plan_id, "irsf")
    world.platform.surveillance.process(premium_calls(world, 0, 1, first=50))
    assert len(cases_of(world, 0)) == 1
    assert config.policies(SYSTEM, "plan", world.plan_id) == {}
    assert audit(world, "detector_policy.deleted")[0]["detector"] == "irsf"


def test_a_detector_turned_off_for_a_tenant_opens_no_case(world: World) -> None:
    config = world.platform.surveillance.config
    config.set_policy(SYSTEM, "tenant", world.tenants[0], "irsf", DetectorPolicy(RuleMode.OFF))
    world.platform.surveillance.process(premium_calls(world, 0, 3))
    assert cases_of(world, 0) == []


def test_an_allowlisted_destination_is_not_seen_by_the_detector(world: World) -> None:
    config = world.platform.surveillance.config
    policy = config.build_policy("irsf", mode="observe", params=None, allow_destinations=["44909"])
    config.set_policy(SYSTEM, "default", "", "irsf", policy)
    world.platform.surveillance.process(premium_calls(world, 0, 3))
    assert cases_of(world, 0) == []


def test_the_stored_action_policy_replaces_the_one_in_code(world: World) -> None:
    engine = world.platform.surveillance
    engine.configure(DetectorConfig(defaults={"irsf": ENFORCE}), ActionPolicy())
    policy = ActionPolicy(
        by_severity={Severity.HIGH: SuggestedAction.THROTTLE},
        expire_after_s={SuggestedAction.THROTTLE: 3600.0},
        throttle=ThrottleRates(fraction=0.2),
    )
    engine.config.set_action_policy(SYSTEM, policy)
    assert engine.config.action_policy(SYSTEM) == policy
    (case,) = engine.process(premium_calls(world, 0, 1))
    (action,) = case.actions
    assert action.kind is SuggestedAction.THROTTLE and action.status is ActionStatus.APPLIED
    (throttle,) = world.platform.governance.list_throttles(SYSTEM, world.tenants[0])
    assert throttle.rates == ThrottleRates(fraction=0.2) and throttle.expires_at is not None
    (entry,) = audit(world, "action_policy.set")
    assert isinstance(entry["after"], dict) and entry["after"]["threshold"] == "high"
    engine.config.reset_action_policy(SYSTEM)
    assert engine.config.action_policy(SYSTEM) == ActionPolicy()
    with pytest.raises(NotFound):
        engine.config.reset_action_policy(SYSTEM)


def test_another_process_reads_stored_changes_on_its_next_refresh(world: World) -> None:
    """A second engine learns of a change only by re-reading (here every record: a TTL of 0),
    as a process on another machine does every ``facts_ttl_s``."""
    platform = world.platform
    other = Surveillance(
        platform.governance,
        platform.admission_config,
        platform.rating,
        platform.stream,
        platform.surveillance.store,
        platform.admission.numbering,
        facts_ttl_s=0.0,
    )
    (before,) = other.process(premium_calls(world, 0, 1))
    assert before.mode is RuleMode.OBSERVE
    platform.surveillance.config.set_policy(SYSTEM, "tenant", world.tenants[0], "irsf", ENFORCE)
    (after,) = other.process(premium_calls(world, 0, 3, first=20))
    assert after.mode is RuleMode.ENFORCE


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"bogus": 1}, "params.bogus"),
        ({"fast_score": -1.0}, "params.fast_score"),
        ({"fast_score": "high"}, "params.fast_score"),
        ({"learning_calls": 2.5}, "params.learning_calls"),
        ({"fast_score": float("nan")}, "params.fast_score"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(
    world: World, params: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        world.platform.surveillance.config.build_policy("irsf", mode="enforce", params=params)
    assert refused.value.field == field


def test_unknown_detectors_scopes_and_allowlist_entries_are_refused(world: World) -> None:
    config = world.platform.surveillance.config
    with pytest.raises(InvalidInput) as unknown:
        config.build_policy("nope", mode="observe", params=None)
    assert unknown.value.field == "detector"
    with pytest.raises(InvalidInput) as user:
        config.build_policy("irsf", mode="observe", params=None, allow_users=["bob"])
    assert user.value.field == "allow_users"
    with pytest.raises(NotFound):
        config.set_policy(SYSTEM, "plan", "pl_0000000000000000", "irsf", ENFORCE)
    with pytest.raises(InvalidInput):
        config.set_policy(SYSTEM, "campaign", "x", "irsf", ENFORCE)


def test_only_operators_change_the_configuration(world: World) -> None:
    config = world.platform.surveillance.config
    admin = Principal(world.admins[0], world.tenants[0], UserRole.TENANT_ADMIN)
    with pytest.raises(Forbidden):
        config.set_policy(admin, "tenant", world.tenants[0], "irsf", ENFORCE)
    with pytest.raises(Forbidden):
        config.set_action_policy(admin, ActionPolicy())
    with pytest.raises(Forbidden):
        config.policies(admin, "plan", world.plan_id)
    assert config.policies(admin, "tenant", world.tenants[0]) == {}
    with pytest.raises(Forbidden):
        config.policies(admin, "tenant", world.tenants[1])


def test_a_stored_policy_overlays_the_code_policy_of_its_scope_only() -> None:
    code = DetectorConfig(
        defaults={"irsf": ENFORCE, "wangiri": ENFORCE},
        plans={"pl_a": {"irsf": ENFORCE}},
        tenants={"tn_a": {"wangiri": ENFORCE}},
    )
    off = DetectorPolicy(RuleMode.OFF)
    stored = DetectorConfig(defaults={"irsf": off}, tenants={"tn_a": {"irsf": off}})
    merged = overlay(code, stored)
    assert merged.defaults == {"irsf": off, "wangiri": ENFORCE}
    assert merged.plans == {"pl_a": {"irsf": ENFORCE}}
    assert merged.tenants == {"tn_a": {"wangiri": ENFORCE, "irsf": off}}
