"""Rotating caller IDs: one source presenting ever-changing numbers (CID-1).

Rule
----
Admission already refuses a caller ID the tenant does not own or has not verified (CID-1);
rotating through many owned numbers is the way around blocking and complaint counts that the
research lists as excessive CLI rotation (shared research, compliance rules section 2.2, rule
CLI-10). Per user (else trunk, else source address, else tenant), over 60 minutes: with
``warn_clis`` or more distinct caller IDs on outbound calls, and distinct caller IDs making at
least ``rotation_share`` of the calls, a medium finding is raised; with ``high_clis`` a high one
suggesting throttling (suspending the user when the key is a user).

Benign look-alike: a tenant with hundreds of agents each presenting their own number has many
caller IDs, but one per user.
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
from callwarden.core.detectors.windows import ONE_HOUR, LruMap, SlidingDistinct, SlidingSum
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

    warn_clis: int = 10
    high_clis: int = 30
    rotation_share: float = 0.5


class _Source:
    __slots__ = ("calls", "clis", "evidence")

    def __init__(self, evidence: Evidence) -> None:
        self.calls = SlidingSum(ONE_HOUR)
        self.clis: SlidingDistinct[str] = SlidingDistinct(ONE_HOUR, cap=_CLI_CAP)
        self.evidence = evidence

    def size(self) -> int:
        return self.calls.size() + self.clis.size() + self.evidence.size()


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
        if (
            not isinstance(event, CallRecord)
            or event.direction is not Direction.OUTBOUND
            or not event.caller
        ):
            return []
        p = params or self.params
        tenant = ctx.tenant.tenant_id
        key_kind, key = key_for(event, tenant, _KEYS)
        state = self._sources.get((tenant, key))
        at = ctx.at
        calls = state.calls.add(at)
        before = state.clis.count()
        clis = state.clis.add(at, event.caller)
        if clis == before:
            return []  # a caller ID already seen in the window
        state.evidence.add(event.call_id)
        if clis < p.warn_clis or clis < p.rotation_share * calls:
            return []
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
