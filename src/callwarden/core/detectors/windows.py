"""Rolling windows and bounded per-key state: the structures every detector is built from.

All of them take time from the events they are fed (epoch seconds), never from a clock, and none
of them knows what a day or a midnight is: a window covers the last ``span`` seconds whatever
the calendar says, so nothing can slip through at a reset boundary (the OpenSIPS
fraud_detection module resets its counters at midnight, which its maintainer notes lets up to
twice a threshold pass unseen; see shared research, telecom anchors section 2.3).

Window semantics, exactly
-------------------------
A :class:`Window` of ``span_s`` seconds is cut into ``buckets`` buckets of ``span_s / buckets``
seconds; an event at time ``t`` lands in bucket ``floor(t / width)``. The window's *head* is the
newest bucket it has seen (from an event or a query). The window holds the events whose bucket
lies in ``(head - buckets, head]``: the head bucket and the ``buckets - 1`` before it. An event
older than that when it arrives is counted as late and left out (it would have expired already);
an event newer than the head moves the head forward. Events may arrive out of order inside the
window. The property tests hold every structure here to a naive model that keeps every event.

Memory
------
:class:`SlidingSum` and :class:`SlidingTotals` keep at most one entry per non-empty bucket;
:class:`SlidingDistinct` at most ``cap`` values; :class:`LruMap` at most ``max_keys`` keys (the
least recently used key goes first); :class:`RobustHistory` at most ``size`` values;
:class:`HourOfWeekBaseline` a fixed ``168 * weeks`` cells per metric. So a detector built from
them has a memory bound that follows from its parameters, whatever the traffic.
"""

from __future__ import annotations

import math
from array import array
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from operator import add as _add
from typing import Final, Generic, TypeVar

__all__ = [
    "FIFTEEN_MINUTES",
    "FIVE_MINUTES",
    "HOURS_PER_WEEK",
    "ONE_DAY",
    "ONE_HOUR",
    "STANDARD_WINDOWS",
    "HourOfWeekBaseline",
    "LruMap",
    "RobustHistory",
    "SlidingDistinct",
    "SlidingSum",
    "SlidingTotals",
    "Window",
    "mean_cv",
    "median_mad",
    "threshold_above",
]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

HOURS_PER_WEEK: Final[int] = 168
#: MAD of a normal sample times this estimates its standard deviation.
MAD_TO_SIGMA: Final[float] = 1.4826


@dataclass(frozen=True, slots=True)
class Window:
    """A rolling window: ``span_s`` seconds in ``buckets`` equal buckets, named for findings."""

    name: str
    span_s: int
    buckets: int

    def __post_init__(self) -> None:
        if self.span_s <= 0 or self.buckets <= 0:
            raise ValueError(f"window {self.name!r}: span and buckets must be positive")
        if self.span_s % self.buckets:
            raise ValueError(
                f"window {self.name!r}: {self.span_s} s do not split into {self.buckets} buckets"
            )

    @property
    def width_s(self) -> int:
        """Seconds per bucket: the window's resolution."""
        return self.span_s // self.buckets


#: The standard windows (ClearIP's 5/15/60-minute triggers, plus a day; shared research,
#: telecom anchors section 6.3). Resolution: 10 s, 30 s, 1 min and 15 min.
FIVE_MINUTES: Final = Window("5m", 300, 30)
FIFTEEN_MINUTES: Final = Window("15m", 900, 30)
ONE_HOUR: Final = Window("60m", 3600, 60)
ONE_DAY: Final = Window("24h", 86_400, 96)
STANDARD_WINDOWS: Final = (FIVE_MINUTES, FIFTEEN_MINUTES, ONE_HOUR, ONE_DAY)


