"""The pure admission pipeline over hand-built tenant snapshots."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callwarden.core.admission.attempt import CallAttempt, Direction
from callwarden.core.admission.pipeline import evaluate
from callwarden.core.admission.policy import RuleMode, RulePolicy
from callwarden.core.admission.snapshot import NumberState, TenantSnapshot, UserState
from callwarden.core.model import (
    Channel,
    NumberOwnership,
    NumberStatus,
    PlanLimits,
    Suspension,
    TenantStatus,
    UserStatus,
)
from callwarden.core.numbering import default_numbering_plan
from callwarden.core.prefixes import PrefixList

NUMBERING = default_numbering_plan()
NO_PREFIXES = PrefixList()
AT = datetime(2026, 11, 23, tzinfo=UTC)
SUSPENDED = Suspension("IRSF burst", ("FRD-3",), AT, "us_op")


def snapshot(**changes: object) -> TenantSnapshot:
    base = TenantSnapshot(
        tenant_id="tn_1",
        country="GB",
        status=TenantStatus.ACTIVE,
        suspension=None,
        channels=frozenset({Channel.VOICE}),
        limits=PlanLimits(),
        users={
            "us_agent": UserState(UserStatus.ACTIVE),
            "us_new": UserState(UserStatus.INVITED),
            "us_gone": UserState(UserStatus.SUSPENDED, SUSPENDED),
        },
        numbers={
            "+442079460000": NumberState("nm_1", NumberStatus.ACTIVE, NumberOwnership.OWNED),
            "+442079460001": NumberState("nm_2", NumberStatus.ACTIVE, NumberOwnership.VERIFIED),
            "+442079460002": NumberState(
                "nm_3", NumberStatus.SUSPENDED, NumberOwnership.OWNED, SUSPENDED
            ),
        },
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def attempt(destination: str = "+442079460123", **changes: object) -> CallAttempt:
    base = CallAttempt(
        call_id="c1",
        destination=destination,
        direction=Direction.OUTBOUND,
        at=0.0,
        tenant_id="tn_1",
        user_id="us_agent",
        caller="+442079460000",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def refused_by(a: CallAttempt, s: TenantSnapshot | None = None, prefixes: PrefixList = NO_PREFIXES):
    verdict = evaluate(a, s or snapshot(), NUMBERING, prefixes)
    return verdict.blocking


def test_an_ordinary_call_passes_every_rule() -> None:
    verdict = evaluate(attempt(), snapshot(), NUMBERING, NO_PREFIXES)
    assert verdict.blocking is None and not verdict.emergency and verdict.observed == ()


@pytest.mark.parametrize(
    ("country", "number"),
    [
        ("GB", "999"),
        ("GB", "112"),
        ("US", "911"),
        ("PL", "112"),
        ("PL", "997"),
        ("NL", "112"),
        ("FR", "15"),
        ("FR", "17"),
        ("FR", "18"),
        ("DE", "110"),
        ("AU", "000"),
        ("GB", "+44 999"),
        ("PL", "0048112"),
        ("US", "9911"),
        ("US", "9-911"),
        ("GB", "9999"),
        ("US", "988"),
        ("DE", "116117"),
        ("GB", "911"),
        ("PL", "911"),
        ("JP", "112"),
        ("GB", "9911"),
    ],
)
def test_emergency_numbers_pass_for_a_suspended_tenant_and_user(country: str, number: str) -> None:
    snap = snapshot(country=country, status=TenantStatus.SUSPENDED, suspension=SUSPENDED)
    a = attempt(number, user_id="us_gone", caller=None)
    verdict = evaluate(a, snap, NUMBERING, PrefixList(["1", "9"]))
    assert verdict.emergency and verdict.blocking is None


def test_a_suspended_tenant_is_refused_citing_its_clauses_and_gov_2() -> None:
    finding = refused_by(attempt(), snapshot(status=TenantStatus.SUSPENDED, suspension=SUSPENDED))
    assert finding is not None
    assert finding.clause_ids == ("FRD-3", "GOV-2") and "IRSF burst" in finding.reason


@pytest.mark.parametrize(
    ("user", "clauses"),
    [("us_nobody", ("ACC-1",)), ("us_new", ("ACC-3",)), ("us_gone", ("FRD-3", "GOV-2"))],
)
def test_users_must_be_known_active_and_seated(user: str, clauses: tuple[str, ...]) -> None:
    finding = refused_by(attempt(user_id=user))
    assert finding is not None and finding.rule == "user_status" and finding.clause_ids == clauses


def test_a_plan_without_voice_refuses_calls() -> None:
    finding = refused_by(attempt(), snapshot(channels=frozenset({Channel.MESSAGING})))
    assert finding is not None and finding.clause_ids == ("ACC-1",)


@pytest.mark.parametrize("junk", ["", "abc", "+", "++44", "\x00112", "9" * 40, "+999123456"])
def test_an_unparseable_destination_is_refused_with_its_reason(junk: str) -> None:
    finding = refused_by(attempt(junk))
    assert finding is not None
    assert (finding.rule, finding.sip_status, finding.clause_ids) == (
        "destination_valid",
        484,
        ("FRD-1",),
    )
    assert "not a valid number" in finding.reason


@pytest.mark.parametrize(
    ("number", "kind"),
    [
        ("+449098765432", "premium_rate"),
        ("+34901123456", "shared_cost"),
        ("+881612345678", "satellite"),
        ("+870773111632", "satellite"),
        ("+88216123456", "satellite"),
        ("+883510012345", "international_network"),
    ],
)
def test_blocked_number_types_are_refused_with_frd_1(number: str, kind: str) -> None:
    finding = refused_by(attempt(number))
    assert finding is not None and finding.rule == "destination_type" and kind in finding.reason


def test_a_plan_may_unblock_a_number_type() -> None:
    snap = snapshot(limits=PlanLimits(blocked_number_types=("satellite",)))
    assert refused_by(attempt("+449098765432"), snap) is None


def test_destination_countries_outside_the_plan_are_refused() -> None:
    snap = snapshot(limits=PlanLimits(allowed_countries=("GB", "IE")))
    assert refused_by(attempt("+353212345678"), snap) is None
    finding = refused_by(attempt("+48123456789"), snap)
    assert finding is not None and finding.rule == "destination_country" and "PL" in finding.reason


def test_the_high_risk_list_refuses_its_ranges_with_the_label() -> None:
    prefixes = PrefixList([("4420794601", "known IRSF range")])
    finding = refused_by(attempt("+442079460123"), prefixes=prefixes)
    assert finding is not None and finding.rule == "high_risk_prefix"
    assert "known IRSF range" in finding.reason


@pytest.mark.parametrize(
    ("caller", "expected"),
    [
        ("+442079460001", None),
        ("020 7946 0000", None),
        ("+442079469999", "not a number this tenant owns"),
        ("+442079460002", "suspended"),
        ("+449098765432", "premium-rate"),
        ("12", "not a valid number"),
        (None, "withheld"),
        ("anonymous", "withheld"),
    ],
)
def test_caller_id_must_be_owned_valid_active_and_not_premium(
    caller: str | None, expected: str | None
) -> None:
    finding = refused_by(attempt(caller=caller))
    if expected is None:
        assert finding is None
    else:
        assert finding is not None and finding.rule == "caller_id" and expected in finding.reason
        assert "CID-1" in finding.clause_ids


def test_a_plan_may_allow_withheld_caller_ids() -> None:
    snap = snapshot(limits=PlanLimits(allow_withheld_caller_id=True))
    assert refused_by(attempt(caller="anonymous"), snap) is None


def test_inbound_calls_skip_destination_and_caller_rules() -> None:
    a = attempt("+442079460000", direction=Direction.INBOUND, caller="+449098765432", user_id=None)
    assert refused_by(a) is None


def test_a_rule_in_observe_mode_records_and_admits() -> None:
    snap = snapshot(policies={"destination_type": RulePolicy(mode=RuleMode.OBSERVE)})
    verdict = evaluate(attempt("+449098765432"), snap, NUMBERING, NO_PREFIXES)
    assert verdict.blocking is None
    assert [f.rule for f in verdict.observed] == ["destination_type"]


def test_a_rule_turned_off_is_skipped() -> None:
    snap = snapshot(policies={"caller_id": RulePolicy(mode=RuleMode.OFF)})
    assert refused_by(attempt(caller="+442079469999"), snap) is None


def test_an_allowlisted_destination_is_exempt_and_says_so() -> None:
    snap = snapshot(policies={"destination_type": RulePolicy(allow_destinations=("44909",))})
    verdict = evaluate(attempt("+449098765432"), snap, NUMBERING, NO_PREFIXES)
    assert verdict.blocking is None
    assert verdict.warnings and "exempted by allowlist" in verdict.warnings[0]


def test_an_allowlisted_user_is_exempt_from_that_rule_only() -> None:
    snap = snapshot(policies={"caller_id": RulePolicy(allow_users=frozenset({"us_agent"}))})
    assert refused_by(attempt(caller="+442079469999"), snap) is None
    assert refused_by(attempt("+449098765432"), snap) is not None


def test_the_first_enforced_finding_refuses_and_earlier_observations_are_kept() -> None:
    snap = snapshot(policies={"user_status": RulePolicy(mode=RuleMode.OBSERVE)})
    verdict = evaluate(attempt("+449098765432", user_id="us_new"), snap, NUMBERING, NO_PREFIXES)
    assert verdict.blocking is not None and verdict.blocking.rule == "destination_type"
    assert [f.rule for f in verdict.observed] == ["user_status"]


@settings(max_examples=300, deadline=None)
@given(destination=st.text(max_size=70), caller=st.none() | st.text(max_size=40))
def test_any_destination_or_caller_text_gets_a_verdict_never_an_exception(
    destination: str, caller: str | None
) -> None:
    verdict = evaluate(attempt(destination, caller=caller), snapshot(), NUMBERING, NO_PREFIXES)
    assert verdict.emergency or verdict.blocking is not None or verdict.destination.valid


def test_an_outside_line_prefix_does_not_make_an_ordinary_number_an_emergency() -> None:
    verdict = evaluate(attempt("9+442079460123"), snapshot(), NUMBERING, NO_PREFIXES)
    assert not verdict.emergency
    assert not evaluate(attempt("91120"), snapshot(), NUMBERING, NO_PREFIXES).emergency
