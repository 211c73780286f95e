"""Fraud detectors on hand-built call sequences: IRSF (FRD-1/2), wangiri (FRD-2), traffic
pumping (FRD-5) and SIM boxes (FRD-6), each with a positive case, a benign look-alike and its
memory bound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callwarden.core.detectors import (
    DetectorContext,
    DetectorFinding,
    IrsfDetector,
    IrsfParams,
    KeyKind,
    PumpingDetector,
    Severity,
    SimBoxDetector,
    SuggestedAction,
    TenantFacts,
    WangiriDetector,
)
from callwarden.core.detectors.base import Detector
from callwarden.core.numbering import default_numbering_plan
from callwarden.core.prefixes import PrefixList
from callwarden.core.rating import Rate, RateDeck
from callwarden.core.usage.record import CallRecord, Direction, Disposition

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)  # a Monday
OUT, IN = Direction.OUTBOUND, Direction.INBOUND


def deck(*prices: tuple[str, float]) -> RateDeck:
    """A USD deck from (prefix, price per minute) pairs."""
    return RateDeck(Rate(p, round(price * 1e9), 0, 60, 60, 0, "USD") for p, price in prices)


DECK = deck(("1", 0.01), ("1900", 0.50), ("371", 0.02), ("37167", 0.60), ("881", 4.0))


def context(**facts: object) -> DetectorContext:
    facts.setdefault("rate_deck", DECK)
    tenant = TenantFacts("t1", country="US", **facts)  # type: ignore[arg-type]
    return DetectorContext(
        default_numbering_plan(), high_risk=PrefixList(["88216", "37167"]), tenants={"t1": tenant}
    )


def call(
    n: int,
    at: float,
    callee: str,
    *,
    caller: str | None = "+12126640000",
    direction: Direction = OUT,
    duration: int = 0,
    ring: float = 10,
    user: str | None = "u1",
    trunk: str | None = None,
    tenant: str = "t1",
) -> CallRecord:
    """Call number ``n`` starting ``at`` seconds after T0; answered when ``duration`` > 0."""
    started = T0 + timedelta(seconds=at)
    answered = started + timedelta(seconds=ring) if duration else None
    ended = (
        (answered + timedelta(seconds=duration)) if answered else started + timedelta(seconds=ring)
    )
    return CallRecord(
        call_id=f"c{n}",
        tenant_id=tenant,
        user_id=user,
        trunk_id=trunk,
        direction=direction,
        caller=caller,
        callee=callee,
        started_at=started,
        answered_at=answered,
        ended_at=ended,
        duration_s=duration,
        disposition=Disposition.ANSWERED if duration else Disposition.NO_ANSWER,
        source_format="test",
    )


def feed(detector: Detector[object], ctx: DetectorContext, calls: list[CallRecord]) -> list:
    findings: list[DetectorFinding] = []
    for record in calls:
        findings.extend(detector.observe(record, ctx.event(record)))
    return findings


# -- IRSF ------------------------------------------------------------------------------------


def test_irsf_raises_on_a_burst_of_calls_to_an_expensive_premium_range() -> None:
    calls = [call(i, i * 20, f"+1900555{1000 + i}", duration=30) for i in range(8)]
    findings = feed(IrsfDetector(), context(), calls)
    assert findings, "eight premium calls at 0.50 a minute in under 3 minutes"
    first = findings[0]
    assert first.detector == "irsf" and first.clause_ids == ("FRD-1", "FRD-2")
    assert first.key_kind is KeyKind.DESTINATION and first.key == "+1"
    assert first.window == "5m" and first.statistic == "cost_weighted_score"
    assert first.value >= first.threshold == 3.0 and first.score >= 1
    assert first.action is SuggestedAction.BLOCK_PREFIX
    assert first.evidence[-1] == first_call_id(findings, calls)


def first_call_id(findings: list[DetectorFinding], calls: list[CallRecord]) -> str:
    """The id of the call that raised the first finding."""
    at = findings[0].at
    return next(c.call_id for c in calls if c.ended_at == at)


def test_irsf_is_quiet_for_a_tenant_calling_premium_numbers_at_normal_prices() -> None:
    cheap = deck(("1", 0.01), ("1900", 0.02))
    calls = [call(i, i * 20, f"+1900555{1000 + i}", duration=30) for i in range(30)]
    assert feed(IrsfDetector(), context(rate_deck=cheap), calls) == []


def test_irsf_counts_an_operator_listed_prefix_as_risky_even_without_a_price() -> None:
    detector = IrsfDetector(IrsfParams(unrated_weight=1.0, fast_score=3.0))
    calls = [call(i, i * 10, f"+3716700000{i}", ring=5) for i in range(3)]
    findings = feed(detector, context(rate_deck=None), calls)
    assert [f.severity for f in findings] == [Severity.HIGH]


def test_irsf_raises_again_only_to_escalate_inside_the_window() -> None:
    calls = [call(i, i * 5, f"+88163123456{i % 10}", duration=60) for i in range(12)]
    findings = [f for f in feed(IrsfDetector(), context(), calls) if f.window == "5m"]
    assert [f.severity for f in findings] == [Severity.HIGH, Severity.CRITICAL]


def test_irsf_raises_again_once_the_window_has_moved_on() -> None:
    burst = [call(i, i * 5, f"+1900555{1000 + i}", duration=60) for i in range(4)]
    later = [call(100 + i, 3600 * 3 + i * 5, f"+1900555{2000 + i}", duration=60) for i in range(4)]
    findings = [f for f in feed(IrsfDetector(), context(), burst + later) if f.window == "5m"]
    assert len(findings) == 2


def settled() -> list[CallRecord]:
    """25 domestic calls over a day and a half: a tenant past its learning period (a day and
    20 calls) by ``LATER`` seconds after T0."""
    return [call(i, i * 5_000, f"+1212664{1000 + i}", duration=60) for i in range(25)]


DAY = 86_400
LATER = 25 * 5_000


def test_irsf_raises_when_a_settled_tenant_calls_several_new_countries() -> None:
    detector = IrsfDetector(IrsfParams(learning_calls=20, new_country_calls=3))
    history = settled()
    new = [
        call(100, LATER + 2000, "+33612345678", duration=30),
        call(101, LATER + 2100, "+2348031234567", duration=30),
        call(102, LATER + 2200, "+37120000000", duration=30),
    ]
    findings = feed(detector, context(), history + new)
    assert [(f.statistic, f.severity) for f in findings] == [
        ("calls_to_new_countries", Severity.MEDIUM)
    ]
    assert "FR" in findings[0].summary and "NG" in findings[0].summary


def test_irsf_lets_a_settled_tenant_open_one_new_market() -> None:
    detector = IrsfDetector(IrsfParams(learning_calls=20, new_country_calls=3))
    history = settled()
    spain = [
        call(100 + i, LATER + 2000 + i * 60, f"+3491123{4500 + i}", duration=90) for i in range(8)
    ]
    assert feed(detector, context(), history + spain) == []
    # A second new country within the day is the spread of test calls after a takeover.
    more = [
        call(200 + i, LATER + 3000 + i * 60, f"+3906123{4500 + i}", duration=30) for i in range(3)
    ]
    findings = feed(detector, context(), more)
    assert [f.statistic for f in findings] == ["calls_to_new_countries"]


def test_irsf_raises_at_once_when_the_one_new_country_is_risky() -> None:
    detector = IrsfDetector(IrsfParams(learning_calls=20, new_country_calls=3))
    history = settled()
    latvia = [call(100 + i, LATER + 2000 + i * 60, f"+3716700{1000 + i}") for i in range(3)]
    findings = [
        f for f in feed(detector, context(), history + latvia) if f.key_kind is KeyKind.TENANT
    ]
    assert [(f.severity, f.action) for f in findings] == [(Severity.HIGH, SuggestedAction.THROTTLE)]


def test_irsf_learns_the_countries_a_new_tenant_calls_without_raising() -> None:
    detector = IrsfDetector(IrsfParams(learning_calls=20, new_country_calls=3))
    calls = [
        call(i, i * 60, ("+33612345678", "+2348031234567", "+37120000000")[i % 3])
        for i in range(15)
    ]
    assert feed(detector, context(), calls) == []


def test_irsf_learns_the_countries_of_a_tenants_first_busy_day() -> None:
    # Past 20 calls within its first hour, the tenant's usual foreign countries appear for the
    # first time on its first morning: still its learning day, so they are learnt, not new.
    detector = IrsfDetector(IrsfParams(learning_calls=20, new_country_calls=3))
    domestic = [call(i, i * 60, f"+1212664{1000 + i}", duration=60) for i in range(25)]
    usual = [
        call(100 + i, 1_600 + i * 60, ("+33612345678", "+2348031234567", "+4930123456")[i % 3])
        for i in range(6)
    ]
    assert feed(detector, context(), domestic + usual) == []


def test_irsf_still_finds_new_countries_called_again_days_after_a_first_takeover() -> None:
    detector = IrsfDetector(IrsfParams(learning_calls=20, new_country_calls=3))
    ctx = context()
    first = [
        call(100 + i, LATER + 2000 + i * 60, ("+33612345678", "+2348031234567")[i % 2])
        for i in range(3)
    ]
    assert feed(detector, ctx, settled() + first)
    # Three days later, the same two countries again: called on two days only, still new.
    again = [
        call(200 + i, LATER + 3 * DAY + i * 60, ("+33612345678", "+2348031234567")[i % 2])
        for i in range(3)
    ]
    findings = feed(detector, ctx, again)
    assert [f.statistic for f in findings] == ["calls_to_new_countries"]


def test_irsf_counts_only_the_hours_new_countries_toward_the_several_needed() -> None:
    # Countries of an earlier takeover are still new days later; a tenant opening one new
    # market then is one new country in the hour, not several.
    detector = IrsfDetector(IrsfParams(learning_calls=20, new_country_calls=3))
    ctx = context()
    takeover = [
        call(100 + i, LATER + 2000 + i * 60, ("+33612345678", "+2348031234567")[i % 2])
        for i in range(3)
    ]
    assert feed(detector, ctx, settled() + takeover)
    spain = [
        call(200 + i, LATER + 2 * DAY + i * 60, f"+3491123{4500 + i}", duration=90)
        for i in range(8)
    ]
    assert feed(detector, ctx, spain) == []


def premium_day(day: int, start: int, count: int = 8) -> list[CallRecord]:
    """``count`` one-minute premium calls at 0.50 a minute within five minutes, on ``day``."""
    return [
        call(day * 100 + i, day * DAY + start + i * 25, f"+1900555{1000 + i}", duration=60)
        for i in range(count)
    ]


def test_irsf_raises_higher_for_a_tenant_whose_trade_is_premium_calls() -> None:
    # Eight premium calls at 0.50 a minute in five minutes score 8: past fast_score (3), but a
    # tenant that has called these numbers on three earlier days has thresholds of 3 x 3 = 9
    # fast and 45 slow, so only the first three days raise findings.
    detector = IrsfDetector()
    ctx = context()
    days = [feed(detector, ctx, premium_day(day, 36_000)) for day in range(5)]
    assert [bool(findings) for findings in days] == [True, True, True, False, False]
    # An expensive burst still crosses the raised threshold: 9 calls of 8 minutes score 40.5.
    burst = [
        call(900 + i, 5 * DAY + 36_000 + i * 25, f"+1900555{2000 + i}", duration=480)
        for i in range(9)
    ]
    findings = feed(detector, ctx, burst)
    assert findings and findings[0].threshold == 9.0


def test_irsf_keeps_ordinary_thresholds_for_a_country_the_tenant_never_called() -> None:
    detector = IrsfDetector()
    ctx = context()
    for day in range(5):
        feed(detector, ctx, premium_day(day, 36_000, count=2))
    latvia = [call(700 + i, 5 * DAY + i * 20, f"+3716700{1000 + i}", duration=60) for i in range(4)]
    findings = feed(detector, ctx, latvia)
    assert findings and findings[0].key == "+371" and findings[0].threshold == 3.0


def test_irsf_state_stays_within_its_key_bound() -> None:
    detector = IrsfDetector(max_keys=50, max_evidence=5)
    ctx = context()
    for i in range(2_000):
        record = call(i, i, f"+1900555{1000 + i % 9000}", tenant=f"t{i}")
        detector.observe(record, ctx.event(record))
    assert detector.state_size() <= 3 * 50 + 50 * (30 + 60 + 5) + 50 * (1 + 60 + 60 + 5)


# -- Wangiri ---------------------------------------------------------------------------------


def test_wangiri_raises_when_the_tenant_calls_back_a_foreign_one_ring_caller() -> None:
    missed = call(1, 0, "+12126640000", caller="+37167000001", direction=IN, ring=2)
    callback = call(2, 600, "+37167000001", duration=120)
    findings = feed(WangiriDetector(), context(), [missed, callback])
    assert len(findings) == 1
    finding = findings[0]
    assert finding.key == "+37167000001" and finding.key_kind is KeyKind.NUMBER
    assert finding.severity is Severity.HIGH  # priced at 0.60 a minute
    assert finding.action is SuggestedAction.BLOCK_PREFIX
    assert finding.evidence == ("c2",)


def one_ring_wave(count: int, *, caller: str = "+3716700{:04d}") -> list[CallRecord]:
    """``count`` one-ring calls from different numbers, a minute apart."""
    return [
        call(i, i * 60, "+12126640000", caller=caller.format(1000 + i), direction=IN, ring=2)
        for i in range(count)
    ]


def test_wangiri_raises_low_on_a_wave_of_one_ring_calls_before_any_call_back() -> None:
    findings = feed(WangiriDetector(), context(), one_ring_wave(8))
    assert [(f.statistic, f.key, f.severity, f.value) for f in findings] == [
        ("one_ring_callers", "+371", Severity.LOW, 5)
    ]
    assert findings[0].action is SuggestedAction.BLOCK_PREFIX
    assert findings[0].evidence[-1] == "c4"  # the fifth call gave it away


def test_wangiri_is_quiet_for_a_few_foreign_customers_hanging_up_at_once() -> None:
    # Four from one country code, and others of several countries: no wave.
    calls = one_ring_wave(4) + [
        call(10 + i, 300 + i * 60, "+12126640000", caller=number, direction=IN, ring=2)
        for i, number in enumerate(("+33612345678", "+4930123456", "+2348031234567"))
    ]
    assert feed(WangiriDetector(), context(), calls) == []


def test_wangiri_ignores_a_call_back_to_a_domestic_missed_call() -> None:
    missed = call(1, 0, "+12126640000", caller="+12126647665", direction=IN, ring=2)
    callback = call(2, 600, "+12126647665", duration=120)
    assert feed(WangiriDetector(), context(), [missed, callback]) == []


def test_wangiri_ignores_a_call_back_to_a_foreign_caller_that_rang_normally() -> None:
    missed = call(1, 0, "+12126640000", caller="+37167000001", direction=IN, ring=25)
    callback = call(2, 600, "+37167000001", duration=120)
    assert feed(WangiriDetector(), context(), [missed, callback]) == []


def test_wangiri_raises_on_one_ring_calls_placed_by_the_tenant() -> None:
    calls = [call(i, i * 6, f"+1212664{1000 + i}", ring=2) for i in range(150)]
    findings = feed(WangiriDetector(), context(), calls)
    assert [(f.statistic, f.severity, f.key) for f in findings] == [
        ("one_ring_share", Severity.HIGH, "+12126640000")
    ]
    assert findings[0].action is SuggestedAction.SUSPEND_NUMBER


def test_wangiri_is_quiet_for_a_dialer_whose_calls_ring_normally() -> None:
    calls = [
        call(i, i * 6, f"+1212664{1000 + i}", ring=20, duration=90 if i % 3 == 0 else 0)
        for i in range(300)
    ]
    assert feed(WangiriDetector(), context(), calls) == []


def test_wangiri_state_stays_within_its_key_bound() -> None:
    detector = WangiriDetector(max_keys=40, max_evidence=5)
    ctx = context()
    for i in range(3_000):
        record = call(i, i, f"+1212664{1000 + i % 8000}", caller=f"+1212665{1000 + i}", ring=2)
        detector.observe(record, ctx.event(record))
        inbound = call(i, i, "+12126640000", caller=f"+3716700{1000 + i}", direction=IN, ring=2)
        detector.observe(inbound, ctx.event(inbound))
    bound = 40 * 3 + 40 + 40 * (60 + 512 + 5) + 40 * (60 + 5) + 40 * (64 + 5)
    assert detector.state_size() <= bound


# -- Traffic pumping -------------------------------------------------------------------------


def test_pumping_raises_when_minutes_concentrate_on_a_costly_range() -> None:
    calls = [call(i, i * 30, f"+3716700{1000 + i % 5}", duration=1_500) for i in range(10)]
    findings = [
        f for f in feed(PumpingDetector(), context(), calls) if f.statistic == "minutes_to_range"
    ]
    assert findings and findings[0].key == "+3716700"
    assert findings[0].action is SuggestedAction.BLOCK_PREFIX


def test_pumping_raises_medium_early_when_a_costly_ranges_few_numbers_are_called_again() -> None:
    # Three 10-minute calls to two numbers of a range at 0.60 a minute: 30 minutes, far under
    # the 120 of the high finding, but the same two numbers again and again.
    calls = [call(i, i * 700, f"+3716700100{i % 2}", duration=600, user=f"u{i}") for i in range(4)]
    findings = feed(PumpingDetector(), context(), calls)
    ranges = [f for f in findings if f.statistic == "minutes_to_range"]
    assert [(f.severity, f.key, f.action) for f in ranges] == [
        (Severity.MEDIUM, "+3716700", SuggestedAction.NONE)
    ]
    assert ranges[0].evidence[-1] == "c2"


def test_pumping_is_quiet_for_different_customers_of_a_costly_range() -> None:
    # Forty minutes to a costly range, every call to a different number: customers, not pumping.
    calls = [call(i, i * 700, f"+3716700{1000 + i}", duration=600, user=f"u{i}") for i in range(4)]
    assert feed(PumpingDetector(), context(), calls) == []


def test_pumping_raises_medium_on_four_long_calls_to_a_new_number_then_high_at_ten() -> None:
    calls = [call(i, i * 1_500, "+12126647665", duration=1_200) for i in range(10)]
    findings = feed(PumpingDetector(), context(), calls)
    assert [(f.severity, f.action, f.evidence[-1]) for f in findings] == [
        (Severity.MEDIUM, SuggestedAction.NONE, "c3"),
        (Severity.HIGH, SuggestedAction.BLOCK_PREFIX, "c9"),
    ]


def test_pumping_is_quiet_when_minutes_concentrate_on_a_cheap_domestic_range() -> None:
    calls = [
        call(i, i * 30, f"+1212664{1000 + i}", duration=1_500, user=f"u{i}") for i in range(40)
    ]
    assert feed(PumpingDetector(), context(), calls) == []


def test_pumping_raises_on_sudden_long_calls_to_a_number_with_no_history() -> None:
    calls = [call(i, i * 400, "+12126647665", duration=360) for i in range(12)]
    findings = feed(PumpingDetector(), context(), calls)
    assert [(f.statistic, f.key, f.severity) for f in findings] == [
        ("minutes_to_new_number", "+12126647665", Severity.HIGH)
    ]


def test_pumping_is_quiet_for_a_new_hotline_called_by_many_people() -> None:
    calls = [
        call(i, i * 60, "+12126647665", caller=f"+1212555{1000 + i}", direction=IN, duration=400)
        for i in range(30)
    ]
    assert feed(PumpingDetector(), context(), calls) == []


def test_pumping_state_stays_within_its_key_bound() -> None:
    detector = PumpingDetector(max_keys=30, max_evidence=4)
    ctx = context()
    for i in range(2_000):
        record = call(i, i * 3, f"+3716700{1000 + i}", duration=60, tenant=f"t{i % 50}")
        detector.observe(record, ctx.event(record))
    assert detector.state_size() <= 30 * 4 + 30 * 60 + 30 * (60 + 64 + 4) + 30 * (4 + 8)


# -- SIM boxes -------------------------------------------------------------------------------


def simbox_traffic() -> list[CallRecord]:
    """A gateway: outbound only, 40 SIM numbers rotating, 40-second calls."""
    return [
        call(
            i,
            i * 30,
            f"+1212664{1000 + i}",
            caller=f"+447400{100000 + i % 40}",
            duration=40,
            trunk="gw",
        )
        for i in range(60)
    ]


def test_simbox_raises_on_a_trunk_with_every_sim_box_signal() -> None:
    findings = feed(SimBoxDetector(), context(), simbox_traffic())
    assert [f.severity for f in findings] == [Severity.MEDIUM, Severity.HIGH]
    finding = findings[-1]
    assert finding.key_kind is KeyKind.TRUNK and finding.key == "gw"
    assert finding.severity is Severity.HIGH and finding.clause_ids == ("FRD-6",)
    assert "one-way traffic" in finding.summary and "short uniform calls" in finding.summary


def office_call_a_day_before() -> CallRecord:
    """A call on the tenant's own trunk a day and an hour before T0: a tenant known a while."""
    return call(0, -90_000, "+12126647665", caller="+12126640000", duration=60, trunk="pbx")


