"""Rotating caller IDs: one source presenting ever-changing numbers (CID-1).

Rule
----
Admission already refuses a caller ID the tenant does not own or has not verified (CID-1);
rotating through many owned numbers is the way around blocking and complaint counts that the
research lists as excessive CLI rotation (shared research, compliance rules section 2.2, rule
CLI-10). Per user (else trunk, else source address, else tenant), on outbound calls:

- over 15 minutes, ``early_clis`` (4) or more distinct caller IDs raise a low finding (no
  action), whatever the user's other calls: an agent presents their own number and now and then
  a hotline, rarely four numbers in a quarter of an hour, and a rotation hidden among a busy
  agent's own calls is still a count of distinct numbers (a share of the calls is not, as the
  busy hour dilutes it). A tenant whose agents present several brand lines each should raise
  ``early_clis`` above their count;
- over 60 minutes, ``warn_clis`` or more distinct caller IDs making at least ``rotation_share`` of
  the calls raise a medium finding; ``high_clis`` a high one suggesting throttling (suspending
  the user when the key is a user).

Benign look-alikes: a tenant with hundreds of agents each presenting their own number has many
caller IDs, but one per user; an agent alternating between their number and the hotlines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from callwarden.core.detectors.base import (
    Detector,
    DetectorFinding,
    Evidence,
    KeyKind,
    KeyOrder,
    Severity,
    SuggestedAction,
    held,
    key_for,
    suspend_action,
    tier,
)
from callwarden.core.detectors.context import EventContext
from callwarden.core.detectors.windows import (
    FIFTEEN_MINUTES,
    ONE_HOUR,
    LruMap,
    SlidingDistinct,
    SlidingSum,
)
from callwarden.core.usage.record import CallRecord, Direction, UsageRecord

__all__ = ["CallerRotationDetector", "CallerRotationParams"]

_CLI_CAP: Final[int] = 256
_KEYS: Final[KeyOrder] = (
    (KeyKind.USER, "user_id"),
    (KeyKind.TRUNK, "trunk_id"),
    (KeyKind.SOURCE_IP, "source_ip"),
)


@dataclass(frozen=True, slots=True)
class CallerRotationParams:
    """Thresholds of :class:`CallerRotationDetector` (engineering defaults)."""

    early_clis: int = 4
    warn_clis: int = 10
    high_clis: int = 30
    rotation_share: float = 0.5


class _Source:
    __slots__ = ("calls", "clis", "evidence", "recent_clis")

    def __init__(self, evidence: Evidence) -> None:
        self.calls = SlidingSum(ONE_HOUR)
        self.clis: SlidingDistinct[str] = SlidingDistinct(ONE_HOUR, cap=_CLI_CAP)
        self.recent_clis: SlidingDistinct[str] = SlidingDistinct(FIFTEEN_MINUTES, cap=_CLI_CAP)
        self.evidence = evidence

    def size(self) -> int:
        return self.calls.size() + self.clis.size() + self.recent_clis.size() + self.evidence.size()


class CallerRotationDetector(Detector[CallerRotationParams]):
    """Distinct caller IDs per user (or trunk) within an hour."""

    id = "caller_rotation"
    clause_ids = ("CID-1",)
    params_type = CallerRotationParams

    def __init__(self, params: CallerRotationParams | None = None, **bounds: int) -> None:
        super().__init__(params, **bounds)
        self._sources: LruMap[tuple[str, str], _Source] = self.per_key(_Source)

    def observe(
        self, event: UsageRecord, ctx: EventContext, params: CallerRotationParams | None = None
    ) -> list[DetectorFinding]:
        """Count the source's distinct caller IDs; raise when they rotate."""
        if not isinstance(event, CallRecord) or event.direction is not Direction.OUTBOUND:
            return []
        caller = event.caller
        if not caller:
            return []
        tenant = ctx.tenant.tenant_id
        key = event.user_id
        if key:
            key_kind = KeyKind.USER  # the first party of _KEYS, read directly: most calls
        else:
            key_kind, key = key_for(event, tenant, _KEYS)
        state = self._sources.get((tenant, key))
        at = ctx.at
        calls = state.calls.add(at)
        hour_clis = state.clis
        recent_clis = state.recent_clis
        before = hour_clis.count()
        before_recent = recent_clis.count()
        clis = hour_clis.add(at, caller)
        recent = recent_clis.add(at, caller)
        if clis == before and recent == before_recent:
            return []  # a caller ID already seen in both windows
        state.evidence.add(event.call_id)
        p = params or self.params
        if clis < p.warn_clis or clis < p.rotation_share * calls:
            if recent < p.early_clis:
                return []
            return self.raise_once(
                ctx,
                "rotation",
                key_kind,
                key,
                Severity.LOW,
                FIFTEEN_MINUTES,
                statistic="distinct_caller_ids",
                value=recent,
                threshold=p.early_clis,
                summary=lambda: f"{recent} different caller IDs in 15m",
                evidence=state.evidence,
                hold_s=ONE_HOUR.span_s,
            )
        severity, threshold = tier(clis, p.warn_clis, p.high_clis)
        return self.raise_once(
            ctx,
            "rotation",
            key_kind,
            key,
            severity,
            ONE_HOUR,
            statistic="distinct_caller_ids",
            value=clis,
            threshold=threshold,
            summary=lambda: f"{clis} different caller IDs on {int(calls)} calls in 60m",
            evidence=state.evidence,
            action=suspend_action(key_kind) if severity is Severity.HIGH else SuggestedAction.NONE,
        )

    def state_size(self) -> int:
        """Keys, buckets, caller IDs and evidence ids held."""
        return held(self._sources) + self.dedup.size()
