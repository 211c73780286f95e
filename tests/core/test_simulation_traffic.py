"""The simulator: reproducible for a seed, every scenario kind present, labels consistent with
the records, ordinary traffic shaped by hours and holidays."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date
from functools import cache

from callwarden.core.detectors import event_time
from callwarden.core.numbering import NumberingPlan, NumberType, default_numbering_plan
from callwarden.core.simulation.lookalikes import INJECTED_LOOKALIKES
from callwarden.core.simulation.numbers import RANGES, NumberMaker
from callwarden.core.simulation.scenarios import ABUSE
from callwarden.core.simulation.simulate import Simulation, simulate
from callwarden.core.simulation.traffic import hour_weight, tenant_holidays
from callwarden.core.simulation.world import PROFILES
from callwarden.core.usage.schema import to_json


@cache
def plan() -> NumberingPlan:
    return default_numbering_plan()


@cache
def small(seed: int = 5) -> Simulation:
    return simulate(plan(), seed=seed, days=3, scale=0.05, instances=1)


def test_the_same_seed_gives_the_same_records_and_labels() -> None:
    again = simulate(plan(), seed=5, days=3, scale=0.05, instances=1)
    assert [to_json(r) for r in again.records] == [to_json(r) for r in small().records]
    assert [label.to_json() for label in again.labels] == [
        label.to_json() for label in small().labels
    ]


def test_another_seed_gives_other_traffic() -> None:
    other = simulate(plan(), seed=6, days=3, scale=0.05, instances=1)
    assert [r.callee for r in other.records[:50]] != [r.callee for r in small().records[:50]]


def test_every_abuse_kind_and_every_injected_look_alike_is_present() -> None:
    kinds = Counter(label.kind for label in small().labels)
    for spec, *_ in ABUSE:
        assert kinds[spec.kind] == 1, spec.kind
    for spec, *_ in INJECTED_LOOKALIKES:
        assert kinds[spec.kind] == 1, spec.kind
    detectors = {label.detector for label in small().labels if label.abuse}
    assert detectors == {
        "irsf", "wangiri", "baseline", "pumping", "simbox", "robocall", "sequential",
        "fair_use", "emergency", "caller_rotation",
    }  # fmt: skip


def test_labels_name_records_of_their_tenant_within_their_span() -> None:
    sim = small()
    by_id = {r.call_id: r for r in sim.records}
    assert len(by_id) == len(sim.records), "call ids are unique"
    for label in sim.labels:
        assert label.keys, label.scenario_id
        assert label.start <= label.end
        for call_id in label.call_ids:
            record = by_id[call_id]
            assert record.tenant_id == label.tenant_id
            assert label.start <= record.started_at and event_time(record) <= label.end.timestamp()
        if label.abuse:
            assert label.call_ids, label.scenario_id


def test_records_come_in_the_order_they_became_known() -> None:
    times = [event_time(r) for r in small().records]
    assert times == sorted(times)


def test_every_tenant_of_the_world_has_facts_for_the_detectors() -> None:
    facts = small().facts
    assert {t.tenant_id for t in facts.tenants} == {p.tenant_id for p in PROFILES}
    assert {t.country for t in facts.tenants} == {"GB", "PL", "NL", "FR", "US"}
    assert [t.tenant_id for t in facts.tenants if t.sim_box_consent] == ["tn-fr-gateway"]
    context = facts.detector_context(plan())
    assert context.tenant("tn-nl-desk").billing.value == "unlimited"
    assert context.tenant("tn-gb-care").rate_deck is not None
    assert len(context.high_risk) == len(facts.high_risk)


def test_ordinary_traffic_follows_office_hours_and_a_24_7_desk_never_closes() -> None:
    care = next(p for p in PROFILES if p.tenant_id == "tn-gb-care")
    desk = next(p for p in PROFILES if p.tenant_id == "tn-nl-desk")
    assert hour_weight(care, 3, 1) == 0 and hour_weight(care, 10, 1) > hour_weight(care, 8, 1)
    assert hour_weight(care, 10, 6) == 0, "closed on Sundays"
    assert all(hour_weight(desk, h, d) > 0 for h in range(24) for d in range(7))


def test_holidays_come_from_the_tenant_country() -> None:
    found = tenant_holidays("PL", date(2026, 11, 2), 28)
    assert date(2026, 11, 11) in found
    assert date(2026, 11, 26) in tenant_holidays("US", date(2026, 11, 2), 28)
    assert tenant_holidays("GB", date(2026, 11, 2), 28) == {}


def test_drawn_numbers_are_valid_numbers_of_the_wanted_kind() -> None:
    maker = NumberMaker(plan())
    rng = random.Random(3)
    for (country, kind), _ in RANGES.items():
        number = maker.number(rng, country, kind)
        found = plan().classify(number, "GB" if country == "001" else country)
        assert found.valid, (country, kind, number)
        if kind == "premium":
            assert found.number_type is NumberType.PREMIUM_RATE