def new_trunk_calls(count: int) -> list[CallRecord]:
    """A new trunk's first calls, each from another SIM's mobile number, outbound only."""
    return [
        call(
            10 + i,
            i * 45,
            f"+1212664{1000 + i}",
            caller=f"+447400{100000 + i}",
            duration=40,
            trunk="gw",
        )
        for i in range(count)
    ]


def test_simbox_raises_low_on_a_new_trunk_rotating_mobile_caller_ids() -> None:
    findings = feed(SimBoxDetector(), context(), [office_call_a_day_before(), *new_trunk_calls(8)])
    assert [(f.severity, f.key, f.value, f.action) for f in findings] == [
        (Severity.LOW, "gw", 5, SuggestedAction.NONE)
    ]
    assert findings[0].evidence[-1] == "c14"  # the fifth call on the new trunk


def test_simbox_is_quiet_for_the_first_trunks_of_a_tenant_just_connected() -> None:
    assert feed(SimBoxDetector(), context(), new_trunk_calls(8)) == []


def test_simbox_is_quiet_for_a_new_trunk_that_also_takes_calls() -> None:
    inbound = call(9, 10, "+12126640000", caller="+12126647665", direction=IN, trunk="gw")
    calls = [office_call_a_day_before(), inbound, *new_trunk_calls(8)]
    assert feed(SimBoxDetector(), context(), calls) == []


