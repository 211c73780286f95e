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
from typing import ClassVar, Final

from callwarden.core.detectors.base import (
    Detector,
    DetectorFinding,
    Evidence,
    KeyKind,
    Severity,
    SuggestedAction,
)
from callwarden.core.detectors.context import EventContext
from callwarden.core.detectors.windows import ONE_HOUR, LruMap, SlidingDistinct, SlidingSum
from callwarden.core.usage.record import CallRecord, Direction, UsageKind, UsageRecord

__all__ = ["CallerRotationDetector", "CallerRotationParams"]

_CLI_CAP: Final[int] = 256


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


class CallerRotationDetector(Detector[CallerRotationParams]):
    """Distinct caller IDs per user (or trunk) within an hour."""

    id: ClassVar[str] = "caller_rotation"
    clause_ids: ClassVar[tuple[str, ...]] = ("CID-1",)
    kinds: ClassVar[frozenset[UsageKind]] = frozenset({UsageKind.CALL})
    params_type: ClassVar[type] = CallerRotationParams

    def __init__(self, params: CallerRotationParams | None = None, **bounds: int) -> None:
        super().__init__(params or CallerRotationParams(), **bounds)
        self._sources: LruMap[tuple[str, str], _Source] = LruMap(
            lambda: _Source(self._evidence()), self.max_keys
        )

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
        if event.user_id:
            key_kind, key = KeyKind.USER, event.user_id
        elif event.trunk_id:
            key_kind, key = KeyKind.TRUNK, event.trunk_id
        elif event.source_ip:
            key_kind, key = KeyKind.SOURCE_IP, event.source_ip
        else:
            key_kind, key = KeyKind.TENANT, tenant
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
        high = clis >= p.high_clis
        severity = Severity.HIGH if high else Severity.MEDIUM
        if not self.dedup.allow(("rotation", tenant, key), at, ONE_HOUR.span_s, severity):
            return []
        if not high:
            action = SuggestedAction.NONE
        elif key_kind is KeyKind.USER:
            action = SuggestedAction.SUSPEND_USER
        else:
            action = SuggestedAction.THROTTLE
        return [
            self.finding(
                ctx,
                key_kind=key_kind,
                key=key,
                severity=severity,
                window=ONE_HOUR.name,
                statistic="distinct_caller_ids",
                value=clis,
                threshold=p.high_clis if high else p.warn_clis,
                summary=f"{clis} different caller IDs on {int(calls)} calls in 60m",
                evidence=state.evidence.ids(),
                action=action,
            )
        ]

    def state_size(self) -> int:
        """Keys, buckets, caller IDs and evidence ids held."""
        size = len(self._sources) + self.dedup.size()
        for state in self._sources.values():
            size += state.calls.size() + state.clis.size() + state.evidence.size()
        return size
