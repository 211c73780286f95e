"""Pure limit arithmetic: Rate, GCRA and rolling windows (no I/O, no clock)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callwarden.core.limits import (
    Rate,
    from_micros,
    gcra,
    gcra_all,
    to_micros,
    window_decide,
)

SECOND = 1_000_000


# -- Rate ------------------------------------------------------------------------------------


def test_rate_interval_and_tolerance() -> None:
    rate = Rate(10, 1.0, burst=4)
    assert rate.interval_us == 100_000
    assert rate.tolerance_us == 400_000
    assert str(rate) == "10/1s+4"


def test_rate_interval_rounds_up_so_the_pace_is_never_faster() -> None:
    assert Rate(3, 1.0).interval_us == 333_334
    assert Rate(3, 1.0).interval_us * 3 >= SECOND


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10/second", Rate(10, 1.0)),
        ("10/s", Rate(10, 1.0)),
        ("30 per minute", Rate(30, 60.0)),
        ("100/10s", Rate(100, 10.0)),
        ("10/s+5", Rate(10, 1.0, 5)),
        ("10/s burst 5", Rate(10, 1.0, 5)),
        ("5/h", Rate(5, 3600.0)),
        ("2/1.5min", Rate(2, 90.0)),
        ("1000/day", Rate(1000, 86400.0)),
    ],
)
def test_rate_parse(text: str, expected: Rate) -> None:
    assert Rate.parse(text) == expected


@pytest.mark.parametrize("text", ["", "10", "10/fortnight", "ten/second", "-1/s", "0/s", "10/0s"])
def test_rate_parse_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        Rate.parse(text)


@pytest.mark.parametrize(
    ("count", "period", "burst"),
    [(0, 1.0, 0), (-1, 1.0, 0), (1, 0.0, 0), (1, -1.0, 0), (1, float("nan"), 0), (1, 1.0, -1)],
)
def test_rate_rejects_invalid_values(count: int, period: float, burst: int) -> None:
    with pytest.raises(ValueError):
        Rate(count, period, burst)


def test_rate_finer_than_a_microsecond_is_refused() -> None:
    with pytest.raises(ValueError, match="microsecond"):
        Rate(10, 0.000001)


def test_micros_round_trip() -> None:
    assert to_micros(1_700_000_000.123456) == 1_700_000_000_123_456
    assert from_micros(1_700_000_000_123_456) == pytest.approx(1_700_000_000.123456)
    with pytest.raises(ValueError):
        to_micros(float("inf"))


# -- GCRA ------------------------------------------------------------------------------------


def test_gcra_burst_then_pace() -> None:
    rate = Rate(10, 1.0, burst=2)
    now = 1_700_000_000 * SECOND
    tat: int | None = None
    allowed = []
    for _ in range(5):
        d = gcra(tat, now, rate.interval_us, rate.tolerance_us)
        allowed.append(d.allowed)
        if d.allowed:
            tat = d.tat_us
    # burst + 1 pass back to back, then the pace (100 ms) applies.
    assert allowed == [True, True, True, False, False]
    d = gcra(tat, now, rate.interval_us, rate.tolerance_us)
    assert d.retry_after_us == 100_000
    assert gcra(tat, now + 100_000, rate.interval_us, rate.tolerance_us).allowed


def test_gcra_stale_tat_is_the_same_as_none() -> None:
    now = 5 * SECOND
    assert gcra(now - 1, now, 1000, 0) == gcra(None, now, 1000, 0)


def test_gcra_all_is_all_or_nothing_and_names_the_first_refusal() -> None:
    now = 10 * SECOND
    fast, slow = (1000, 0), (SECOND, 0)
    d = gcra_all([None, now + SECOND, now + 3 * SECOND], now, [fast, slow, slow])
    assert not d.allowed
    assert d.refused_index == 1
    assert d.retry_after_us == 3 * SECOND  # the longest wait among the refusals
    with pytest.raises(ValueError):
        gcra_all([None], now, [fast, slow])


@given(
    st.lists(
        st.tuples(
            st.none() | st.integers(0, 20 * SECOND),
            st.integers(1, 2 * SECOND),
            st.integers(0, 5 * SECOND),
        ),
        min_size=1,
        max_size=6,
    ),
    st.integers(0, 20 * SECOND),
)
def test_gcra_all_agrees_with_gcra_on_every_state(
    states: list[tuple[int | None, int, int]], now: int
) -> None:
    singles = [gcra(tat, now, interval, tolerance) for tat, interval, tolerance in states]
    d = gcra_all([s[0] for s in states], now, [(s[1], s[2]) for s in states])
    refusals = [i for i, single in enumerate(singles) if not single.allowed]
    assert d.allowed == (not refusals)
    assert d.refused_index == (refusals[0] if refusals else None)
    assert d.retry_after_us == max((singles[i].retry_after_us for i in refusals), default=0)
    assert d.tats_us == tuple(single.tat_us for single in singles)


def _token_bucket(times: list[int], interval: int, burst: int) -> list[tuple[bool, int]]:
    """Independent model: a bucket of burst + 1 tokens, one token per interval, level in us."""
    capacity = (burst + 1) * interval
    level = capacity
    last = times[0] if times else 0
    out = []
    for t in times:
        level = min(capacity, level + max(0, t - last))
        last = max(last, t)
        if level >= interval:
            level -= interval
            out.append((True, 0))
        else:
            out.append((False, interval - level))
    return out


rates = st.builds(
    Rate,
    count=st.integers(1, 20),
    period_s=st.sampled_from([0.5, 1.0, 3.0, 60.0]),
    burst=st.integers(0, 5),
)
gaps = st.lists(st.integers(0, 400_000), min_size=1, max_size=80)


@settings(max_examples=200)
@given(rate=rates, gaps=gaps)
def test_gcra_matches_a_token_bucket(rate: Rate, gaps: list[int]) -> None:
    now = 1_700_000_000 * SECOND
    times = []
    for g in gaps:
        now += g
        times.append(now)
    tat: int | None = None
    got = []
    for t in times:
        d = gcra(tat, t, rate.interval_us, rate.tolerance_us)
        if d.allowed:
            tat = d.tat_us
        got.append((d.allowed, d.retry_after_us))
    assert got == _token_bucket(times, rate.interval_us, rate.burst)


@settings(max_examples=200)
@given(rate=rates, gaps=gaps)
def test_gcra_never_admits_more_than_count_plus_burst_per_period(
    rate: Rate, gaps: list[int]
) -> None:
    now = 1_700_000_000 * SECOND
    tat: int | None = None
    admitted: list[int] = []
    for g in gaps:
        now += g
        d = gcra(tat, now, rate.interval_us, rate.tolerance_us)
        if d.allowed:
            tat = d.tat_us
            admitted.append(now)
    period = to_micros(rate.period_s)
    for i, start in enumerate(admitted):
        in_window = sum(1 for t in admitted[i:] if t < start + period)
        assert in_window <= rate.count + rate.burst


# -- rolling windows -------------------------------------------------------------------------


def test_window_counts_only_the_window_before_now() -> None:
    w = 10 * SECOND
    stamps = [1 * SECOND, 5 * SECOND, 9 * SECOND]
    d = window_decide(stamps, 11 * SECOND, w, limit=3)
    # the event at 1 s is exactly window_s old at 11 s: it has left the window
    assert (d.drop, d.count, d.admitted) == (1, 2, True)
    d = window_decide(stamps, 10 * SECOND, w, limit=3)
    assert (d.drop, d.count, d.admitted, d.retry_after_us) == (0, 3, False, 1 * SECOND)


def test_window_keeps_only_the_newest_limit_timestamps() -> None:
    stamps = [1, 2, 3, 4, 5]
    d = window_decide(stamps, 6, 100, limit=2)
    # only the newest two matter; the retry waits for the older of them (4) to leave
    assert (d.drop, d.count, d.admitted, d.retry_after_us) == (3, 2, False, 4 + 100 - 6)


def test_window_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        window_decide([], 0, 10, 0)
    with pytest.raises(ValueError):
        window_decide([], 0, 0, 1)


@settings(max_examples=200)
@given(
    limit=st.integers(1, 6),
    window=st.integers(1, 2_000),
    steps=st.lists(st.tuples(st.integers(0, 500), st.booleans()), min_size=1, max_size=80),
)
def test_window_never_admits_more_than_limit_per_window(
    limit: int, window: int, steps: list[tuple[int, bool]]
) -> None:
    stamps: list[int] = []
    recorded: list[int] = []
    now = 0
    for gap, record in steps:
        now += gap
        d = window_decide(stamps, now, window, limit)
        del stamps[: d.drop]
        assert len(stamps) <= limit
        naive = sum(1 for t in recorded if t > now - window)
        assert d.count == min(naive, limit)
        assert d.admitted == (naive < limit)
        if d.admitted and record:
            stamps.append(now)
            recorded.append(now)
    for i, start in enumerate(recorded):
        assert sum(1 for t in recorded[i:] if t < start + window) <= limit