def test_simbox_exempts_a_tenant_with_written_consent() -> None:
    assert feed(SimBoxDetector(), context(sim_box_consent=True), simbox_traffic()) == []


def test_simbox_is_quiet_for_a_contact_centre_trunk() -> None:
    calls: list[CallRecord] = []
    for i in range(120):
        agent = i % 30
        calls.append(
            call(
                i,
                i * 30,
                f"+1212664{1000 + i}",
                caller=f"+1212665{1000 + agent}",
                direction=IN if i % 3 == 0 else OUT,
                duration=30 + (i * 37) % 600,
                trunk="office",
                user=f"agent{agent}",
            )
        )
    assert feed(SimBoxDetector(), context(), calls) == []


def test_simbox_is_quiet_for_agents_on_mobile_numbers_starting_their_day() -> None:
    # Thirty agents on their own mobile numbers, all outbound at the start of the day: many
    # mobile caller IDs, one-way traffic and one caller ID per call, but conversations of every
    # length, so no short uniform calls.
    calls = [
        call(
            i,
            i * 20,
            f"+1212664{1000 + i}",
            caller=f"+447400{100000 + i % 30}",
            duration=30 + (i * 53) % 500,
            trunk="office",
            user=f"agent{i % 30}",
        )
        for i in range(40)
    ]
    assert feed(SimBoxDetector(), context(), calls) == []


def test_simbox_state_stays_within_its_key_bound() -> None:
    detector = SimBoxDetector(max_keys=20, max_evidence=3)
    ctx = context()
    for i in range(1_000):
        record = call(i, i, "+12126647665", caller=f"+447400{100000 + i}", trunk=f"gw{i}")
        detector.observe(record, ctx.event(record))
    assert detector.state_size() <= 20 * 2 + 20 * (60 + 256 + 256 + 3)
