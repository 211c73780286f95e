"""Robocall signature: many attempts, very short calls, low answer rate, many distinct
destinations, uniform durations (DIA-2).

Rule
----
Per caller number (else user, else tenant) over 60 minutes, as ClearIP's robocalling trigger
counts calls per calling number over 60 minutes (shared research, telecom anchors section 6.3),
with at least ``min_attempts`` outbound attempts, four signals are checked:

1. *low answer rate*: answered / attempts at most ``max_answer_rate``;
2. *very short calls*: among at least ``min_answered`` answered calls, a share of
   ``short_share`` or more lasting ``short_s`` seconds or less;
3. *many distinct destinations*: distinct numbers at least ``distinct_share`` of the attempts;
4. *uniform durations*: among at least ``min_answered`` answered calls, a coefficient of
   variation of their durations at most ``uniform_cv`` (one recorded message, played to the
   end or hung up on at once).

Three signals raise a high finding (suggested action: throttle); all four a critical one
(suspend the number, or the user). The numbers are engineering defaults to tune per tenant in
observe mode. ``min_attempts`` (100) is about the fewest attempts that can be judged: with one
call in ten answered, the ``min_answered`` (10) answered calls whose shortness and uniformity
are signals 2 and 4 come after about a hundred attempts; a robocall is a pattern over many
calls, not a single one.

Benign look-alike: a legitimate large campaign dials many distinct numbers, but a fair share
answers and agents talk for very different lengths: one or two signals, no finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Final

from callwarden.core.admission.attempt import Direction
from callwarden.core.detectors.base import (
    Detector,
    DetectorFinding,
    KeyKind,
    Severity,
    SuggestedAction,
    held,
    suspend_action,
)
from callwarden.core.detectors.context import EventContext
from callwarden.core.detectors.keystate import KeyTally
from callwarden.core.detectors.windows import (
    ONE_HOUR,
    LruMap,
    mean_cv,
)
from callwarden.core.usage.record import CallRecord, UsageRecord

__all__ = ["RobocallDetector", "RobocallParams"]

_DISTINCT_CAP: Final[int] = 512


@dataclass(frozen=True, slots=True)
class RobocallParams:
    """Thresholds of :class:`RobocallDetector` (see the module docstring)."""

    min_attempts: int = 100
    max_answer_rate: float = 0.2
    min_answered: int = 10
    short_s: int = 6
    short_share: float = 0.6
    distinct_share: float = 0.9
    uniform_cv: float = 0.2


class RobocallDetector(Detector[RobocallParams]):
    """Attempts, answer rate, short calls, distinct destinations and duration spread per caller."""

    id = "robocall"
    clause_ids = ("DIA-2",)
    params_type = RobocallParams

    def __init__(self, params: RobocallParams | None = None, **bounds: int) -> None:
        super().__init__(params, **bounds)
        # totals: attempts, answered, very short answered, seconds, seconds squared
        self._callers: LruMap[tuple[str, str], KeyTally] = self.per_key(
            partial(KeyTally, ONE_HOUR, 5, _DISTINCT_CAP)
        )

    def observe(
        self, event: UsageRecord, ctx: EventContext, params: RobocallParams | None = None
    ) -> list[DetectorFinding]:
        """Update the caller's hour; raise when the robocall signature shows."""
        if not isinstance(event, CallRecord) or event.direction is not Direction.OUTBOUND:
            return []
        p = params or self.params
        tenant = ctx.tenant.tenant_id
        # keyed as key_for(event, tenant, NUMBER_THEN_USER): the caller, else the user
        if event.caller:
            key_kind, key = KeyKind.NUMBER, event.caller
        elif event.user_id:
            key_kind, key = KeyKind.USER, event.user_id
        else:
            key_kind, key = KeyKind.TENANT, tenant
        state = self._callers.get((tenant, key))
        at = ctx.at
        short_s = p.short_s
        d = event.duration_s
        if event.answered_at is None:
            values: tuple[int, ...] = (1, 0, 0, 0, 0)
            answered_long = False
        else:
            values = (1, 1, 1 if d <= short_s else 0, d, d * d)
            answered_long = d > short_s
        attempts, n, short, s, s2 = state.totals.add(at, values)
        distinct = state.destinations.add(at, event.callee)
        if answered_long:
            return []  # a call a person talked on: not the signature, nor its evidence
        state.evidence.add(event.call_id)
        if attempts < p.min_attempts:
            return []
        signals: list[str] = []
        rate = n / attempts
        if rate <= p.max_answer_rate:
            signals.append(f"answer rate {rate:.0%}")
        if n >= p.min_answered:
            if short / n >= p.short_share:
                signals.append(f"{short / n:.0%} of answered calls {p.short_s} s or less")
            cv = mean_cv(n, s, s2)[1]
            if cv <= p.uniform_cv:
                signals.append(f"uniform durations (variation {cv:.2f})")
        if distinct >= min(p.distinct_share * attempts, _DISTINCT_CAP):
            signals.append(f"{distinct} distinct numbers")
        if len(signals) < 3:
            return []
        critical = len(signals) == 4
        return self.raise_once(
            ctx,
            "robocall",
            key_kind,
            key,
            Severity.CRITICAL if critical else Severity.HIGH,
            ONE_HOUR,
            statistic="attempts",
            value=attempts,
            threshold=p.min_attempts,
            summary=lambda: (
                f"robocall signature over {int(attempts)} attempts in 60m: " + "; ".join(signals)
            ),
            evidence=state.evidence,
            action=suspend_action(key_kind) if critical else SuggestedAction.THROTTLE,
        )

    def state_size(self) -> int:
        """Keys, buckets, destinations and evidence ids held."""
        return held(self._callers) + self.dedup.size()
