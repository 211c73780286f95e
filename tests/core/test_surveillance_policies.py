"""Pure parts of the surveillance configuration: throttle rates against a plan's limits, and
action and detector policies to JSON and back, refusing what is malformed by field name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callwarden.core.admission.policy import RuleMode
from callwarden.core.cases import ActionPolicy, action_policy_from_json, action_policy_to_json
from callwarden.core.detectors import DetectorPolicy, default_detectors
from callwarden.core.detectors.base import Severity, SuggestedAction
from callwarden.core.detectors.policy_json import describe, policy_from_json, policy_to_json
from callwarden.core.errors import InvalidInput
from callwarden.core.model import PlanLimits, ThrottleRates

INFOS = {i.id: i for i in describe(default_detectors())}


def test_a_fraction_scales_every_window_the_plan_sets_rounding_down_to_at_least_one() -> None:
    limits = PlanLimits(attempts_per_second=10, attempts_per_minute=300, attempts_per_hour=5)
    assert ThrottleRates(fraction=0.1).windows(limits) == (
        ("s", 1, 1.0),
        ("m", 30, 60.0),
        ("h", 1, 3600.0),
    )


def test_fixed_rates_apply_alone_or_the_tighter_of_both_holds() -> None:
    limits = PlanLimits(attempts_per_second=10, attempts_per_minute=300)
    both = ThrottleRates(fraction=0.5, attempts_per_second=2, attempts_per_minute=200)
    assert both.windows(limits) == (("s", 2, 1.0), ("m", 150, 60.0))
    unlimited = PlanLimits(attempts_per_second=None, attempts_per_minute=None)
    assert ThrottleRates(fraction=0.5).windows(unlimited) == ()
    assert ThrottleRates(attempts_per_minute=6).windows(unlimited) == (("m", 6, 60.0),)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({}, "fraction"),
        ({"fraction": 0.0}, "fraction"),
        ({"fraction": 1.5}, "fraction"),
        ({"fraction": float("nan")}, "fraction"),
        ({"attempts_per_second": 0}, "attempts_per_second"),
        ({"attempts_per_minute": 2.5}, "attempts_per_minute"),
    ],
)
def test_bad_throttle_rates_are_refused_naming_the_field(
    kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        ThrottleRates(**kwargs)  # type: ignore[arg-type]
    assert refused.value.field == field


actions = st.sampled_from(list(SuggestedAction))
policies = st.builds(
    ActionPolicy,
    threshold=st.sampled_from(list(Severity)),
    by_severity=st.dictionaries(st.sampled_from(list(Severity)), actions),
    expire_after_s=st.dictionaries(actions, st.floats(min_value=0.001, max_value=1e9)),
    throttle=st.builds(
        ThrottleRates,
        fraction=st.floats(min_value=0.001, max_value=1.0),
        attempts_per_second=st.none() | st.integers(1, 100_000),
    ),
)


@given(policies)
def test_an_action_policy_survives_json(policy: ActionPolicy) -> None:
    assert action_policy_from_json(action_policy_to_json(policy)) == policy


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"threshold": "severe"}, "threshold"),
        ({"by_severity": {"high": "explode"}}, "by_severity.high"),
        ({"expire_after_s": {"nap": 5}}, "expire_after_s.nap"),
        ({"expire_after_s": {"throttle": -5}}, "expire_after_s.throttle"),
        ({"throttle": {"fraction": 3}}, "throttle.fraction"),
        ({"throttle": {"speed": 3}}, "throttle.speed"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_malformed_action_policy_is_refused_naming_the_field(
    data: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        action_policy_from_json(data)
    assert refused.value.field == field


def test_a_detector_policy_survives_json_with_every_parameter() -> None:
    info = INFOS["robocall"]
    policy = policy_from_json(
        info,
        {"mode": "enforce", "params": {"min_attempts": 500}, "allow_destinations": ["+44"]},
    )
    assert policy.mode is RuleMode.ENFORCE and policy.allow_destinations == ("44",)
    data = policy_to_json(policy)
    assert data["params"]["min_attempts"] == 500 and "max_answer_rate" in data["params"]
    assert policy_from_json(info, data) == policy
    assert policy_to_json(DetectorPolicy())["params"] is None


def test_every_detector_lists_typed_parameters_with_defaults() -> None:
    for info in INFOS.values():
        assert info.params, info.id
        assert all(f.type in {"int", "float", "bool"} for f in info.params), info.id
        assert policy_from_json(info, {"params": {}}).params == info.params_type()
