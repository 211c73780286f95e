"""Turning the time stamps that switches write into aware UTC datetimes.

Documents carrying epoch seconds are UTC by definition; local time strings take the zone the
switch runs in (`default_tz`); an explicit offset in the text always wins. Local times that occur
twice on a daylight-saving change day resolve to the first occurrence (fold 0), and local times
that do not exist (skipped by the change) are read with the offset in force before the change,
which is what zoneinfo does; both are documented in docs/usage.md.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache

from callwarden.core.usage.record import UsageError

_MAX_EPOCH = 253402300799.0  # 9999-12-31T23:59:59Z


def _fault(message: str, field: str) -> UsageError:
    return UsageError(message, field=field)


def from_epoch(value: float, field: str) -> datetime:
    """The UTC instant `value` seconds after 1970-01-01T00:00:00Z (fractions kept)."""
    if not math.isfinite(value) or value < 0 or value > _MAX_EPOCH:
        raise _fault(f"{field} {value!r} is not a plausible epoch time in seconds", field)
    return datetime.fromtimestamp(value, UTC)


@lru_cache(maxsize=4096)
def _offset(default_tz: tzinfo, minute: str) -> timedelta:
    """The UTC offset of `default_tz` at the local minute "YYYY-MM-DD HH:MM" (fold 0).

    Zone transitions fall on whole minutes, so one offset holds for every second of a minute;
    caching by minute keeps the zone lookup off the per-record path.
    """
    offset = datetime.fromisoformat(minute).replace(tzinfo=default_tz).utcoffset()
    return offset if offset is not None else timedelta(0)


def parse_local(text: str, field: str, default_tz: tzinfo) -> datetime:
    """An ISO 8601 date and time; without an offset it is local time in `default_tz`.

    Accepts "YYYY-MM-DD HH:MM:SS" as well as the "T" separator, fractions and "Z".
    """
    if len(text) == 19 and text[10] in " T" and text[4] == "-":
        try:
            as_utc = datetime.fromisoformat(text + "+00:00")
        except ValueError:
            pass  # not the plain local form; the general parse below names the fault
        else:
            return as_utc - _offset(default_tz, text[:16])
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _fault(
            f"{field} {text!r} is not a date and time (expected YYYY-MM-DD HH:MM:SS)", field
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=default_tz)
    elif value.tzinfo is UTC:
        return value
    return value.astimezone(UTC)