class _Rolling:
    """What every rolling structure shares: the bucket width and count of its window, its head
    (the newest bucket seen) and its count of late events. Subclasses drop the buckets that
    leave the window in ``_advance``; ``add`` moves the head inline, as it is the hot path.
    """

    __slots__ = ("_head", "_n", "_width", "late")

    def __init__(self, window: Window) -> None:
        self._width = window.width_s
        self._n = window.buckets
        self._head: int | None = None
        self.late = 0
        """Events that arrived after their bucket had left the window (not counted)."""

    def _advance(self, b: int) -> None:
        raise NotImplementedError

    def _catch_up(self, t: float) -> None:
        """Move the head to time ``t`` when it is newer, dropping what leaves the window."""
        b = int(t // self._width)
        if self._head is None or b > self._head:
            self._advance(b)


class SlidingSum(_Rolling):
    """A sum of event values over a rolling window (a count when every value is 1).

    Keeps one bucket number and one value per non-empty bucket, at most ``window.buckets``, in
    two flat queues (no object per bucket).
    """

    __slots__ = ("_b", "_total", "_v")

    def __init__(self, window: Window) -> None:
        super().__init__(window)
        self._b: deque[int] = deque()
        self._v: deque[float] = deque()
        self._total: float = 0

    def add(self, t: float, value: float = 1) -> float:
        """Add ``value`` at time ``t``; return the window's total afterwards."""
        b = int(t // self._width)
        head = self._head
        if head is None or b > head:
            # the head moves on: drop the buckets that leave the window (``_advance``, inline)
            self._head = b
            buckets = self._b
            if buckets and buckets[0] <= b - self._n:
                self._advance(b)
            buckets.append(b)
            self._v.append(value)
        elif b <= head - self._n:
            self.late += 1
            return self._total
        elif self._b and self._b[-1] == b:
            self._v[-1] += value
        else:
            self._insert(b, value)
        self._total += value
        return self._total

    def _advance(self, b: int) -> None:
        self._head = b
        floor = b - self._n
        buckets = self._b
        if buckets and buckets[0] <= floor:
            values = self._v
            while buckets and buckets[0] <= floor:
                buckets.popleft()
                self._total -= values.popleft()
            if not buckets:
                self._total = 0

    def _insert(self, b: int, value: float) -> None:
        """Put a late (but still in-window) value into its bucket, keeping buckets in order."""
        buckets, values = self._b, self._v
        for i in range(len(buckets) - 1, -1, -1):
            if buckets[i] == b:
                values[i] += value
                return
            if buckets[i] < b:
                buckets.insert(i + 1, b)
                values.insert(i + 1, value)
                return
        buckets.appendleft(b)
        values.appendleft(value)

    def total(self, t: float | None = None) -> float:
        """The window's total, after moving the head to ``t`` when ``t`` is newer."""
        if t is not None:
            self._catch_up(t)
        return self._total

    def size(self) -> int:
        """Entries held (non-empty buckets)."""
        return len(self._b)


class SlidingTotals(_Rolling):
    """Several sums over one rolling window, moved together (one bucket lookup per event).

    ``fields`` is how many sums; :meth:`add` takes one value per field, in order. The newest
    bucket's values are kept apart (events mostly land there); older buckets are kept as one
    queue of bucket numbers and one flat queue of ``fields`` values per bucket.
    """

    __slots__ = ("_b", "_cells", "_cur", "_cur_b", "_k", "totals")

    def __init__(self, window: Window, fields: int) -> None:
        if fields < 1:
            raise ValueError("fields must be at least 1")
        super().__init__(window)
        self._k = fields
        self._b: deque[int] = deque()
        self._cells: deque[float] = deque()
        self._cur_b: int | None = None
        self._cur: list[float] = []
        self.totals: list[float] = [0] * fields
        """The window's current totals, one per field (read-only for callers)."""

    def add(self, t: float, values: Sequence[float]) -> list[float]:
        """Add one value per field at time ``t``; return the totals afterwards."""
        b = int(t // self._width)
        head = self._head
        totals = self.totals
        if head is None or b > head:
            # The head moves on (most adds of a quiet key): drop what leaves the window, then
            # close the current bucket and start ``b``, reusing the current bucket's list.
            cur_b = self._cur_b
            if (self._b and self._b[0] <= b - self._n) or (
                cur_b is not None and cur_b <= b - self._n
            ):
                self._advance(b)
                cur_b = self._cur_b
            self._head = b
            if cur_b is None:
                self._cur = list(values)
            else:
                cur = self._cur
                self._b.append(cur_b)
                self._cells.extend(cur)
                cur[:] = values
            self._cur_b = b
            totals[:] = map(_add, totals, values)
            return totals
        if b <= head - self._n:
            self.late += 1
            return totals
        cur_b = self._cur_b
        if b == cur_b:
            cur = self._cur
            cur[:] = map(_add, cur, values)
        elif cur_b is None or b > cur_b:
            if cur_b is not None:
                self._b.append(cur_b)
                self._cells.extend(self._cur)
            self._cur_b = b
            self._cur = list(values)
        else:
            self._insert(b, values)
        totals[:] = map(_add, totals, values)
        return totals

    def _advance(self, b: int) -> None:
        self._head = b
        floor = b - self._n
        buckets = self._b
        totals = self.totals
        if buckets and buckets[0] <= floor:
            cells = self._cells
            k = self._k
            while buckets and buckets[0] <= floor:
                buckets.popleft()
                for i in range(k):
                    totals[i] -= cells.popleft()
        if self._cur_b is not None and self._cur_b <= floor:
            # Closed buckets are older than the current one: the window is now empty.
            self._cur_b = None
            self._cur = []
            totals[:] = [0] * self._k

    def _insert(self, b: int, values: Sequence[float]) -> None:
        """Add a late (but still in-window) event to closed bucket ``b``, made if needed."""
        buckets, cells, k = self._b, self._cells, self._k
        for i in range(len(buckets) - 1, -1, -1):
            if buckets[i] == b:
                for j, v in enumerate(values, i * k):
                    cells[j] += v
                return
            if buckets[i] < b:
                buckets.insert(i + 1, b)
                for j, v in enumerate(values, (i + 1) * k):
                    cells.insert(j, v)
                return
        buckets.appendleft(b)
        for v in reversed(values):
            cells.appendleft(v)

    def current(self, t: float | None = None) -> list[float]:
        """The totals, after moving the head to ``t`` when ``t`` is newer."""
        if t is not None:
            self._catch_up(t)
        return self.totals

    def size(self) -> int:
        """Entries held (non-empty buckets)."""
        return len(self._b) + (self._cur_b is not None)


class SlidingDistinct(_Rolling, Generic[K]):
    """How many distinct values were seen over a rolling window, remembering at most ``cap``.

    Exact while fewer than ``cap`` distinct values are in the window. Past that, new values are
    not remembered (``saturated`` turns true) and :meth:`count` stays at ``cap``, a lower bound:
    thresholds are meant to sit well below ``cap``. Each value is held once, in the bucket it
    was last seen in.
    """

    __slots__ = ("_buckets", "_cap", "_latest", "saturated")

    def __init__(self, window: Window, cap: int = 256) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        super().__init__(window)
        self._cap = cap
        self._latest: dict[K, int] = {}
        self._buckets: dict[int, set[K]] = {}
        self.saturated = False
        """True once a value was left out because ``cap`` values were held."""

    def add(self, t: float, value: K) -> int:
        """Record ``value`` seen at ``t``; return the distinct count afterwards."""
        b = int(t // self._width)
        head = self._head
        if head is None or b > head:
            if self._buckets:
                self._advance(b)
            else:
                self._head = b
        elif b <= head - self._n:
            self.late += 1
            return len(self._latest)
        latest = self._latest
        old = latest.get(value)
        buckets = self._buckets
        if old is not None:
            if old >= b:
                return len(latest)
            held = buckets[old]
            held.discard(value)
            if not held:
                del buckets[old]
        elif len(latest) >= self._cap:
            self.saturated = True
            return len(latest)
        latest[value] = b
        bucket = buckets.get(b)
        if bucket is None:
            newest = next(reversed(buckets), None) if buckets else None
            buckets[b] = {value}
            if newest is not None and newest > b:
                self._buckets = dict(sorted(buckets.items()))
        else:
            bucket.add(value)
        return len(latest)

    def _advance(self, b: int) -> None:
        self._head = b
        floor = b - self._n
        buckets = self._buckets
        latest = self._latest
        while buckets:
            first = next(iter(buckets))
            if first > floor:
                break
            for value in buckets.pop(first):
                del latest[value]

    def count(self, t: float | None = None) -> int:
        """Distinct values in the window, after moving the head to ``t`` when it is newer."""
        if t is not None:
            self._catch_up(t)
        return len(self._latest)

    def __contains__(self, value: object) -> bool:
        return value in self._latest

    def size(self) -> int:
        """Values held."""
        return len(self._latest)


class LruMap(Generic[K, V]):
    """A map of per-key state holding at most ``max_keys`` keys; the least recently used goes.

    :meth:`get` creates a key's state with ``factory`` on first use and marks the key as used.
    ``evicted`` counts keys dropped to stay within the bound.
    """

    __slots__ = ("_d", "_factory", "_max", "evicted")

    def __init__(self, factory: Callable[[], V], max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._d: OrderedDict[K, V] = OrderedDict()
        self._factory = factory
        self._max = max_keys
        self.evicted = 0

    @property
    def max_keys(self) -> int:
        """The bound on the number of keys."""
        return self._max

    def get(self, key: K) -> V:
        """The state of ``key``, created if new; the key becomes the most recently used."""
        d = self._d
        value = d.get(key)
        if value is None:
            value = d[key] = self._factory()
            if len(d) > self._max:
                d.popitem(last=False)
                self.evicted += 1
        else:
            d.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Hold ``value`` as the state of ``key``, the most recently used."""
        d = self._d
        d[key] = value
        d.move_to_end(key)
        if len(d) > self._max:
            d.popitem(last=False)
            self.evicted += 1

    def peek(self, key: K) -> V | None:
        """The state of ``key`` if held, without creating it or marking it used."""
        return self._d.get(key)

    def pop(self, key: K) -> V | None:
        """Remove ``key``; return its state if it was held."""
        return self._d.pop(key, None)

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, key: object) -> bool:
        return key in self._d

    def values(self) -> Iterator[V]:
        """Every held state, least recently used first."""
        return iter(self._d.values())

    def items(self) -> Iterator[tuple[K, V]]:
        """Every held key and state, least recently used first."""
        return iter(self._d.items())


def mean_cv(n: float, total: float, squares: float) -> tuple[float, float]:
    """The mean and coefficient of variation of ``n`` values (``n`` > 0) known only by their
    sum and sum of squares, as rolling totals keep them; the variation is 0 for a mean of 0.

    A small variation means uniform values: recorded messages or machine traffic, not people.
    """
    mean = total / n
    cv = math.sqrt(max(squares / n - mean * mean, 0.0)) / mean if mean > 0 else 0.0
    return mean, cv


def median_mad(values: Sequence[float]) -> tuple[float, float]:
    """The median of ``values`` and their median absolute deviation from it.

    Robust statistics: a few outliers move neither, unlike the mean and standard deviation.
    Raises ``ValueError`` for no values.
    """
    if not values:
        raise ValueError("median of no values")
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    median = ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    deviations = sorted(abs(v - median) for v in ordered)
    mad = deviations[mid] if n % 2 else (deviations[mid - 1] + deviations[mid]) / 2
    return median, mad


class RobustHistory:
    """The last ``size`` values of a statistic, with their median and MAD."""

    __slots__ = ("_values",)

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._values: deque[float] = deque(maxlen=size)

    def add(self, value: float) -> None:
        """Remember ``value``; the oldest is forgotten once ``size`` are held."""
        self._values.append(value)

    def __len__(self) -> int:
        return len(self._values)

    def median_mad(self) -> tuple[float, float]:
        """Median and MAD of the values held (``ValueError`` when there are none)."""
        return median_mad(self._values)

    def size(self) -> int:
        """Values held."""
        return len(self._values)


class HourOfWeekBaseline:
    """Per hour of the week, the last ``weeks`` hourly values of a few metrics, and the hour
    under way.

    Feed it with :meth:`add` at an absolute hour number (hours since the epoch, in the key's
    local time so that Monday 09:00 is the same slot all year). When the hour moves on, the
    finished hour's values are stored in their slot, stamped with their week. A past hour with
    no stored values for its week was quiet: it counts as zero, from the key's first hour on (a
    quiet hour is a value too, and no work is done for it). :meth:`baseline` gives the median
    and MAD of a slot over the last ``weeks`` weeks: the seasonal norm that the hour under way
    is compared with.
    """

    __slots__ = ("_first", "_history", "_metrics", "_stamps", "_weeks", "current", "hour")

    def __init__(self, metrics: int, weeks: int) -> None:
        if metrics < 1 or weeks < 1:
            raise ValueError("metrics and weeks must be at least 1")
        self._metrics = metrics
        self._weeks = weeks
        cells = HOURS_PER_WEEK * weeks
        self._history = [array("f", bytes(4 * cells)) for _ in range(metrics)]
        # week number (mod 2**16) + 1 of each cell's values; 0 for never written
        self._stamps = array("H", bytes(2 * cells))
        self._first: int | None = None
        self.hour: int | None = None
        """The absolute hour under way (None before the first event)."""
        self.current: list[float] = [0.0] * metrics
        """The values of the hour under way, one per metric."""

    def add(self, hour: int, values: Sequence[float]) -> bool:
        """Add ``values`` to ``hour``; return True when that started a new hour.

        An hour older than the one under way is too late to change anything and is ignored
        (returns False).
        """
        current_hour = self.hour
        if current_hour is None or hour > current_hour:
            if current_hour is None:
                self._first = hour
            else:
                self._store(current_hour, self.current)
            self.hour = hour
            self.current = [float(v) for v in values]
            return True
        if hour == current_hour:
            current = self.current
            current[:] = map(_add, current, values)
        return False

    def _cell(self, hour: int) -> int:
        week, slot = divmod(hour, HOURS_PER_WEEK)
        return slot * self._weeks + week % self._weeks

    def _store(self, hour: int, values: Sequence[float]) -> None:
        cell = self._cell(hour)
        for metric, value in enumerate(values):
            self._history[metric][cell] = value
        self._stamps[cell] = hour // HOURS_PER_WEEK % 65_535 + 1

    def _past(self, hour: int) -> list[int]:
        """The same hour of each of the last ``weeks`` weeks that the key has lived through."""
        first = self._first
        if first is None:
            return []
        return [
            past
            for back in range(1, self._weeks + 1)
            if (past := hour - back * HOURS_PER_WEEK) >= first
        ]

    def weeks_seen(self, hour: int) -> int:
        """How many of the last ``weeks`` weeks the key has seen at ``hour``'s hour of week."""
        return len(self._past(hour))

    def baseline(self, hour: int, metric: int) -> tuple[float, float] | None:
        """Median and MAD of ``metric`` at ``hour``'s hour of the week over the last ``weeks``
        weeks (quiet weeks as zero); None when the key is younger than a week."""
        values: list[float] = []
        history = self._history[metric]
        stamps = self._stamps
        for past in self._past(hour):
            cell = self._cell(past)
            held = stamps[cell] == past // HOURS_PER_WEEK % 65_535 + 1
            values.append(history[cell] if held else 0.0)
        return median_mad(values) if values else None

    def size(self) -> int:
        """Cells held (fixed by ``metrics`` and ``weeks``)."""
        return (self._metrics + 1) * HOURS_PER_WEEK * self._weeks


def threshold_above(
    median: float, mad: float, sigmas: float, relative: float, floor: float
) -> float:
    """The value above which an observation departs from a robust norm.

    ``median + max(sigmas * 1.4826 * MAD, relative * median, floor)``: the MAD term follows the
    norm's spread, the relative term keeps a flat history (MAD 0) from alerting on any rise, and
    the floor keeps tiny norms from alerting on noise.
    """
    return median + max(sigmas * MAD_TO_SIGMA * mad, relative * median, floor)
