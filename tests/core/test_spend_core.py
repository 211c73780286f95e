"""The pure parts of monthly charge limits: budget months, reservations, alert marks."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from callwarden.core.counters import SpendMark
from callwarden.core.rating import Rate, cost
from callwarden.core.spend import (
    SpendLimits,
    affordable_seconds,
    alert_marks,
    billable_seconds,
    decode_rate,
    encode_rate,
    month_of,
    reservation_bounds,
)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_the_budget_month_turns_at_midnight_in_the_tenants_timezone() -> None:
    late = at("2026-11-30T23:30:00")
    assert month_of(late, "UTC") == "2026-11"
    assert month_of(late, "Europe/Warsaw") == "2026-12"
    assert month_of(at("2026-12-01T03:00:00"), "America/New_York") == "2026-11"


def test_alert_marks_are_50_80_and_100_percent_of_each_limit() -> None:
    marks = alert_marks(SpendLimits(hard_minor=10_000, soft_minor=5))
    assert marks == (
        SpendMark("hard:50", 5_000),
        SpendMark("hard:80", 8_000),
        SpendMark("hard:100", 10_000),
        SpendMark("soft:50", 3),
        SpendMark("soft:80", 4),
        SpendMark("soft:100", 5),
    )
    assert alert_marks(SpendLimits()) == ()


def test_a_reservation_wants_the_longest_call_and_needs_the_first_increment() -> None:
    rate = Rate("44", 600_000_000, 100_000_000, 30, 6, 0, "EUR")  # 0.60/min + 0.10
    wanted, minimum = reservation_bounds(rate, 600)
    assert wanted == cost(rate, 600).minor == 610
    assert minimum == cost(rate, 30).minor == 40


def test_reported_durations_are_billed_in_whole_seconds_rounded_up() -> None:
    assert billable_seconds(0.0) == 0
    assert billable_seconds(59.01) == 60
    assert billable_seconds(60.0) == 60


rates = st.builds(
    Rate,
    prefix=st.from_regex(r"[1-9][0-9]{0,5}", fullmatch=True),
    rate_per_minute_nano=st.integers(0, 10**11),
    connection_fee_nano=st.integers(0, 10**10),
    initial_s=st.integers(1, 120),
    subsequent_s=st.integers(1, 120),
    effective_from=st.integers(0, 2**40),
    currency=st.sampled_from(["EUR", "USD", "JPY", "KWD"]),
    description=st.just(""),
)


@given(rates)
def test_an_encoded_rate_decodes_to_the_same_price(rate: Rate) -> None:
    assert decode_rate(encode_rate(rate)) == rate


@given(rates, st.integers(0, 10**6), st.integers(1, 86_400))
def test_the_affordable_call_never_costs_more_than_its_reservation(
    rate: Rate, granted: int, cap: int
) -> None:
    seconds = affordable_seconds(rate, granted, cap)
    assert 0 <= seconds <= cap
    if seconds:
        assert cost(rate, seconds).minor <= granted
