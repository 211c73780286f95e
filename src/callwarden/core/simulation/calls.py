"""Building one simulated call record, and the random shapes calls take.

Every simulated call goes through :func:`make_call`, so background traffic and injected
scenarios write records the same way: callwarden's own usage schema, times in whole seconds,
the answer time and billable duration consistent with the disposition.

Pure core: no I/O.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

from callwarden.core.usage.record import CallRecord, Direction, Disposition, UsageFormat

__all__ = ["make_call", "poisson", "talk_seconds"]

_SOURCE_FORMAT = UsageFormat.CALLWARDEN_JSON.value


def make_call(
    call_id: str,
    *,
    tenant_id: str,
    direction: Direction,
    caller: str | None,
    callee: str,
    start: float,
    ring_s: float,
    talk_s: int = 0,
    disposition: Disposition = Disposition.ANSWERED,
    user_id: str | None = None,
    trunk_id: str | None = None,
    source_ip: str | None = None,
    campaign: str | None = None,
) -> CallRecord:
    """A finished call: it rang ``ring_s`` seconds from ``start`` (epoch seconds), then was
    answered and lasted ``talk_s`` seconds, or ended unanswered with ``disposition``."""
    started = int(start)
    ring = max(1, round(ring_s))
    answered = disposition is Disposition.ANSWERED
    begin = datetime.fromtimestamp(started, UTC)
    picked = datetime.fromtimestamp(started + ring, UTC)
    return CallRecord(
        call_id=call_id,
        tenant_id=tenant_id,
        user_id=user_id,
        trunk_id=trunk_id,
        source_ip=source_ip,
        direction=direction,
        caller=caller,
        callee=callee,
        started_at=begin,
        answered_at=picked if answered else None,
        ended_at=datetime.fromtimestamp(started + ring + (talk_s if answered else 0), UTC),
        duration_s=talk_s if answered else 0,
        disposition=disposition,
        campaign=campaign,
        source_format=_SOURCE_FORMAT,
    )


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw of ``mean`` (Knuth's method when small, a rounded normal when large)."""
    if mean <= 0:
        return 0
    if mean > 40:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit = math.exp(-mean)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def talk_seconds(rng: random.Random, median_s: float, spread: float = 0.8) -> int:
    """A conversation's length: log-normal around ``median_s`` (spread is the log's standard
    deviation), at least 5 seconds and at most 3 hours."""
    return int(min(10_800, max(5, rng.lognormvariate(math.log(median_s), spread))))
