"""Limit arithmetic for admission: rates (GCRA) and rolling windows, as pure functions.

No I/O and no clock: every function takes the current time explicitly, so the in-process and
the Redis counters (whose Lua scripts mirror these functions line by line) make the same decision
for the same inputs, and tests can drive a fake clock.

Time is handled in whole **microseconds** (``int``). Epoch microseconds (~1.7e15) are far below
2**53, so they are exact both in Python ints and in the doubles Redis' Lua uses; no rounding can
make the two implementations disagree, or let a limit slip by one at a window edge.

Windows are rolling: a limit "per 24 h" means "in the 24 hours before now", never "since
midnight", so a burst straddling midnight cannot get twice the allowance (LIM-5, DIA-4).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

MICROS_PER_SECOND = 1_000_000

_UNITS: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
}
_RATE_RE = re.compile(
    r"^\s*(\d+)\s*(?:/|per)\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*(?:\+\s*(\d+)|burst\s+(\d+))?\s*$"
)


def to_micros(seconds: float) -> int:
    """Convert a time or duration in seconds to whole microseconds (half rounds up).

    Raises ValueError for NaN or infinity, which would otherwise poison the stored state.
    """
    if not math.isfinite(seconds):
        raise ValueError(f"time must be a finite number of seconds, got {seconds!r}")
    return math.floor(seconds * MICROS_PER_SECOND + 0.5)


def from_micros(micros: int) -> float:
    """Convert whole microseconds back to seconds."""
    return micros / MICROS_PER_SECOND


@dataclass(frozen=True, slots=True)
class Rate:
    """A rate limit: ``count`` events per ``period_s`` seconds, plus a ``burst`` allowance.

    Enforced with GCRA (the generic cell rate algorithm, equivalent to a token bucket without
    a refill timer): events are paced one per ``period_s / count`` seconds; ``burst`` extra
    events may arrive back to back. From idle, ``burst + 1`` events pass at once, and no window
    of ``period_s`` seconds ever admits more than ``count + burst`` (LIM-5 flooding limits).

    ``burst=0`` is strict pacing: ``Rate(10, 1.0)`` admits one call every 100 ms.
    """

    count: int
    period_s: float
    burst: int = 0
    interval_us: int = field(init=False, repr=False, compare=False)
    """Emission interval T: microseconds between paced events, rounded up.

    Rounding up keeps the pace slightly on the safe side (``3/s`` paces at 333 334 us), so
    ``count + burst`` per period holds exactly in integer arithmetic. Computed once, since
    every attempt's rate checks read it."""
    tolerance_us: int = field(init=False, repr=False, compare=False)
    """Burst tolerance tau = ``burst * T``: how far ahead of the pace an event may come."""

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"rate count must be a positive integer, got {self.count!r}")
        if not math.isfinite(self.period_s) or self.period_s <= 0:
            raise ValueError(
                f"rate period must be a positive number of seconds, got {self.period_s!r}"
            )
        if to_micros(self.period_s) < self.count:
            raise ValueError(
                f"rate {self.count}/{self.period_s}s is finer than one per microsecond"
            )
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 0:
            raise ValueError(f"rate burst must be a non-negative integer, got {self.burst!r}")
        interval = -(-to_micros(self.period_s) // self.count)
        object.__setattr__(self, "interval_us", interval)
        object.__setattr__(self, "tolerance_us", self.burst * interval)

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Parse ``"10/second"``, ``"30 per minute"``, ``"100/10s"``, ``"10/s+5"`` or
        ``"10/s burst 5"`` (units: s, m, h, d and their long forms)."""
        m = _RATE_RE.match(text.lower())
        if m is None or m.group(3) not in _UNITS:
            raise ValueError(f"not a rate: {text!r} (expected e.g. '10/second' or '100/10s+5')")
        count, multiple, unit, burst_a, burst_b = m.groups()
        period = float(multiple or 1) * _UNITS[unit]
        burst = burst_a or burst_b or "0"
        return cls(int(count), period, int(burst))

    def __str__(self) -> str:
        text = f"{self.count}/{self.period_s:g}s"
        return f"{text}+{self.burst}" if self.burst else text


@dataclass(frozen=True, slots=True)
class GcraDecision:
    """The outcome of one GCRA check.

    ``tat_us`` is the theoretical arrival time to store when allowed (the state to keep for the
    key); when refused nothing must be stored. ``retry_after_us`` is 0 when allowed, else how
    long until the same event would conform. ``expires_us`` is when the stored TAT stops
    mattering (the key may then be forgotten, which is equivalent to an idle key).
    """

    allowed: bool
    tat_us: int
    retry_after_us: int

    @property
    def expires_us(self) -> int:
        """Absolute time after which the stored state equals "never seen"."""
        return self.tat_us


def gcra(tat_us: int | None, now_us: int, interval_us: int, tolerance_us: int) -> GcraDecision:
    """Decide one event under GCRA.

    ``tat_us`` is the stored theoretical arrival time (``None`` for an unseen or expired key).
    The event conforms when ``now >= max(tat, now) - tau``; it then advances TAT by one
    interval. A refused event consumes nothing.
    """
    base = now_us if tat_us is None or tat_us < now_us else tat_us
    allow_at = base - tolerance_us
    if now_us < allow_at:
        return GcraDecision(False, base, allow_at - now_us)
    return GcraDecision(True, base + interval_us, 0)


@dataclass(frozen=True, slots=True)
class MultiGcraDecision:
    """All-or-nothing outcome of several GCRA checks for one event.

    ``refused_index`` is the first check (in the caller's order) that refused, or ``None``.
    ``retry_after_us`` is the longest wait among refusing checks: the earliest time at which
    every check would pass, absent other traffic. ``tats_us`` holds the new TAT per check, to be
    stored only when ``allowed``.
    """

    allowed: bool
    refused_index: int | None
    retry_after_us: int
    tats_us: tuple[int, ...]


def gcra_all(
    tats_us: Sequence[int | None],
    now_us: int,
    rates: Sequence[tuple[int, int]],
) -> MultiGcraDecision:
    """Check one event against several independent GCRA states; admit only if all conform.

    ``rates`` gives ``(interval_us, tolerance_us)`` per state. The keys must be distinct.
    """
    if len(tats_us) != len(rates):
        raise ValueError("one stored TAT per rate is required")
    refused: int | None = None
    retry = 0
    new: list[int] = []
    # gcra() for each state, inlined: this runs on every call attempt.
    for i, (tat, (interval, tolerance)) in enumerate(zip(tats_us, rates, strict=True)):
        base = now_us if tat is None or tat < now_us else tat
        allow_at = base - tolerance
        if now_us < allow_at:
            if refused is None:
                refused = i
            retry = max(retry, allow_at - now_us)
            new.append(base)
        else:
            new.append(base + interval)
    return MultiGcraDecision(refused is None, refused, retry, tuple(new))


@dataclass(frozen=True, slots=True)
class WindowDecision:
    """The outcome of a rolling-window count.

    ``drop`` is how many of the oldest stored timestamps to discard (expired, or beyond the
    newest ``limit`` which are all that matter). ``count`` is the number of events in the window
    after discarding (at most ``limit``), not counting the one being decided. ``admitted`` says
    the event is below the limit; ``retry_after_us`` (when not admitted) is how long until the
    oldest counted event leaves the window.
    """

    drop: int
    count: int
    admitted: bool
    retry_after_us: int


def window_decide(
    timestamps_us: Sequence[int], now_us: int, window_us: int, limit: int
) -> WindowDecision:
    """Rolling-window decision over the stored, ascending timestamps of one key.

    An event at ``t`` is in the window while ``t > now - window``. Only the newest ``limit``
    timestamps are ever needed, so storage per key is bounded by ``limit``. With this rule no
    half-open interval of ``window_us`` ever holds more than ``limit`` admitted events.
    """
    if limit < 1:
        raise ValueError(f"window limit must be at least 1, got {limit}")
    if window_us < 1:
        raise ValueError(f"window must be positive, got {window_us} us")
    cutoff = now_us - window_us
    n = len(timestamps_us)
    expired = 0
    while expired < n and timestamps_us[expired] <= cutoff:
        expired += 1
    live = n - expired
    drop = expired + max(0, live - limit)
    count = min(live, limit)
    if count < limit:
        return WindowDecision(drop, count, True, 0)
    return WindowDecision(drop, count, False, timestamps_us[drop] + window_us - now_us)
