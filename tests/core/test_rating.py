"""Rating: billed durations, exact costs, affordable durations, deck lookups by prefix and date."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callwarden.core.rating import (
    MAX_INCREMENT_S,
    PRICE_SCALE,
    Money,
    Rate,
    RateDeck,
    affordable_duration,
    billed_duration,
    cost,
    format_price,
    make_rate,
    minor_unit_exponent,
    parse_price,
)

JAN = 1_704_067_200  # 2024-01-01T00:00:00Z
JUL = 1_719_792_000  # 2024-07-01T00:00:00Z
NEXT_JAN = 1_735_689_600  # 2025-01-01T00:00:00Z


def usd(prefix: str, rate: str, **kwargs: object) -> Rate:
    """A checked USD rate (60/60 unless told otherwise)."""
    return make_rate(prefix, rate, currency="USD", **kwargs)  # type: ignore[arg-type]


# --- billed duration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("increments", "duration", "billed"),
    [
        ((60, 60), 1, 60),
        ((60, 60), 60, 60),
        ((60, 60), 61, 120),
        ((30, 6), 1, 30),
        ((30, 6), 30, 30),
        ((30, 6), 31, 36),
        ((30, 6), 36, 36),
        ((30, 6), 37, 42),
        ((1, 1), 17, 17),
        ((60, 1), 61, 61),
    ],
)
def test_billed_duration_applies_initial_then_subsequent_increments(
    increments: tuple[int, int], duration: int, billed: int
) -> None:
    assert billed_duration(duration, *increments) == billed


def test_unanswered_call_is_billed_zero_seconds() -> None:
    assert billed_duration(0, 60, 60) == 0


def test_negative_duration_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        billed_duration(-1, 60, 60)


def test_fractional_duration_is_refused_rather_than_billed_inexactly() -> None:
    with pytest.raises(TypeError, match="whole seconds"):
        cost(usd("44", "0.01"), 30.5)  # type: ignore[arg-type]


increments = st.integers(1, MAX_INCREMENT_S)
durations = st.integers(0, 20_000)


def is_billable_step(seconds: int, initial: int, subsequent: int) -> bool:
    """0, or the initial increment plus whole subsequent increments."""
    return seconds == 0 or (seconds >= initial and (seconds - initial) % subsequent == 0)


@settings(max_examples=300)
@given(duration=durations, initial=increments, subsequent=increments)
def test_billed_duration_is_never_below_the_actual_duration(
    duration: int, initial: int, subsequent: int
) -> None:
    assert billed_duration(duration, initial, subsequent) >= duration


@settings(max_examples=300)
@given(duration=durations, initial=increments, subsequent=increments)
def test_billed_duration_is_the_smallest_billable_step_covering_the_call(
    duration: int, initial: int, subsequent: int
) -> None:
    billed = billed_duration(duration, initial, subsequent)
    assert is_billable_step(billed, initial, subsequent)
    # No shorter billable step covers the call (an answered call is never billed 0 s).
    smallest = next(
        b
        for b in range(duration, duration + initial + subsequent + 1)
        if is_billable_step(b, initial, subsequent) and (b > 0 or duration == 0)
    )
    assert billed == smallest


# --- cost ------------------------------------------------------------------------------------


def test_cost_is_connection_fee_plus_rate_for_the_billed_minutes() -> None:
    rate = usd("447", "0.085", connection_fee="0.01", increments=(30, 6))
    assert cost(rate, 31) == Money(6, "USD")  # 0.01 + 0.085 * 36/60 = 0.061
    assert cost(rate, 3600) == Money(511, "USD")  # 0.01 + 0.085 * 60


def test_unanswered_call_costs_nothing_not_even_the_connection_fee() -> None:
    assert cost(usd("44", "0.5", connection_fee="1"), 0) == Money(0, "USD")


def test_cost_rounds_a_half_minor_unit_up() -> None:
    # 0.30 a minute for 1 s is exactly half a cent.
    assert cost(usd("44", "0.30", increments=(1, 1)), 1) == Money(1, "USD")


def test_cost_rounds_less_than_half_a_minor_unit_down() -> None:
    # 0.29 a minute for 1 s is 0.4833... cents.
    assert cost(usd("44", "0.29", increments=(1, 1)), 1) == Money(0, "USD")


def test_cost_rounds_once_at_the_end_not_per_part() -> None:
    # Fee 0.004 and usage 0.004 are each under half a cent, together 0.8 of a cent.
    rate = usd("44", "0.24", connection_fee="0.004", increments=(1, 1))
    assert cost(rate, 1) == Money(1, "USD")


@pytest.mark.parametrize(
    ("currency", "expected_minor"),
    [("JPY", 12), ("USD", 1235), ("BHD", 12345)],  # 12.345 rounded half up
)
def test_cost_is_in_the_currencys_own_minor_unit(currency: str, expected_minor: int) -> None:
    rate = make_rate("81", "12.345", currency=currency)  # one minute: 12.345 major units
    assert minor_unit_exponent(currency) in (0, 2, 3)
    assert cost(rate, 60) == Money(expected_minor, currency)


rates_strategy = st.builds(
    lambda per_minute, fee, initial, subsequent: Rate(
        "44", per_minute, fee, initial, subsequent, 0, "USD"
    ),
    st.integers(0, 50 * PRICE_SCALE),
    st.one_of(st.just(0), st.integers(0, 2 * PRICE_SCALE)),
    increments,
    increments,
)


def reference_cost_minor(rate: Rate, duration: int) -> int:
    """Exact rational cost in cents, rounded half up: an independent model of `cost`."""
    billed = billed_duration(duration, rate.initial_s, rate.subsequent_s)
    if billed == 0:
        return 0
    major = Fraction(rate.connection_fee_nano, PRICE_SCALE) + Fraction(
        rate.rate_per_minute_nano * billed, 60 * PRICE_SCALE
    )
    cents = major * 100
    whole = cents.numerator // cents.denominator
    return whole + (1 if cents - whole >= Fraction(1, 2) else 0)


@settings(max_examples=300)
@given(rate=rates_strategy, duration=durations)
def test_cost_equals_the_exact_rational_cost_rounded_half_up(rate: Rate, duration: int) -> None:
    assert cost(rate, duration).minor == reference_cost_minor(rate, duration)


@settings(max_examples=300)
@given(rate=rates_strategy, shorter=durations, extra=st.integers(0, 5_000))
def test_cost_never_falls_as_the_duration_grows(rate: Rate, shorter: int, extra: int) -> None:
    assert cost(rate, shorter) <= cost(rate, shorter + extra)


# --- affordable duration --------------------------------------------------------------------


def next_billable_step(rate: Rate, billed: int) -> int:
    return rate.initial_s if billed == 0 else billed + rate.subsequent_s


def test_affordable_duration_is_the_longest_step_the_budget_pays_for() -> None:
    rate = usd("447", "0.085", connection_fee="0.01", increments=(30, 6))
    assert affordable_duration(rate, Money(100, "USD")) == 702
    assert cost(rate, 702) == Money(100, "USD")  # 1.0045 rounds to 1.00
    assert cost(rate, 708) == Money(101, "USD")


def test_affordable_duration_is_zero_when_the_first_increment_costs_too_much() -> None:
    assert affordable_duration(usd("44", "1.00"), Money(99, "USD")) == 0


def test_affordable_duration_is_zero_when_the_connection_fee_alone_is_too_much() -> None:
    assert affordable_duration(usd("44", "0", connection_fee="1"), Money(99, "USD")) == 0


def test_affordable_duration_is_zero_for_an_overspent_budget() -> None:
    assert affordable_duration(usd("44", "0.01"), Money(-5, "USD")) == 0


def test_affordable_duration_is_unlimited_for_a_free_rate_whose_fee_fits() -> None:
    assert affordable_duration(usd("800", "0", connection_fee="0.05"), Money(5, "USD")) is None


def test_affordable_duration_refuses_a_budget_in_another_currency() -> None:
    with pytest.raises(ValueError, match="budget is in EUR, the rate in USD"):
        affordable_duration(usd("44", "0.01"), Money(100, "EUR"))


@settings(max_examples=500)
@given(rate=rates_strategy, budget=st.integers(0, 500_00))
def test_affordable_duration_fits_the_budget_and_the_next_step_does_not(
    rate: Rate, budget: int
) -> None:
    money = Money(budget, "USD")
    affordable = affordable_duration(rate, money)
    if affordable is None:
        assert rate.rate_per_minute_nano == 0
        assert cost(rate, 10**9) <= money
        return
    assert is_billable_step(affordable, rate.initial_s, rate.subsequent_s)
    assert cost(rate, affordable) <= money
    assert cost(rate, next_billable_step(rate, affordable)) > money


# --- money and prices -----------------------------------------------------------------------


def test_price_text_converts_exactly_to_nano_units() -> None:
    assert parse_price("0.0123") == 12_300_000
    assert parse_price(" 2 ") == 2 * PRICE_SCALE
    assert parse_price(".5") == PRICE_SCALE // 2
    assert parse_price("0.000000001") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "price is empty"),
        ("-0.01", "price '-0.01' is negative"),
        ("0,01", "price '0,01' has a comma"),
        ("1e-3", "price '1e-3' is not a decimal number"),
        ("0.0000000001", "price '0.0000000001' has 10 decimals, at most 9"),
        ("$1", "price '\\$1' is not a decimal number"),
    ],
)
def test_bad_price_text_is_refused_saying_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_price(text)


@given(st.integers(0, 10**15))
def test_formatted_price_parses_back_to_the_same_nano_units(nano: int) -> None:
    assert parse_price(format_price(nano)) == nano


def test_money_parses_exact_minor_units_and_prints_them_back() -> None:
    assert Money.parse("12.34", "USD") == Money(1234, "USD")
    assert Money.parse("-0.5", "EUR") == Money(-50, "EUR")
    assert Money.parse("1500", "JPY") == Money(1500, "JPY")
    assert str(Money(12345, "BHD")) == "12.345 BHD"
    assert str(Money(-5, "USD")) == "-0.05 USD"


def test_money_refuses_more_decimals_than_the_currency_has() -> None:
    with pytest.raises(ValueError, match="has 3 decimals; USD has 2"):
        Money.parse("1.005", "USD")


def test_money_in_different_currencies_does_not_mix() -> None:
    with pytest.raises(ValueError, match="cannot combine USD with EUR"):
        _ = Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(ValueError, match="cannot combine"):
        _ = Money(1, "USD") < Money(1, "EUR")


def test_money_adds_subtracts_and_compares_within_a_currency() -> None:
    assert Money(5, "USD") + Money(7, "USD") == Money(12, "USD")
    assert Money(5, "USD") - Money(7, "USD") == Money(-2, "USD")
    assert Money(5, "USD") < Money(7, "USD") <= Money(7, "USD")


# --- rates --------------------------------------------------------------------------------------


def test_make_rate_drops_a_leading_plus_and_reads_prices_as_major_units() -> None:
    rate = usd("+44", "0.012", connection_fee="0.5", increments=(30, 6), description="UK")
    assert rate == Rate("44", 12_000_000, 500_000_000, 30, 6, 0, "USD", "UK")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": "44a"}, "prefix '44a' must be the digits 0-9"),
        ({"prefix": "1234567890123456"}, "has 16 digits, at most 15"),
        ({"increments": (0, 60)}, "initial_s must be an integer from 1 to 3600"),
        ({"increments": (60, 3601)}, "subsequent_s must be an integer from 1 to 3600"),
        ({"currency": "usd"}, "currency 'usd' is not an ISO 4217 code"),
        ({"rate_per_minute": -1}, "rate_per_minute_nano must be a non-negative integer"),
    ],
)
def test_make_rate_refuses_unsound_fields(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"prefix": "44", "rate_per_minute": "0.01", "currency": "USD"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        make_rate(**args)  # type: ignore[arg-type]


# --- the deck -------------------------------------------------------------------------------


def test_longest_matching_prefix_rates_the_call() -> None:
    deck = RateDeck([usd("44", "0.01"), usd("447", "0.08"), usd("4479", "0.20")])
    assert deck.lookup("447700900123", JAN) == usd("447", "0.08")
    assert deck.lookup("447912345678", JAN) == usd("4479", "0.20")
    assert deck.lookup("442079460018", JAN) == usd("44", "0.01")


def test_number_with_no_matching_prefix_has_no_rate() -> None:
    assert RateDeck([usd("44", "0.01")]).lookup("33142685300", JAN) is None


def test_leading_plus_of_the_number_is_ignored() -> None:
    assert RateDeck([usd("44", "0.01")]).lookup("+442079460018", JAN) == usd("44", "0.01")


def test_number_shorter_than_a_prefix_does_not_match_it() -> None:
    assert RateDeck([usd("4479", "0.2")]).lookup("447", JAN) is None


def test_latest_version_in_force_at_the_call_time_applies() -> None:
    old = usd("44", "0.01", effective_from=JAN)
    new = usd("44", "0.02", effective_from=JUL)
    deck = RateDeck([new, old])
    assert deck.lookup("442079460018", JAN - 1) is None
    assert deck.lookup("442079460018", JAN) == old
    assert deck.lookup("442079460018", JUL - 0.5) == old
    assert deck.lookup("442079460018", JUL) == new
    assert deck.versions("44") == (old, new)


def test_shorter_prefix_rates_calls_until_a_longer_one_takes_effect() -> None:
    country = usd("44", "0.01", effective_from=JAN)
    mobile = usd("447", "0.08", effective_from=JUL)
    deck = RateDeck([country, mobile])
    assert deck.lookup("447700900123", JAN) == country
    assert deck.lookup("447700900123", JUL) == mobile


def test_deck_refuses_two_rates_for_one_prefix_and_effective_date() -> None:
    with pytest.raises(ValueError, match="prefix '44' has two rates effective from 0"):
        RateDeck([usd("44", "0.01"), usd("44", "0.02")])


def test_deck_refuses_rates_in_two_currencies() -> None:
    with pytest.raises(ValueError, match="is in EUR, the deck in USD"):
        RateDeck([usd("44", "0.01"), make_rate("33", "0.01", currency="EUR")])


def test_deck_refuses_an_unsound_rate_built_without_make_rate() -> None:
    with pytest.raises(ValueError, match="rate_per_minute_nano must be a non-negative"):
        RateDeck([Rate("44", -1, 0, 60, 60, 0, "USD")])


def test_empty_deck_needs_its_currency() -> None:
    with pytest.raises(ValueError, match="an empty deck needs its currency"):
        RateDeck([])
    assert RateDeck([], currency="EUR").currency == "EUR"


def test_deck_counts_rates_and_prefixes_and_iterates_every_rate() -> None:
    rates = [
        usd("44", "0.01", effective_from=JAN),
        usd("44", "0.02", effective_from=JUL),
        usd("447", "0.08"),
    ]
    deck = RateDeck(rates)
    assert len(deck) == 3
    assert deck.prefix_count == 2
    assert sorted(deck) == sorted(rates)
    assert deck.versions("4") == ()
    assert repr(deck) == "RateDeck(3 rates, 2 prefixes, USD)"


deck_rates = st.lists(
    st.builds(
        lambda prefix, effective, per_minute: Rate(prefix, per_minute, 0, 60, 60, effective, "USD"),
        st.text("123", min_size=1, max_size=5),
        st.sampled_from((JAN, JUL, NEXT_JAN)),
        st.integers(0, 10**9),
    ),
    max_size=40,
    unique_by=lambda rate: (rate.prefix, rate.effective_from),
)
call_times = st.sampled_from((JAN - 1, JAN, JUL - 1, JUL, NEXT_JAN - 1, NEXT_JAN, NEXT_JAN + 9))


def reference_lookup(rates: list[Rate], number: str, at: float) -> Rate | None:
    """Brute force: of every rate whose prefix starts the number and which is in force, the one
    with the longest prefix, then the latest effective date."""
    candidates = [r for r in rates if number.startswith(r.prefix) and r.effective_from <= at]
    return max(candidates, key=lambda r: (len(r.prefix), r.effective_from), default=None)


@settings(max_examples=300)
@given(rates=deck_rates, number=st.text("123", min_size=1, max_size=8), at=call_times)
def test_lookup_matches_a_brute_force_longest_prefix_reference(
    rates: list[Rate], number: str, at: float
) -> None:
    deck = RateDeck(rates, currency="USD")
    assert deck.lookup(number, at) == reference_lookup(rates, number, at)


@settings(max_examples=200)
@given(
    effective=st.lists(st.integers(0, 10**9), min_size=1, max_size=8, unique=True),
    at=st.integers(-1, 10**9 + 1),
)
def test_lookup_picks_the_version_with_the_latest_effective_date_not_after_the_call(
    effective: list[int], at: int
) -> None:
    versions = [Rate("44", n, 0, 60, 60, start, "USD") for n, start in enumerate(effective)]
    found = RateDeck(versions).lookup("441234", at)
    in_force = [start for start in effective if start <= at]
    if not in_force:
        assert found is None
    else:
        assert found is not None
        assert found.effective_from == max(in_force)
