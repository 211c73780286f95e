"""Wangiri ("one ring and cut"): call-backs to one-ring callers, and a tenant ringing out in
one-ring bursts (FRD-2).

Rule
----
Call-back: an inbound call from a foreign number that rang for less than ``ring_s`` seconds and
was never answered is remembered for ``callback_s`` seconds. An outbound call from the same
tenant to that number within that time is a call-back to a possible premium-rate trap: a finding
is raised (medium; high when the number is risky by type, high-risk list or price, or when
``callback_calls`` call-backs happen within 60 minutes). The suggested action blocks the number.
Victims call back about 5 % of the time (shared research, compliance rules section 3.3, citing
Mobileum); calling back is what costs the tenant money.

Origin: a tenant whose outbound calls from one caller number (else one user) are mostly
unanswered and cut within ``ring_s`` seconds, to many different numbers, is itself placing
one-ring calls. Over 60 minutes, with at least ``origin_attempts`` attempts, a share of such
calls of ``origin_share`` or more and distinct numbers at least ``distinct_share`` of those
one-ring calls raise a finding; with ``origin_critical_attempts`` attempts it is critical. The
research defaults: ring under 6 s; over 20 % warns, over 50 % with 500 attempts an hour
blocks (shared research, compliance rules section 3.6, engineering defaults).

Benign look-alikes: returning a missed domestic call; a dialer whose calls ring normally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from callwarden.core.admission.attempt import Direction
from callwarden.core.detectors.base import (
    Detector,
    DetectorFinding,
    Evidence,
    KeyKind,
    Severity,
    SuggestedAction,
)
from callwarden.core.detectors.context import EventContext
from callwarden.core.detectors.windows import (
    ONE_HOUR,
    LruMap,
    SlidingDistinct,
    SlidingSum,
    SlidingTotals,
)
from callwarden.core.usage.record import CallRecord, Disposition, UsageKind, UsageRecord

__all__ = ["WangiriDetector", "WangiriParams"]

_DISTINCT_CAP: Final[int] = 512


@dataclass(frozen=True, slots=True)
class WangiriParams:
    """Thresholds of :class:`WangiriDetector` (see the module docstring for their sources)."""

    ring_s: float = 6.0
    callback_s: int = 86_400
    callback_calls: int = 3
    high_cost_per_minute: float = 0.10
    origin_attempts: int = 100
    origin_critical_attempts: int = 500
    origin_share: float = 0.5
    distinct_share: float = 0.8


class _Origin:
    __slots__ = ("destinations", "evidence", "totals")

    def __init__(self, evidence: Evidence) -> None:
        # attempts, one-ring attempts
        self.totals = SlidingTotals(ONE_HOUR, 2)
        # distinct numbers among the one-ring attempts
        self.destinations: SlidingDistinct[str] = SlidingDistinct(ONE_HOUR, cap=_DISTINCT_CAP)
        self.evidence = evidence


class _Callbacks:
    __slots__ = ("count", "evidence")

    def __init__(self, evidence: Evidence) -> None:
        self.count = SlidingSum(ONE_HOUR)
        self.evidence = evidence


def _ring_s(event: CallRecord) -> float | None:
    """How long an unanswered call rang, when its end is known."""
    if event.ended_at is None:
        return None
    return (event.ended_at - event.started_at).total_seconds()


class WangiriDetector(Detector[WangiriParams]):
    """Call-backs to foreign one-ring callers; one-ring bursts from the tenant itself."""

    id: ClassVar[str] = "wangiri"
    clause_ids: ClassVar[tuple[str, ...]] = ("FRD-2",)
    kinds: ClassVar[frozenset[UsageKind]] = frozenset({UsageKind.CALL})
    params_type: ClassVar[type] = WangiriParams

    def __init__(self, params: WangiriParams | None = None, **bounds: int) -> None:
        super().__init__(params or WangiriParams(), **bounds)
        # (tenant, caller e164) -> when it rang once
        self._rang: LruMap[tuple[str, str], list[float]] = LruMap(lambda: [0.0], self.max_keys)
        self._callbacks: LruMap[str, _Callbacks] = LruMap(
            lambda: _Callbacks(self._evidence()), self.max_keys
        )
        self._origins: LruMap[tuple[str, str], _Origin] = LruMap(
            lambda: _Origin(self._evidence()), self.max_keys
        )

    def observe(
        self, event: UsageRecord, ctx: EventContext, params: WangiriParams | None = None
    ) -> list[DetectorFinding]:
        """Remember foreign one-ring callers; check call-backs and one-ring bursts."""
        if not isinstance(event, CallRecord):
            return []
        p = params or self.params
        one_ring = False
        if event.disposition is not Disposition.ANSWERED:
            ring = _ring_s(event)
            one_ring = ring is not None and ring < p.ring_s
        if event.direction is Direction.INBOUND:
            if one_ring:
                caller = ctx.caller
                if (
                    caller is not None
                    and caller.e164 is not None
                    and caller.region != ctx.tenant.country
                ):
                    self._rang.get((ctx.tenant.tenant_id, caller.e164))[0] = ctx.at
            return []
        findings: list[DetectorFinding] = []
        self._callback(event, ctx, p, findings)
        self._origin(event, ctx, p, one_ring, findings)
        return findings

    def _callback(
        self,
        event: CallRecord,
        ctx: EventContext,
        p: WangiriParams,
        findings: list[DetectorFinding],
    ) -> None:
        if not len(self._rang):
            return
        callee = ctx.callee
        if callee is None or callee.e164 is None:
            return
        tenant = ctx.tenant.tenant_id
        rang = self._rang.peek((tenant, callee.e164))
        if rang is None or not 0 <= ctx.started - rang[0] < p.callback_s:
            return
        state = self._callbacks.get(tenant)
        state.evidence.add(event.call_id)
        count = state.count.add(ctx.at)
        price = ctx.rate_per_minute
        risky = ctx.high_risk_type or (price is not None and price >= p.high_cost_per_minute)
        severity = Severity.HIGH if risky or count >= p.callback_calls else Severity.MEDIUM
        if not self.dedup.allow(("callback", tenant, callee.e164), ctx.at, p.callback_s, severity):
            return
        findings.append(
            self.finding(
                ctx,
                key_kind=KeyKind.NUMBER,
                key=callee.e164,
                severity=severity,
                window=ONE_HOUR.name,
                statistic="callbacks_to_one_ring_callers",
                value=count,
                threshold=1,
                summary=(
                    f"call back to {callee.e164}, a foreign number that rang once and hung up "
                    f"({int(count)} such call-backs in 60m)"
                ),
                evidence=state.evidence.ids(),
                action=SuggestedAction.BLOCK_PREFIX,
            )
        )

    def _origin(
        self,
        event: CallRecord,
        ctx: EventContext,
        p: WangiriParams,
        one_ring: bool,
        findings: list[DetectorFinding],
    ) -> None:
        tenant = ctx.tenant.tenant_id
        if event.caller:
            key_kind, key = KeyKind.NUMBER, event.caller
        elif event.user_id:
            key_kind, key = KeyKind.USER, event.user_id
        else:
            key_kind, key = KeyKind.TENANT, tenant
        state = self._origins.get((tenant, key))
        at = ctx.at
        attempts, short = state.totals.add(at, (1, 1 if one_ring else 0))
        if not one_ring:
            return
        distinct = state.destinations.add(at, event.callee)
        state.evidence.add(event.call_id)
        if attempts < p.origin_attempts:
            return
        share = short / attempts
        if share < p.origin_share or distinct < min(p.distinct_share * short, _DISTINCT_CAP):
            return
        critical = attempts >= p.origin_critical_attempts
        severity = Severity.CRITICAL if critical else Severity.HIGH
        if not self.dedup.allow(("origin", tenant, key), at, ONE_HOUR.span_s, severity):
            return
        findings.append(
            self.finding(
                ctx,
                key_kind=key_kind,
                key=key,
                severity=severity,
                window=ONE_HOUR.name,
                statistic="one_ring_share",
                value=round(share, 4),
                threshold=p.origin_share,
                summary=(
                    f"{share:.0%} of {int(attempts)} calls in 60m were cut within "
                    f"{p.ring_s:g} s unanswered, to {distinct} different numbers"
                ),
                evidence=state.evidence.ids(),
                action=SuggestedAction.SUSPEND_NUMBER
                if key_kind is KeyKind.NUMBER
                else SuggestedAction.SUSPEND_USER
                if key_kind is KeyKind.USER
                else SuggestedAction.THROTTLE,
            )
        )

    def state_size(self) -> int:
        """Keys, buckets, destinations and evidence ids held."""
        size = len(self._rang) + len(self._callbacks) + len(self._origins) + self.dedup.size()
        for cb in self._callbacks.values():
            size += cb.count.size() + cb.evidence.size()
        for origin in self._origins.values():
            size += origin.totals.size() + origin.destinations.size() + origin.evidence.size()
        return size
