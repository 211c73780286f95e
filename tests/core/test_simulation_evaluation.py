"""Scoring findings against labels on a hand-built case, and the labels' and facts' JSON."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from callwarden.core.detectors import DetectorFinding, KeyKind, Severity
from callwarden.core.model import Billing
from callwarden.core.simulation.evaluation import Observed, score
from callwarden.core.simulation.facts import SimulatedTenant, SimulationFacts
from callwarden.core.simulation.labels import ScenarioLabel

T0 = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)


def label(
    scenario_id: str,
    detector: str,
    keys: tuple[tuple[str, str], ...],
    call_ids: tuple[str, ...],
    *,
    abuse: bool = True,
    also: tuple[str, ...] = (),
    minutes: int = 30,
) -> ScenarioLabel:
    return ScenarioLabel(
        scenario_id=scenario_id,
        kind=scenario_id.split("-")[0],
        abuse=abuse,
        detector=detector,
        tenant_id="t1",
        keys=keys,
        start=T0,
        end=T0 + timedelta(minutes=minutes),
        call_ids=call_ids,
        description="hand-built",
        also=also,
    )


def finding(detector: str, kind: KeyKind, key: str, minutes: float) -> DetectorFinding:
    return DetectorFinding(
        detector=detector,
        clause_ids=(),
        tenant_id="t1",
        key_kind=kind,
        key=key,
        severity=Severity.HIGH,
        score=1.0,
        window="60m",
        statistic="x",
        value=1,
        threshold=1,
        at=T0 + timedelta(minutes=minutes),
        summary="s",
    )


# The stream: b = background, i = the IRSF burst, s = the sequential scan.
ORDER = ["b1", "i1", "b2", "i2", "i3", "s1", "s2", "b3", "s3", "i4"]
LABELS = [
    label("irsf-1", "irsf", (("destination", "+371"), ("tenant", "t1")), ("i1", "i2", "i3", "i4"),
          also=("baseline",)),
    label("sequential-1", "sequential", (("user", "u9"),), ("s1", "s2", "s3")),
    label("wangiri-1", "wangiri", (("number", "+23225000000"),), ("b9",)),
    label("campaign-1", "robocall", (("number", "+12125550100"),), (), abuse=False),
]  # fmt: skip
OBSERVED = [
    # irsf: first true finding at the third burst call, repeated later (same key: one TP).
    Observed(4, finding("irsf", KeyKind.DESTINATION, "+371", 10)),
    Observed(9, finding("irsf", KeyKind.DESTINATION, "+371", 29)),
    # irsf on the right key but two hours after the scenario: a false positive.
    Observed(9, finding("irsf", KeyKind.DESTINATION, "+371", 150)),
    # baseline corroborates the burst on the tenant key: a TP for baseline, no recall.
    Observed(9, finding("baseline", KeyKind.TENANT, "t1", 29)),
    # sequential names the wrong user: false positive, and the scan goes undetected...
    Observed(6, finding("sequential", KeyKind.USER, "u1", 12)),
    # ... robocall flags the lawful campaign: a false positive, and the look-alike is flagged.
    Observed(7, finding("robocall", KeyKind.NUMBER, "+12125550100", 20)),
]


def test_scores_count_keys_scenarios_and_calls_to_detection() -> None:
    result = score(ORDER, LABELS, OBSERVED, ["irsf", "sequential", "wangiri", "robocall"])
    irsf = result.detectors["irsf"]
    assert (irsf.scenarios, irsf.detected, irsf.true_keys, irsf.false_keys) == (1, 1, 1, 1)
    assert irsf.precision == 0.5 and irsf.recall == 1.0
    assert irsf.time_to_detect == [3], "i1, i2 and i3 had happened when record 4 raised it"
    assert irsf.findings == 3
    baseline = result.detectors["baseline"]
    assert (baseline.scenarios, baseline.true_keys, baseline.corroborating_keys) == (0, 1, 1)
    assert baseline.precision == 1.0 and baseline.recall is None
    sequential = result.detectors["sequential"]
    assert sequential.recall == 0.0 and sequential.precision == 0.0
    assert sequential.missed == ["sequential-1"] and sequential.time_to_detect == []
    wangiri = result.detectors["wangiri"]
    assert wangiri.precision is None and wangiri.recall == 0.0
    robocall = result.detectors["robocall"]
    assert robocall.false_keys == 1 and robocall.scenarios == 0
    (look,) = result.lookalikes
    assert look.flagged and look.findings == {"robocall": 1}
    assert result.records == len(ORDER)


def test_a_finding_of_another_tenant_never_matches() -> None:
    other = Observed(4, finding("irsf", KeyKind.DESTINATION, "+371", 10))
    moved = Observed(other.index, replace(other.finding, tenant_id="t2"))
    result = score(ORDER, LABELS, [moved], ["irsf"])
    assert result.detectors["irsf"].detected == 0 and result.detectors["irsf"].false_keys == 1


def test_labels_round_trip_through_json() -> None:
    for item in LABELS:
        assert ScenarioLabel.from_json(item.to_json()) == item


def test_facts_round_trip_through_json_and_build_the_detector_context() -> None:
    facts = SimulationFacts(
        tenants=(
            SimulatedTenant("t1", "One", "GB", "Europe/London", "p1", Billing.UNLIMITED, True,
                            ("u1",), ("+442079460000",), ("trk",)),
        ),
        rates=(("44", "0.0100", "United Kingdom"), ("449", "1.2000", "premium")),
        high_risk=(("881", "satellite"),),
    )  # fmt: skip
    assert SimulationFacts.from_json(facts.to_json()) == facts
    from callwarden.core.numbering import default_numbering_plan

    context = facts.detector_context(default_numbering_plan())
    tenant = context.tenant("t1")
    assert tenant.sim_box_consent and tenant.billing is Billing.UNLIMITED
    assert tenant.rate_deck is not None
    rate = tenant.rate_deck.lookup("+449012345678", T0.timestamp())
    assert rate is not None and rate.prefix == "449"
