"""The detector set: modes, per-plan and per-tenant parameters and allowlists, configuration
errors; and the context detectors read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callwarden.core.admission.policy import RuleMode
from callwarden.core.detectors import (
    DetectorConfig,
    DetectorContext,
    DetectorPolicy,
    DetectorSet,
    IrsfParams,
    RobocallParams,
    SequentialDialingDetector,
    SequentialParams,
    TenantFacts,
    default_detectors,
    event_time,
)
from callwarden.core.detectors.base import check_params
from callwarden.core.errors import InvalidInput
from callwarden.core.numbering import default_numbering_plan
from callwarden.core.prefixes import PrefixList
from callwarden.core.usage.record import (
    CallRecord,
    Direction,
    Disposition,
    LoginRecord,
    UsageRecord,
)

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
TENANTS = {
    "t1": TenantFacts("t1", country="US", plan_id="basic"),
    "t2": TenantFacts("t2", country="US", plan_id="basic"),
    "t3": TenantFacts("t3", country="US", plan_id="premium"),
}


def scan(tenant: str, count: int = 12, user: str = "u1", start: int = 0) -> list[CallRecord]:
    """``count`` unanswered calls to consecutive numbers: a sequential-dialing pattern."""
    return [
        CallRecord(
            call_id=f"{tenant}-c{start + i}",
            tenant_id=tenant,
            user_id=user,
            direction=Direction.OUTBOUND,
            caller="+12126640000",
            callee=f"+1212664{1000 + start + i}",
            started_at=T0 + timedelta(seconds=10 * (start + i)),
            ended_at=T0 + timedelta(seconds=10 * (start + i) + 5),
            disposition=Disposition.NO_ANSWER,
            source_format="test",
        )
        for i in range(count)
    ]


def engine(config: DetectorConfig | None = None) -> DetectorSet:
    context = DetectorContext(default_numbering_plan(), tenants=TENANTS)
    # One finding per scan of 10 to 29 numbers: the early (low) level is set to the warning one.
    detector = SequentialDialingDetector(SequentialParams(early_run=10))
    return DetectorSet([detector], context, config)


def test_detectors_run_in_observe_mode_by_default() -> None:
    findings = engine().observe_all(scan("t1"))
    assert [(f.detector, f.mode) for f in findings] == [("sequential", RuleMode.OBSERVE)]


def test_enforce_mode_for_a_plan_marks_its_tenants_findings_enforced() -> None:
    config = DetectorConfig(plans={"basic": {"sequential": DetectorPolicy(RuleMode.ENFORCE)}})
    found = engine(config).observe_all(scan("t1") + scan("t3"))
    assert {(f.tenant_id, f.mode) for f in found} == {
        ("t1", RuleMode.ENFORCE),
        ("t3", RuleMode.OBSERVE),
    }


def test_a_tenant_policy_wins_over_its_plan_policy() -> None:
    config = DetectorConfig(
        plans={"basic": {"sequential": DetectorPolicy(RuleMode.ENFORCE)}},
        tenants={"t2": {"sequential": DetectorPolicy(RuleMode.OFF)}},
    )
    found = engine(config).observe_all(scan("t1") + scan("t2"))
    assert {f.tenant_id for f in found} == {"t1"}


def test_tenant_parameters_change_its_thresholds_only() -> None:
    strict = DetectorPolicy(params=SequentialParams(warn_run=5))
    config = DetectorConfig(tenants={"t2": {"sequential": strict}})
    found = engine(config).observe_all(scan("t1", count=6) + scan("t2", count=6))
    assert [(f.tenant_id, f.value) for f in found] == [("t2", 5)]


def test_an_allowlisted_user_is_not_fed_to_the_detector() -> None:
    config = DetectorConfig(
        defaults={"sequential": DetectorPolicy(allow_users=frozenset({"tester"}))}
    )
    detectors = engine(config)
    assert detectors.observe_all(scan("t1", user="tester")) == []
    assert len(detectors.observe_all(scan("t1", user="agent"))) == 1


def test_an_allowlisted_destination_prefix_is_not_fed_to_the_detector() -> None:
    config = DetectorConfig(
        tenants={"t1": {"sequential": DetectorPolicy(allow_destinations=("+1212664",))}}
    )
    assert engine(config).observe_all(scan("t1")) == []


def test_a_policy_for_an_unknown_detector_is_refused_with_its_name() -> None:
    config = DetectorConfig(plans={"basic": {"robocalls": DetectorPolicy()}})
    with pytest.raises(InvalidInput, match="plan 'basic': unknown detector 'robocalls'"):
        engine(config)


def test_parameters_of_another_detector_are_refused() -> None:
    config = DetectorConfig(defaults={"sequential": DetectorPolicy(params=RobocallParams())})
    with pytest.raises(InvalidInput, match="must be SequentialParams, got RobocallParams"):
        engine(config)


def test_an_allowlisted_destination_must_be_digits() -> None:
    with pytest.raises(InvalidInput, match=r"E\.164 digits"):
        DetectorPolicy(allow_destinations=("+44 20",))


def test_the_same_detector_cannot_be_given_twice() -> None:
    context = DetectorContext(default_numbering_plan())
    with pytest.raises(InvalidInput, match="given twice"):
        DetectorSet([SequentialDialingDetector(), SequentialDialingDetector()], context)


def test_a_detector_refuses_unusable_parameters_when_built() -> None:
    with pytest.raises(InvalidInput, match="sequential: warn_run"):
        SequentialDialingDetector(SequentialParams(warn_run=-1))


def test_a_detector_refuses_parameters_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="IrsfParams"):
        SequentialDialingDetector(IrsfParams())  # type: ignore[arg-type]


def test_configure_keeps_detector_state() -> None:
    detectors = engine()
    assert detectors.observe_all(scan("t1", count=8)) == []
    detectors.configure(DetectorConfig(defaults={"sequential": DetectorPolicy(RuleMode.ENFORCE)}))
    found = detectors.observe_all(scan("t1", count=4, start=8))
    assert [(f.value, f.mode) for f in found] == [(10, RuleMode.ENFORCE)]


def test_every_detector_has_a_unique_id_and_catalogued_clauses() -> None:
    from callwarden.core.clauses import CATALOGUE

    detectors = default_detectors()
    assert len({d.id for d in detectors}) == len(detectors) == 10
    assert all(d.clause_ids and set(d.clause_ids) <= set(CATALOGUE) for d in detectors)


def test_all_detectors_read_every_kind_of_record_without_error() -> None:
    context = DetectorContext(default_numbering_plan(), tenants=TENANTS)
    detectors = DetectorSet(default_detectors(), context)
    login = LoginRecord(
        event_id="l1", tenant_id="t1", at=T0, success=False, method="password", source_format="x"
    )
    records: list[UsageRecord] = [login, *scan("t1"), *scan("unknown-tenant")]
    found = detectors.observe_all(records)
    assert {f.tenant_id for f in found} == {"t1", "unknown-tenant"}
    assert all(size >= 0 for size in detectors.state_size().values())


# -- Context ---------------------------------------------------------------------------------


def test_event_time_of_a_call_is_its_end() -> None:
    record = scan("t1", count=1)[0]
    assert event_time(record) == (T0 + timedelta(seconds=5)).timestamp()


def test_unknown_tenants_get_the_default_country() -> None:
    context = DetectorContext(default_numbering_plan(), default_country="gb")
    assert context.tenant("nobody").country == "GB"
    assert context.tenant("nobody").tenant_id == "nobody"
    assert context.tenant(None).tenant_id == ""


def test_set_tenant_replaces_what_is_known_of_a_tenant() -> None:
    context = DetectorContext(default_numbering_plan())
    context.tenant("t9")
    context.set_tenant(TenantFacts("t9", country="FR", sim_box_consent=True))
    assert context.tenant("t9").country == "FR" and context.tenant("t9").sim_box_consent


@pytest.mark.parametrize(
    ("facts", "field"),
    [({"country": "France"}, "country"), ({"timezone": "Mars/Olympus"}, "timezone")],
)
def test_tenant_facts_refuse_a_bad_country_or_time_zone(facts: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        TenantFacts("t1", **facts)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (SequentialParams(warn_run=-1), "warn_run"),
        (RobocallParams(max_answer_rate=1.5), "max_answer_rate"),
        (IrsfParams(fast_score=float("nan")), "fast_score"),
    ],
)
def test_parameters_no_detector_can_run_with_are_refused_naming_the_field(
    params: object, field: str
) -> None:
    with pytest.raises(InvalidInput, match=field) as caught:
        check_params("detector", params)
    assert caught.value.field == field


def test_a_plan_policy_with_unusable_parameters_is_refused_naming_the_plan() -> None:
    config = DetectorConfig(
        plans={"basic": {"sequential": DetectorPolicy(params=SequentialParams(max_runs=-3))}}
    )
    with pytest.raises(InvalidInput, match="plan 'basic': sequential: max_runs"):
        engine(config)


def test_a_mask_restricts_a_record_to_the_detectors_it_names() -> None:
    context = DetectorContext(default_numbering_plan(), tenants=TENANTS)
    detectors = default_detectors()
    position = [d.id for d in detectors].index("sequential")
    masked = DetectorSet(detectors, context)
    everyone_else = (1 << len(detectors)) - 1 - (1 << position)
    others = [f for r in scan("t1") for f in masked.observe(r, everyone_else)]
    assert "sequential" not in {f.detector for f in others}
    alone = DetectorSet(default_detectors(), context)
    found = [f for r in scan("t1") for f in alone.observe(r, 1 << position)]
    assert {f.detector for f in found} == {"sequential"}


def test_replacing_the_high_risk_list_forgets_cached_matches() -> None:
    context = DetectorContext(default_numbering_plan(), tenants=TENANTS)
    record = scan("t1", count=1)[0]
    assert context.event(record).high_risk is None
    context.high_risk = PrefixList(["1212664"])
    entry = context.event(record).high_risk
    assert entry is not None and entry.prefix == "1212664"
