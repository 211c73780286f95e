"""Detector policies, the action policy and throttles in the store, on SQLite and on the real
PostgreSQL server: exact round trips, one policy per detector and scope, and a migration that
creates exactly the tables of the model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from callwarden.adapters.store.tables import Base
from callwarden.core.admission.policy import RuleMode
from callwarden.core.cases import ActionPolicy
from callwarden.core.detectors import DetectorConfig, DetectorPolicy, IrsfParams, WangiriParams
from callwarden.core.detectors.base import Severity, SuggestedAction
from callwarden.core.model import (
    Billing,
    Channel,
    PlanLimits,
    Throttle,
    ThrottleRates,
)
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TABLES = {"detector_policies", "action_policies", "throttles"}


def test_the_migration_creates_exactly_the_tables_of_the_model(platform: Platform) -> None:
    with platform.store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if any(t in repr(d) for t in TABLES)] == []


def test_detector_policies_round_trip_per_scope(platform: Platform) -> None:
    enforce = DetectorPolicy(
        mode=RuleMode.ENFORCE,
        params=IrsfParams(fast_score=4.25, learning_calls=7),
        allow_users=frozenset({"us_0123456789abcdef"}),
        allow_numbers=frozenset({"+442079460000", "0123456"}),
        allow_destinations=("44909", "371"),
    )
    quiet = DetectorPolicy(mode=RuleMode.OFF)
    wangiri = DetectorPolicy(mode=RuleMode.OBSERVE, params=WangiriParams())
    with platform.store.transaction() as tx:
        tx.set_detector_policy("default", "", "irsf", enforce, AT)
        tx.set_detector_policy("plan", "pl_a", "irsf", quiet, AT)
        tx.set_detector_policy("tenant", "tn_a", "wangiri", wangiri, AT)
    with platform.store.transaction() as tx:
        assert tx.get_detector_policies("default", "") == {"irsf": enforce}
        assert tx.get_detector_policies("plan", "pl_a") == {"irsf": quiet}
        assert tx.get_detector_policies("tenant", "tn_b") == {}
        assert tx.detector_config() == DetectorConfig(
            defaults={"irsf": enforce},
            plans={"pl_a": {"irsf": quiet}},
            tenants={"tn_a": {"wangiri": wangiri}},
        )


def test_setting_a_policy_again_replaces_it_and_deleting_drops_it(platform: Platform) -> None:
    first = DetectorPolicy(mode=RuleMode.ENFORCE, params=IrsfParams(slow_score=20.0))
    second = DetectorPolicy(mode=RuleMode.OBSERVE)
    with platform.store.transaction() as tx:
        tx.set_detector_policy("tenant", "tn_a", "irsf", first, AT)
    with platform.store.transaction() as tx:
        tx.set_detector_policy("tenant", "tn_a", "irsf", second, AT + timedelta(minutes=1))
    with platform.store.transaction() as tx:
        assert tx.get_detector_policies("tenant", "tn_a") == {"irsf": second}
        assert tx.delete_detector_policy("tenant", "tn_a", "irsf")
        assert not tx.delete_detector_policy("tenant", "tn_a", "irsf")
        assert tx.get_detector_policies("tenant", "tn_a") == {}


def test_the_action_policy_round_trips_and_can_be_dropped(platform: Platform) -> None:
    policy = ActionPolicy(
        threshold=Severity.MEDIUM,
        by_severity={
            Severity.CRITICAL: SuggestedAction.SUSPEND_TENANT,
            Severity.HIGH: SuggestedAction.THROTTLE,
        },
        expire_after_s={SuggestedAction.THROTTLE: 1800.5, SuggestedAction.BLOCK_PREFIX: 86400.0},
        throttle=ThrottleRates(fraction=0.25, attempts_per_minute=20),
    )
    with platform.store.transaction() as tx:
        assert tx.get_action_policy() is None
        tx.set_action_policy(ActionPolicy(), AT)
        tx.set_action_policy(policy, AT)
    with platform.store.transaction() as tx:
        assert tx.get_action_policy() == policy
        assert tx.delete_action_policy()
    with platform.store.transaction() as tx:
        assert tx.get_action_policy() is None
        assert not tx.delete_action_policy()


def test_throttles_round_trip_and_are_listed_per_tenant(platform: Platform) -> None:
    gov = platform.governance
    plan = gov.create_plan(
        SYSTEM,
        name="Plan",
        billing=Billing.METERED,
        channels=[Channel.VOICE],
        currency="EUR",
        limits=PlanLimits(),
    )
    tenants = [
        gov.create_tenant(SYSTEM, name=f"T{i}", country="GB", timezone="UTC", plan_id=plan.id)
        for i in range(2)
    ]
    whole = Throttle(
        id="th_0000000000000001",
        tenant_id=tenants[0].id,
        user_id=None,
        rates=ThrottleRates(fraction=0.1),
        reason="case cs_1: robocall signature",
        clause_ids=("DIA-2", "LIM-5", "FRD-3"),
        at=AT,
        by="system",
    )
    one_user = Throttle(
        id="th_0000000000000002",
        tenant_id=tenants[0].id,
        user_id="us_0123456789abcdef",
        rates=ThrottleRates(attempts_per_second=2, attempts_per_minute=30),
        reason="sequential dialing",
        clause_ids=("DIA-5",),
        at=AT + timedelta(seconds=1),
        by="us_00000000000000aa",
        expires_at=AT + timedelta(hours=1),
    )
    with platform.store.transaction() as tx:
        tx.add_throttle(one_user)
        tx.add_throttle(whole)
    with platform.store.transaction() as tx:
        assert tx.get_throttle(one_user.id) == one_user
        assert tx.list_throttles(tenants[0].id) == [whole, one_user]
        assert tx.list_throttles(tenants[1].id) == []
        assert tx.delete_throttle(whole.id)
        assert not tx.delete_throttle(whole.id)
        assert tx.get_throttle(whole.id) is None
