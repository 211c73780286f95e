"""Rolling windows and bounded state for detectors, held to naive models that keep every event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callwarden.core.detectors.windows import (
    FIVE_MINUTES,
    HOURS_PER_WEEK,
    ONE_DAY,
    ONE_HOUR,
    HourOfWeekBaseline,
    LruMap,
    RobustHistory,
    SlidingDistinct,
    SlidingSum,
    SlidingTotals,
    Window,
    median_mad,
    threshold_above,
)

SMALL = Window("small", 60, 6)  # 10-second buckets: many expiries in short examples

# An event: (seconds forward or back from the previous event, value, distinct item)
steps = st.lists(
    st.tuples(
        st.floats(min_value=-90, max_value=120, allow_nan=False),
        st.integers(min_value=0, max_value=5),
        st.integers(min_value=0, max_value=12),
    ),
    max_size=120,
)


def _bucket(t: float, window: Window) -> int:
    return int(t // window.width_s)


def _naive_in_window(events: list[tuple[float, int, int]], head: int, window: Window) -> list:
    return [e for e in events if head - window.buckets < _bucket(e[0], window) <= head]


@settings(max_examples=200, deadline=None)
@given(steps)
def test_sliding_sum_counts_what_a_naive_model_counts(events: list) -> None:
    sums = SlidingSum(SMALL)
    t = 1_700_000_000.0
    head: int | None = None
    seen: list[tuple[float, int, int]] = []
    for step, value, item in events:
        t += step
        seen.append((t, value, item))
        head = max(head, _bucket(t, SMALL)) if head is not None else _bucket(t, SMALL)
        total = sums.add(t, value)
        assert total == sum(v for _, v, _ in _naive_in_window(seen, head, SMALL))
    assert sums.size() <= SMALL.buckets


@settings(max_examples=200, deadline=None)
@given(steps)
def test_sliding_totals_move_every_field_like_separate_sums(events: list) -> None:
    totals = SlidingTotals(SMALL, 2)
    t = 1_700_000_000.0
    head: int | None = None
    seen: list[tuple[float, int, int]] = []
    for step, value, item in events:
        t += step
        seen.append((t, value, item))
        head = max(head, _bucket(t, SMALL)) if head is not None else _bucket(t, SMALL)
        got = totals.add(t, (value, item))
        inside = _naive_in_window(seen, head, SMALL)
        assert got == [sum(e[1] for e in inside), sum(e[2] for e in inside)]
    assert totals.size() <= SMALL.buckets


@settings(max_examples=200, deadline=None)
@given(steps)
def test_sliding_distinct_counts_exactly_below_its_cap(events: list) -> None:
    distinct: SlidingDistinct[int] = SlidingDistinct(SMALL, cap=64)
    t = 1_700_000_000.0
    head: int | None = None
    seen: list[tuple[float, int, int]] = []
    for step, value, item in events:
        t += step
        seen.append((t, value, item))
        head = max(head, _bucket(t, SMALL)) if head is not None else _bucket(t, SMALL)
        count = distinct.add(t, item)
        assert count == len({e[2] for e in _naive_in_window(seen, head, SMALL)})


@settings(max_examples=100, deadline=None)
@given(steps, st.integers(min_value=1, max_value=5))
def test_sliding_distinct_never_holds_more_than_its_cap(events: list, cap: int) -> None:
    distinct: SlidingDistinct[int] = SlidingDistinct(SMALL, cap=cap)
    t = 1_700_000_000.0
    head: int | None = None
    seen: list[tuple[float, int, int]] = []
    for step, value, item in events:
        t += step
        seen.append((t, value, item))
        head = max(head, _bucket(t, SMALL)) if head is not None else _bucket(t, SMALL)
        count = distinct.add(t, item)
        truth = len({e[2] for e in _naive_in_window(seen, head, SMALL)})
        assert count <= min(cap, truth)
        assert distinct.size() <= cap


@pytest.mark.parametrize("window", [FIVE_MINUTES, ONE_HOUR, ONE_DAY])
def test_windows_do_not_reset_at_midnight(window: Window) -> None:
    midnight = datetime(2025, 3, 4, tzinfo=UTC).timestamp()
    sums = SlidingSum(window)
    distinct: SlidingDistinct[str] = SlidingDistinct(window)
    for i, offset in enumerate((-120.0, -60.0, -1.0, 1.0, 60.0)):
        sums.add(midnight + offset)
        distinct.add(midnight + offset, f"n{i}")
    assert sums.total() == 5
    assert distinct.count() == 5


def test_event_older_than_the_window_is_counted_as_late_and_left_out() -> None:
    sums = SlidingSum(FIVE_MINUTES)
    sums.add(10_000.0)
    assert sums.add(10_000.0 - 400) == 1
    assert sums.late == 1


def test_total_moves_the_window_forward_when_asked_at_a_later_time() -> None:
    sums = SlidingSum(FIVE_MINUTES)
    sums.add(10_000.0, 3)
    assert sums.total(10_000.0 + 299) == 3
    assert sums.total(10_000.0 + 600) == 0
    assert sums.size() == 0


def test_window_refuses_a_span_that_does_not_split_into_its_buckets() -> None:
    with pytest.raises(ValueError, match="do not split"):
        Window("odd", 100, 7)


def test_lru_map_drops_the_least_recently_used_key() -> None:
    held: LruMap[str, list[int]] = LruMap(list, max_keys=2)
    held.get("a").append(1)
    held.get("b")
    held.get("a")  # a is now the most recently used
    held.get("c")
    assert "b" not in held
    assert held.get("a") == [1]
    assert len(held) == 2 and held.evicted == 1


def test_lru_map_never_holds_more_than_its_bound() -> None:
    held: LruMap[int, list[int]] = LruMap(list, max_keys=100)
    for key in range(10_000):
        held.get(key)
    assert len(held) == 100
    assert held.evicted == 9_900


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1))
def test_median_mad_match_their_definitions(values: list[float]) -> None:
    median, mad = median_mad(values)
    ordered = sorted(values)
    n = len(ordered)
    expected = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    assert median == pytest.approx(expected)
    assert sum(abs(v - median) <= mad for v in values) >= n / 2


def test_median_mad_ignore_one_outlier() -> None:
    median, mad = median_mad([10, 11, 9, 10, 1_000])
    assert median == 10
    assert mad == 1


def test_robust_history_keeps_only_the_last_values() -> None:
    history = RobustHistory(3)
    for value in (100.0, 1.0, 2.0, 3.0):
        history.add(value)
    assert history.size() == 3
    assert history.median_mad() == (2.0, 1.0)


def test_threshold_above_uses_the_largest_margin() -> None:
    assert threshold_above(10, 0, 5, 1.0, 20) == 30  # floor
    assert threshold_above(100, 0, 5, 1.0, 20) == 200  # relative
    assert threshold_above(100, 20, 5, 0.1, 1) == pytest.approx(100 + 5 * 1.4826 * 20)  # MAD


def test_hour_of_week_baseline_counts_quiet_weeks_as_zero() -> None:
    base = HourOfWeekBaseline(metrics=1, weeks=4)
    monday_9 = 2_900 * HOURS_PER_WEEK + 9
    base.add(monday_9, (50,))
    base.add(monday_9 + HOURS_PER_WEEK, (70,))
    # a week with nothing at Monday 09:00, then the fourth week
    base.add(monday_9 + 3 * HOURS_PER_WEEK, (5,))
    assert base.weeks_seen(monday_9 + 3 * HOURS_PER_WEEK) == 3
    assert base.baseline(monday_9 + 3 * HOURS_PER_WEEK, 0) == (50.0, 20.0)  # 0, 50, 70


def test_hour_of_week_baseline_forgets_weeks_older_than_its_memory() -> None:
    base = HourOfWeekBaseline(metrics=1, weeks=2)
    hour = 2_900 * HOURS_PER_WEEK + 30
    for week, value in enumerate((1_000, 10, 12)):
        base.add(hour + week * HOURS_PER_WEEK, (value,))
    base.add(hour + 3 * HOURS_PER_WEEK, (0,))
    assert base.baseline(hour + 3 * HOURS_PER_WEEK, 0) == (11.0, 1.0)


def test_hour_of_week_baseline_has_no_norm_for_a_key_younger_than_a_week() -> None:
    base = HourOfWeekBaseline(metrics=2, weeks=4)
    base.add(500_000, (1, 2))
    base.add(500_005, (1, 2))
    assert base.baseline(500_005, 0) is None
    assert base.weeks_seen(500_005) == 0


def test_hour_of_week_baseline_ignores_an_hour_already_closed() -> None:
    base = HourOfWeekBaseline(metrics=1, weeks=1)
    base.add(100, (1,))
    base.add(101, (1,))
    assert base.add(100, (5,)) is False
    assert base.current == [1.0]
