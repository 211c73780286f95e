"""Monthly charge limits (LIM-1, LIM-3): the budget month, the limits, what to reserve, alerts.

A tenant's calls are priced by its rate deck while they happen. Each month (in the tenant's own
timezone, so a Warsaw tenant's month turns at midnight in Warsaw) has a **hard** limit, beyond
which calls are refused, and a **soft** limit, beyond which calls go on and the provider is
alerted; either may be absent. The plan sets both; a tenant may carry its own.

Reserve-then-settle: when a call starts, the admission service reserves what the call may cost
at most (the cost of the longest duration the plan allows, cut to what the remaining budget
affords) and tells the SIP server the duration that reservation pays for; when the call ends,
the reservation is replaced by the real cost. Reservations are held in the counters, atomically,
so concurrent calls, on any number of instances, never promise more than the hard limit.

Alerts go out when the month's settled spend reaches 50%, 80% and 100% of each limit, once each
per month (:data:`ALERT_PERCENTAGES`).

Pure: no I/O; the service layer (``callwarden.services.spend``) does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from callwarden.core.counters import SpendMark
from callwarden.core.rating import Money, Rate, affordable_duration, cost

__all__ = [
    "ALERT_PERCENTAGES",
    "SpendLimits",
    "affordable_seconds",
    "alert_marks",
    "billable_seconds",
    "decode_rate",
    "encode_rate",
    "month_of",
    "reservation_bounds",
]

ALERT_PERCENTAGES = (50, 80, 100)
"""Alert levels of a limit, in percent of it."""


@dataclass(frozen=True, slots=True)
class SpendLimits:
    """A month's charge limits in minor units of the plan's currency; ``None``: no limit.

    ``hard_minor`` refuses calls once the month's spend (settled plus reserved) leaves no room;
    ``soft_minor`` only alerts.
    """

    hard_minor: int | None = None
    soft_minor: int | None = None

    @property
    def any(self) -> bool:
        """Whether any limit is set."""
        return self.hard_minor is not None or self.soft_minor is not None


def month_of(at: float, timezone: str) -> str:
    """The budget month (``"2026-11"``) of an instant, in the tenant's timezone."""
    local = datetime.fromtimestamp(at, UTC).astimezone(_zone(timezone))
    return f"{local.year:04d}-{local.month:02d}"


_ZONES: dict[str, ZoneInfo] = {}


def _zone(name: str) -> ZoneInfo:
    zone = _ZONES.get(name)
    if zone is None:
        zone = _ZONES[name] = ZoneInfo(name)
    return zone


def reservation_bounds(rate: Rate, cap_s: int) -> tuple[int, int]:
    """What a call priced at ``rate`` should reserve: (wanted, minimum) in minor units.

    Wanted is the cost of the longest call the plan allows (``cap_s``); minimum is the cost of
    the first billing increment, the least a call can cost once answered. A budget below the
    minimum affords no call at all.
    """
    wanted = cost(rate, max(cap_s, 1)).minor
    minimum = cost(rate, rate.initial_s).minor
    return wanted, min(minimum, wanted)


def affordable_seconds(rate: Rate, granted_minor: int, cap_s: int) -> int:
    """The longest call, in seconds, a reservation of ``granted_minor`` pays for (at most the
    plan's ``cap_s``)."""
    duration = affordable_duration(rate, Money(granted_minor, rate.currency))
    return cap_s if duration is None else min(duration, cap_s)


def billable_seconds(duration_s: float) -> int:
    """A reported duration as whole seconds, rounded up as carriers bill."""
    whole = int(duration_s)
    return whole + 1 if duration_s > whole else whole


def alert_marks(limits: SpendLimits) -> tuple[SpendMark, ...]:
    """The alert levels of the month: 50%, 80% and 100% of each limit that is set, named like
    ``"hard:80"`` (rounded up to the next minor unit, so 80% of 0.05 is 0.04)."""
    marks: list[SpendMark] = []
    for kind, limit in (("hard", limits.hard_minor), ("soft", limits.soft_minor)):
        if limit is None:
            continue
        for pct in ALERT_PERCENTAGES:
            marks.append(SpendMark(f"{kind}:{pct}", -(-limit * pct // 100)))
    return tuple(marks)


def encode_rate(rate: Rate) -> str:
    """A rate as compact text, stored with a reservation so any instance can price the call's
    end without the deck."""
    return "|".join(
        (
            rate.prefix,
            str(rate.rate_per_minute_nano),
            str(rate.connection_fee_nano),
            str(rate.initial_s),
            str(rate.subsequent_s),
            str(rate.effective_from),
            rate.currency,
        )
    )


def decode_rate(text: str) -> Rate:
    """The rate :func:`encode_rate` wrote (ValueError for anything else)."""
    parts = text.split("|")
    if len(parts) != 7:
        raise ValueError(f"not an encoded rate: {text!r}")
    prefix, per_minute, fee, initial, subsequent, effective, currency = parts
    return Rate(
        prefix,
        int(per_minute),
        int(fee),
        int(initial),
        int(subsequent),
        int(effective),
        currency,
    )
