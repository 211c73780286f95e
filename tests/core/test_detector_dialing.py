"""Dialing detectors on hand-built sequences: robocall signature (DIA-2), sequential range
dialing (DIA-5) and rotating caller IDs (CID-1), each with a benign look-alike and its memory
bound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callwarden.core.detectors import (
    CallerRotationDetector,
    DetectorContext,
    DetectorFinding,
    KeyKind,
    RobocallDetector,
    SequentialDialingDetector,
    Severity,
    SuggestedAction,
    TenantFacts,
)
from callwarden.core.detectors.base import Detector
from callwarden.core.numbering import default_numbering_plan
from callwarden.core.usage.record import (
    CallRecord,
    Direction,
    Disposition,
    MessageRecord,
    UsageRecord,
)

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
CTX = DetectorContext(default_numbering_plan(), tenants={"t1": TenantFacts("t1", country="US")})


def call(
    n: int,
    at: float,
    callee: str,
    *,
    caller: str | None = "+12126640000",
    duration: int = 0,
    ring: float = 12,
    user: str | None = "u1",
    tenant: str = "t1",
) -> CallRecord:
    """Outbound call ``n`` starting ``at`` seconds after T0; answered when ``duration`` > 0."""
    started = T0 + timedelta(seconds=at)
    answered = started + timedelta(seconds=ring) if duration else None
    ended = (
        answered + timedelta(seconds=duration) if answered else started + timedelta(seconds=ring)
    )
    return CallRecord(
        call_id=f"c{n}",
        tenant_id=tenant,
        user_id=user,
        direction=Direction.OUTBOUND,
        caller=caller,
        callee=callee,
        started_at=started,
        answered_at=answered,
        ended_at=ended,
        duration_s=duration,
        disposition=Disposition.ANSWERED if duration else Disposition.NO_ANSWER,
        source_format="test",
    )


def feed(detector: Detector[object], records: list[UsageRecord] | list[CallRecord]) -> list:
    findings: list[DetectorFinding] = []
    for record in records:
        findings.extend(detector.observe(record, CTX.event(record)))
    return findings


# -- Robocalls -------------------------------------------------------------------------------


def test_robocall_raises_on_mass_short_uniform_calls_with_few_answers() -> None:
    calls = [
        call(i, i * 10, f"+1212{2000000 + i * 7919}", duration=4 if i % 8 == 0 else 0)
        for i in range(300)
    ]
    findings = feed(RobocallDetector(), calls)
    assert [f.severity for f in findings] == [Severity.CRITICAL]
    finding = findings[0]
    assert finding.key_kind is KeyKind.NUMBER and finding.key == "+12126640000"
    assert finding.clause_ids == ("DIA-2",) and finding.statistic == "attempts"
    assert finding.action is SuggestedAction.SUSPEND_NUMBER
    assert "answer rate" in finding.summary and "distinct numbers" in finding.summary


def test_robocall_is_quiet_for_a_legitimate_large_campaign() -> None:
    calls = [
        call(
            i,
            i * 10,
            f"+1212{2000000 + i * 7919}",
            duration=30 + (i * 53) % 400 if i % 3 == 0 else 0,
        )
        for i in range(350)
    ]
    assert feed(RobocallDetector(), calls) == []


def test_robocall_needs_many_attempts_before_judging() -> None:
    calls = [call(i, i * 10, f"+1212{2000000 + i * 7919}", duration=3) for i in range(90)]
    assert feed(RobocallDetector(), calls) == []


def test_robocall_judges_from_a_hundred_attempts() -> None:
    # 150 attempts, one in eight answered and hung up at 4 s: judged at the hundredth.
    calls = [
        call(i, i * 10, f"+1212{2000000 + i * 7919}", duration=4 if i % 8 == 0 else 0)
        for i in range(150)
    ]
    findings = feed(RobocallDetector(), calls)
    assert [(f.severity, f.value) for f in findings] == [(Severity.CRITICAL, 100)]


def test_robocall_state_stays_within_its_key_bound() -> None:
    detector = RobocallDetector(max_keys=25, max_evidence=3)
    for i in range(2_000):
        record = call(i, i, f"+1212{2000000 + i}", caller=f"+1212665{1000 + i}")
        detector.observe(record, CTX.event(record))
    assert detector.state_size() <= 25 * 2 + 25 * (60 + 512 + 3)


# -- Sequential dialing ----------------------------------------------------------------------


def test_sequential_raises_on_a_scan_through_a_number_block() -> None:
    calls = [call(i, i * 5, f"+1212664{1000 + i}") for i in range(30)]
    findings = feed(SequentialDialingDetector(), calls)
    assert [(f.severity, f.value) for f in findings] == [
        (Severity.LOW, 5),
        (Severity.MEDIUM, 10),
        (Severity.HIGH, 30),
    ]
    assert findings[0].action is SuggestedAction.NONE and findings[0].evidence[-1] == "c4"
    assert findings[-1].key_kind is KeyKind.USER and findings[-1].key == "u1"
    assert findings[-1].action is SuggestedAction.THROTTLE
    assert findings[-1].evidence[-1] == "c29"


def test_sequential_follows_two_interleaved_scans_and_descending_ones() -> None:
    calls: list[CallRecord] = []
    for i in range(12):
        calls.append(call(2 * i, i * 10, f"+1212664{1000 + i}"))
        calls.append(call(2 * i + 1, i * 10 + 5, f"+1646555{5000 - i}"))
    findings = feed(SequentialDialingDetector(), calls)
    # both runs reach 10; one finding per source, window and severity
    assert [(f.severity, f.value) for f in findings] == [(Severity.LOW, 5), (Severity.MEDIUM, 10)]


def test_sequential_is_quiet_for_a_calling_list_sorted_by_number() -> None:
    calls = [call(i, i * 5, f"+1212{2000000 + i * 137}") for i in range(100)]
    calls += [call(200 + i, 600 + i, "+12126647665") for i in range(20)]
    assert feed(SequentialDialingDetector(), calls) == []


def test_sequential_reads_messages_as_well_as_calls() -> None:
    messages = [
        MessageRecord(
            message_id=f"m{i}",
            tenant_id="t1",
            direction=Direction.OUTBOUND,
            sender="+12126640000",
            recipient=f"+1212664{1000 + i}",
            sent_at=T0 + timedelta(seconds=i),
            status="delivered",
            source_format="test",
        )
        for i in range(10)
    ]
    findings = feed(SequentialDialingDetector(), messages)
    assert {(f.key_kind, f.key) for f in findings} == {(KeyKind.NUMBER, "+12126640000")}
    assert findings[-1].severity is Severity.MEDIUM


def test_sequential_is_quiet_for_four_neighbouring_numbers() -> None:
    # A customer's four lines (a switchboard and its neighbours) in a row are no scan.
    calls = [call(i, i * 60, f"+1212664{1000 + i}") for i in range(4)]
    assert feed(SequentialDialingDetector(), calls) == []


def test_sequential_state_stays_within_its_key_bound() -> None:
    detector = SequentialDialingDetector(max_keys=30, max_evidence=4)
    for i in range(3_000):
        record = call(i, i, f"+1212664{1000 + i % 5000}", user=f"u{i % 97}")
        detector.observe(record, CTX.event(record))
    assert detector.state_size() <= 30 * 2 + 30 * (8 + 4)


# -- Rotating caller IDs ---------------------------------------------------------------------


def test_caller_rotation_raises_when_one_user_rotates_caller_ids() -> None:
    calls = [call(i, i * 20, "+12126647665", caller=f"+1212665{1000 + i}") for i in range(30)]
    findings = feed(CallerRotationDetector(), calls)
    assert [(f.severity, f.value, f.window) for f in findings] == [
        (Severity.LOW, 4, "15m"),
        (Severity.MEDIUM, 10, "60m"),
        (Severity.HIGH, 30, "60m"),
    ]
    assert findings[0].action is SuggestedAction.NONE and findings[0].evidence[-1] == "c3"
    assert findings[-1].action is SuggestedAction.SUSPEND_USER
    assert findings[-1].clause_ids == ("CID-1",)


def test_caller_rotation_finds_a_rotation_hidden_among_a_busy_agents_own_calls() -> None:
    # Thirty calls from the agent's own number and twelve rotated ones in an hour: 13 caller
    # IDs are under half of the 42 calls, but four different ones came within 15 minutes.
    calls = [call(i, i * 120, "+12126647665") for i in range(30)]
    calls += [
        call(100 + i, 60 + i * 240, "+12126647665", caller=f"+1212665{1000 + i}") for i in range(12)
    ]
    calls.sort(key=lambda c: c.started_at)
    findings = feed(CallerRotationDetector(), calls)
    assert [(f.severity, f.statistic) for f in findings] == [(Severity.LOW, "distinct_caller_ids")]


def test_caller_rotation_is_quiet_for_an_agent_presenting_their_number_and_two_hotlines() -> None:
    lines = ("+12126640000", "+12126650001", "+12126650002")
    calls = [call(i, i * 60, "+12126647665", caller=lines[i % 3]) for i in range(60)]
    assert feed(CallerRotationDetector(), calls) == []


def test_caller_rotation_is_quiet_for_many_agents_with_their_own_numbers() -> None:
    calls = [
        call(
            i, i * 2, f"+1212{2000000 + i}", caller=f"+1212665{1000 + i % 200}", user=f"a{i % 200}"
        )
        for i in range(1_000)
    ]
    assert feed(CallerRotationDetector(), calls) == []


def test_caller_rotation_is_quiet_for_a_user_alternating_two_numbers() -> None:
    calls = [
        call(i, i * 20, "+12126647665", caller=("+12126650001", "+12126650002")[i % 2])
        for i in range(100)
    ]
    assert feed(CallerRotationDetector(), calls) == []


def test_caller_rotation_state_stays_within_its_key_bound() -> None:
    detector = CallerRotationDetector(max_keys=10, max_evidence=2)
    for i in range(1_000):
        record = call(i, i, "+12126647665", caller=f"+1212665{1000 + i}", user=f"u{i}")
        detector.observe(record, CTX.event(record))
    assert detector.state_size() <= 10 * 2 + 10 * (60 + 256 + 2)
