"""Usage detectors on hand-built sequences: seasonal baselines (FRD-4), fair use on unlimited
plans (LIM-4) and repeated short emergency calls (CID-3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callwarden.core.detectors import (
    BaselineDetector,
    BaselineParams,
    DetectorContext,
    DetectorFinding,
    EmergencyAbuseDetector,
    FairUseDetector,
    KeyKind,
    Severity,
    SuggestedAction,
    TenantFacts,
)
from callwarden.core.detectors.base import Detector
from callwarden.core.model import Billing
from callwarden.core.numbering import default_numbering_plan
from callwarden.core.rating import Rate, RateDeck
from callwarden.core.usage.record import CallRecord, Direction, Disposition

MONDAY = datetime(2025, 3, 3, tzinfo=UTC)
WEEK = 7 * 86_400
DECK = RateDeck(
    Rate(p, round(price * 1e9), 0, 60, 60, 0, "USD") for p, price in (("1", 0.01), ("1900", 0.5))
)


def context(**facts: object) -> DetectorContext:
    tenant = TenantFacts("t1", country="US", rate_deck=DECK, **facts)  # type: ignore[arg-type]
    return DetectorContext(default_numbering_plan(), tenants={"t1": tenant})


def call(
    n: int,
    at: float,
    callee: str = "+12126647665",
    *,
    duration: int = 60,
    ring: float = 5,
    user: str | None = "u1",
    campaign: str | None = None,
) -> CallRecord:
    """Outbound call ``n`` starting ``at`` seconds after Monday 00:00 UTC."""
    started = MONDAY + timedelta(seconds=at)
    answered = started + timedelta(seconds=ring) if duration else None
    ended = (
        answered + timedelta(seconds=duration) if answered else started + timedelta(seconds=ring)
    )
    return CallRecord(
        call_id=f"c{n}",
        tenant_id="t1",
        user_id=user,
        direction=Direction.OUTBOUND,
        caller="+12126640000",
        callee=callee,
        started_at=started,
        answered_at=answered,
        ended_at=ended,
        duration_s=duration,
        disposition=Disposition.ANSWERED if duration else Disposition.NO_ANSWER,
        campaign=campaign,
        source_format="test",
    )


def feed(detector: Detector[object], ctx: DetectorContext, calls: list[CallRecord]) -> list:
    findings: list[DetectorFinding] = []
    for record in sorted(calls, key=lambda c: c.ended_at or c.started_at):
        findings.extend(detector.observe(record, ctx.event(record)))
    return findings


# -- Seasonal baselines ----------------------------------------------------------------------


def usual_weeks(weeks: int) -> list[CallRecord]:
    """Every Monday: 100 calls from 09:00 and 5 calls in each of the hours 08, 10, 11, 12."""
    calls: list[CallRecord] = []
    for week in range(weeks):
        base = week * WEEK
        for i in range(100):
            calls.append(call(len(calls), base + 9 * 3600 + i * 30))
        for hour in (8, 10, 11, 12):
            for i in range(5):
                calls.append(call(len(calls), base + hour * 3600 + i * 600))
    return calls


def test_baseline_is_quiet_for_a_peak_that_comes_back_every_week() -> None:
    detector = BaselineDetector(BaselineParams(per_number=False, per_destination=False))
    assert feed(detector, context(), usual_weeks(5)) == []


def test_baseline_raises_when_an_hour_departs_from_its_weekly_norm() -> None:
    detector = BaselineDetector(BaselineParams(per_number=False, per_destination=False))
    spike = [call(10_000 + i, 4 * WEEK + 11 * 3600 + i * 50) for i in range(60)]
    findings = feed(detector, context(), usual_weeks(4) + spike)
    assert [(f.statistic, f.severity) for f in findings] == [
        ("calls_in_hour", Severity.MEDIUM),
        ("calls_in_hour", Severity.HIGH),
    ]
    finding = findings[0]
    assert finding.key_kind is KeyKind.TENANT and finding.window == "hour-of-week"
    assert finding.baseline == 5 and finding.threshold == 25 and finding.value == 25
    assert finding.action is SuggestedAction.NONE and finding.clause_ids == ("FRD-4",)


def test_baseline_raises_on_spend_even_when_the_call_count_is_usual() -> None:
    detector = BaselineDetector(BaselineParams(per_number=False, per_destination=False))
    costly = [
        call(10_000 + i, 4 * WEEK + 11 * 3600 + i * 600, "+19005551234", duration=600)
        for i in range(5)
    ]
    findings = feed(detector, context(), usual_weeks(4) + costly)
    assert [f.statistic for f in findings] == ["spend_in_hour_minor"]
    assert findings[0].value == 2_500 and findings[0].baseline == 5


def test_baseline_waits_for_two_weeks_of_history() -> None:
    detector = BaselineDetector(BaselineParams(per_number=False, per_destination=False))
    spike = [call(10_000 + i, WEEK + 11 * 3600 + i * 50) for i in range(60)]
    assert feed(detector, context(), usual_weeks(1) + spike) == []


def test_baseline_follows_numbers_and_destinations_as_well_as_the_tenant() -> None:
    detector = BaselineDetector()
    spike = [call(10_000 + i, 4 * WEEK + 11 * 3600 + i * 50) for i in range(70)]
    findings = feed(detector, context(), usual_weeks(4) + spike)
    assert {(f.key_kind, f.key) for f in findings} == {
        (KeyKind.TENANT, "t1"),
        (KeyKind.NUMBER, "+12126640000"),
        (KeyKind.DESTINATION, "US"),
    }


def test_baseline_holds_a_single_number_to_a_call_a_minute() -> None:
    # An agent working a list: 40 calls in an hour whose norm is 5. The tenant and the
    # destination notice; the agent's number alone is under ``number_min_calls`` (60).
    detector = BaselineDetector()
    busy = [call(10_000 + i, 4 * WEEK + 11 * 3600 + i * 80) for i in range(40)]
    findings = feed(detector, context(), usual_weeks(4) + busy)
    assert {f.key_kind for f in findings} == {KeyKind.TENANT, KeyKind.DESTINATION}


def test_baseline_does_not_count_calls_of_a_declared_campaign() -> None:
    detector = BaselineDetector(BaselineParams(per_number=False, per_destination=False))
    drive = [
        call(10_000 + i, 4 * WEEK + 11 * 3600 + i * 50, campaign="renewal-drive") for i in range(60)
    ]
    assert feed(detector, context(), usual_weeks(4) + drive) == []
    counting = BaselineDetector(
        BaselineParams(per_number=False, per_destination=False, count_campaigns=True)
    )
    findings = feed(counting, context(), usual_weeks(4) + drive)
    assert [f.statistic for f in findings] == ["calls_in_hour", "calls_in_hour"]


def test_baseline_still_counts_the_spend_of_a_declared_campaign() -> None:
    detector = BaselineDetector(BaselineParams(per_number=False, per_destination=False))
    costly = [
        call(10_000 + i, 4 * WEEK + 11 * 3600 + i * 600, "+19005551234", duration=600, campaign="c")
        for i in range(5)
    ]
    findings = feed(detector, context(), usual_weeks(4) + costly)
    assert [f.statistic for f in findings] == ["spend_in_hour_minor"]


def test_baseline_reads_hours_in_the_tenant_local_time() -> None:
    ctx = context(timezone="America/New_York")
    winter = datetime(2025, 3, 3, 14, tzinfo=UTC).timestamp()  # 09:00 EST
    summer = datetime(2025, 3, 10, 13, tzinfo=UTC).timestamp()  # 09:00 EDT
    assert ctx.local_hour("America/New_York", winter) % 168 == 9
    assert ctx.local_hour("America/New_York", summer) % 168 == 9


def test_baseline_state_stays_within_its_key_bound() -> None:
    detector = BaselineDetector(max_keys=10, max_evidence=2, weeks=2)
    ctx = context()
    for i in range(500):
        record = call(i, i * 60, f"+1212664{1000 + i}")
        record = CallRecord(**{**_fields(record), "caller": f"+1212665{1000 + i}"})
        detector.observe(record, ctx.event(record))
    assert detector.state_size() <= 3 * 10 * (1 + 3 * 168 * 2 + 2)


def _fields(record: CallRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in CallRecord.__dataclass_fields__}


# -- Fair use --------------------------------------------------------------------------------


def shift(user: str, start_h: float, hours: float, first: int) -> list[CallRecord]:
    """Back-to-back 5-minute calls with 1-minute gaps for ``hours`` hours."""
    return [
        call(first + i, start_h * 3600 + i * 360, duration=300, user=user)
        for i in range(int(hours * 10))
    ]


def test_fair_use_raises_on_continuous_use_by_one_user_on_an_unlimited_plan() -> None:
    findings = feed(FairUseDetector(), context(billing=Billing.UNLIMITED), shift("u1", 0, 13, 0))
    assert [(f.statistic, f.severity) for f in findings] == [
        ("talk_minutes", Severity.MEDIUM),
        ("continuous_seconds", Severity.MEDIUM),
    ]
    assert all(f.key == "u1" and f.clause_ids == ("LIM-4",) for f in findings)
    assert findings[0].window == "24h"


def test_fair_use_counts_a_minute_once_however_many_calls_run_in_it() -> None:
    # Twelve one-hour calls at once under one user, then a four-hour shift: 16 hours of calls
    # summed, but five hours of the user's day.
    parallel = [call(i, 3600 + i, duration=3_600) for i in range(12)]
    findings = feed(FairUseDetector(), context(billing=Billing.UNLIMITED), parallel)
    assert findings == []
    later = shift("u1", 3, 4, 100)
    findings = feed(FairUseDetector(), context(billing=Billing.UNLIMITED), parallel + later)
    assert findings == []


def test_fair_use_still_adds_up_back_to_back_calls_that_touch() -> None:
    # Eleven one-hour calls, each starting as the one before ends: 660 minutes.
    calls = [call(i, i * 3_605, duration=3_600) for i in range(11)]
    findings = feed(FairUseDetector(), context(billing=Billing.UNLIMITED), calls)
    assert [f.statistic for f in findings][:1] == ["talk_minutes"]


def test_fair_use_is_quiet_for_a_desk_staffed_around_the_clock_in_shifts() -> None:
    calls = shift("a", 0, 8, 0) + shift("b", 8, 8, 1_000) + shift("c", 16, 8, 2_000)
    calls += shift("a", 24, 8, 3_000) + shift("b", 32, 8, 4_000)
    assert feed(FairUseDetector(), context(billing=Billing.UNLIMITED), calls) == []


def test_fair_use_ignores_metered_plans() -> None:
    assert feed(FairUseDetector(), context(), shift("u1", 0, 23, 0)) == []


def test_fair_use_state_stays_within_its_key_bound() -> None:
    detector = FairUseDetector(max_keys=20, max_evidence=3)
    ctx = context(billing=Billing.UNLIMITED)
    for i in range(1_000):
        record = call(i, i * 60, user=f"u{i}")
        detector.observe(record, ctx.event(record))
    assert detector.state_size() <= 20 * 2 + 20 * (96 + 3)


# -- Emergency calls -------------------------------------------------------------------------


def test_emergency_raises_on_repeated_short_emergency_calls_without_an_action() -> None:
    calls = [call(i, i * 300, "911", duration=3) for i in range(10)]
    findings = feed(EmergencyAbuseDetector(), context(), calls)
    assert [(f.severity, f.value) for f in findings] == [(Severity.MEDIUM, 4), (Severity.HIGH, 10)]
    assert all(f.action is SuggestedAction.NONE for f in findings)
    assert findings[0].clause_ids == ("CID-3",) and findings[0].key == "u1"


def test_emergency_recognises_numbers_dialled_with_an_outside_line_prefix() -> None:
    calls = [call(i, i * 300, "9911", duration=0) for i in range(4)]
    assert len(feed(EmergencyAbuseDetector(), context(), calls)) == 1


def test_emergency_is_quiet_for_a_real_call_and_a_misdial() -> None:
    calls = [call(0, 0, "911", duration=0), call(1, 60, "911", duration=600)]
    assert feed(EmergencyAbuseDetector(), context(), calls) == []


def test_emergency_raises_at_once_when_a_campaign_dials_an_emergency_number() -> None:
    findings = feed(EmergencyAbuseDetector(), context(), [call(0, 0, "911", campaign="spring")])
    assert [(f.key_kind, f.key, f.severity) for f in findings] == [
        (KeyKind.CAMPAIGN, "spring", Severity.HIGH)
    ]


def test_emergency_state_stays_within_its_key_bound() -> None:
    detector = EmergencyAbuseDetector(max_keys=15, max_evidence=2)
    ctx = context()
    for i in range(500):
        record = call(i, i * 60, "911", duration=0, user=f"u{i}")
        detector.observe(record, ctx.event(record))
    assert detector.state_size() <= 15 * 2 + 15 * (60 + 2)
