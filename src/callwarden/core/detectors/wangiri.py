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

Wave: the one-ring calls themselves come in waves from one foreign range, each from a
different number, to be called back later. ``wave_callers`` different foreign numbers of one
country code ringing once within 15 minutes raise a low finding on that country code, before
anyone calls back; its suggested action blocks the prefix, so that the call-backs cannot go
out. A contact centre's own foreign customers who hang up within seconds are few and spread
over countries: the simulated centres never show more than three from one country code in 15
minutes, a wave 16 to 20.

Origin: a tenant whose outbound calls from one caller number (else one user) are mostly
unanswered and cut within ``ring_s`` seconds, to many different numbers, is itself placing
one-ring calls. Over 60 minutes, with at least ``origin_attempts`` attempts, a share of such
calls of ``origin_share`` or more and distinct numbers at least ``distinct_share`` of those
one-ring calls raise a finding; with ``origin_critical_attempts`` attempts it is critical. The
research defaults: ring under 6 s; over 20 % warns, over 50 % with 500 attempts an hour
blocks (shared research, compliance rules section 3.6, engineering defaults).

Benign look-alikes: returning a missed domestic call; a dialer whose calls ring normally; a
few foreign customers hanging up at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Final

from callwarden.core.admission.attempt import Direction
from callwarden.core.detectors.base import (
    NUMBER_THEN_USER,
    Detector,
    DetectorFinding,
    Evidence,
    KeyKind,
    Severity,
    SuggestedAction,
    held,
    key_for,
    suspend_action,
)
from callwarden.core.detectors.context import EventContext
from callwarden.core.detectors.keystate import KeySum, KeyTally
from callwarden.core.detectors.windows import (
    FIFTEEN_MINUTES,
    ONE_HOUR,
    LruMap,
    SlidingDistinct,
)
from callwarden.core.usage.record import CallRecord, Disposition, UsageRecord

__all__ = ["WangiriDetector", "WangiriParams"]

_DISTINCT_CAP: Final[int] = 512
_WAVE_CAP: Final[int] = 64
#: What one outbound call adds to its origin's totals: (attempts, one-ring attempts).
_ONE_RING_ATTEMPT: Final = (1, 1)
_OTHER_ATTEMPT: Final = (1, 0)


class _Wave:
    """The foreign numbers of one country code that rang a tenant once in 15 minutes."""

    __slots__ = ("callers", "evidence")

    def __init__(self, evidence: Evidence) -> None:
        self.callers: SlidingDistinct[str] = SlidingDistinct(FIFTEEN_MINUTES, cap=_WAVE_CAP)
        self.evidence = evidence

    def size(self) -> int:
        return self.callers.size() + self.evidence.size()


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
    wave_callers: int = 5


class WangiriDetector(Detector[WangiriParams]):
    """Call-backs to foreign one-ring callers; one-ring bursts from the tenant itself."""

    id = "wangiri"
    clause_ids = ("FRD-2",)
    params_type = WangiriParams

    def __init__(self, params: WangiriParams | None = None, **bounds: int) -> None:
        super().__init__(params, **bounds)
        # (tenant, caller e164) -> when it rang once
        self._rang: LruMap[tuple[str, str], list[float]] = LruMap(lambda: [0.0], self.max_keys)
        # call-backs per tenant
        self._callbacks: LruMap[str, KeySum] = self.per_key(partial(KeySum, ONE_HOUR))
        # totals: attempts, one-ring attempts; destinations: among the one-ring attempts
        self._origins: LruMap[tuple[str, str], KeyTally] = self.per_key(
            partial(KeyTally, ONE_HOUR, 2, _DISTINCT_CAP)
        )
        # (tenant, caller's country code) -> one-ring callers in 15 minutes
        self._waves: LruMap[tuple[str, int], _Wave] = self.per_key(_Wave)

    def observe(
        self, event: UsageRecord, ctx: EventContext, params: WangiriParams | None = None
    ) -> list[DetectorFinding]:
        """Remember foreign one-ring callers; check call-backs and one-ring bursts."""
        if not isinstance(event, CallRecord):
            return []
        p = params or self.params
        # one ring: unanswered, and cut within ``ring_s`` seconds (when its end is known)
        one_ring = False
        if event.disposition is not Disposition.ANSWERED:
            ended_at = event.ended_at
            if ended_at is not None:
                one_ring = (ended_at - event.started_at).total_seconds() < p.ring_s
        tenant = ctx.tenant
        if event.direction is Direction.INBOUND:
            if one_ring:
                caller = ctx.caller
                if (
                    caller is not None
                    and caller.e164 is not None
                    and caller.region != tenant.country
                ):
                    self._rang.get((tenant.tenant_id, caller.e164))[0] = ctx.at
                    return self._wave(event, ctx, p, caller.e164, caller.country_code or 0)
            return []
        findings: list[DetectorFinding] = []
        if len(self._rang):
            # a call-back: the callee rang this tenant once within ``callback_s`` before
            callee = ctx.callee
            if callee is not None and callee.e164 is not None:
                rang = self._rang.peek((tenant.tenant_id, callee.e164))
                if rang is not None and 0 <= ctx.started - rang[0] < p.callback_s:
                    findings += self._callback(event, ctx, p, tenant.tenant_id, callee.e164)
        findings += self._origin(event, ctx, p, tenant.tenant_id, one_ring)
        return findings

    def _callback(
        self,
        event: CallRecord,
        ctx: EventContext,
        p: WangiriParams,
        tenant: str,
        number: str,
    ) -> list[DetectorFinding]:
        """A call-back to ``number``, a foreign number that rang this tenant once lately."""
        state = self._callbacks.get(tenant)
        state.evidence.add(event.call_id)
        count = state.sum.add(ctx.at)
        risky = ctx.costly(p.high_cost_per_minute)
        severity = Severity.HIGH if risky or count >= p.callback_calls else Severity.MEDIUM
        return self.raise_once(
            ctx,
            "callback",
            KeyKind.NUMBER,
            number,
            severity,
            ONE_HOUR,
            statistic="callbacks_to_one_ring_callers",
            value=count,
            threshold=1,
            summary=lambda: (
                f"call back to {number}, a foreign number that rang once and hung up "
                f"({int(count)} such call-backs in 60m)"
            ),
            evidence=state.evidence,
            action=SuggestedAction.BLOCK_PREFIX,
            hold_s=p.callback_s,
        )

    def _wave(
        self, event: CallRecord, ctx: EventContext, p: WangiriParams, caller: str, code: int
    ) -> list[DetectorFinding]:
        """A wave of one-ring calls from different numbers of one foreign country code."""
        state = self._waves.get((ctx.tenant.tenant_id, code))
        state.evidence.add(event.call_id)
        callers = state.callers.add(ctx.at, caller)
        if callers < p.wave_callers:
            return []
        return self.raise_once(
            ctx,
            "wave",
            KeyKind.DESTINATION,
            f"+{code}",
            Severity.LOW,
            FIFTEEN_MINUTES,
            statistic="one_ring_callers",
            value=callers,
            threshold=p.wave_callers,
            summary=lambda: (
                f"{callers} different numbers of +{code} rang once and hung up within "
                f"{p.ring_s:g} s in 15m: do not call them back"
            ),
            evidence=state.evidence,
            action=SuggestedAction.BLOCK_PREFIX,
            hold_s=ONE_HOUR.span_s,
        )

    def _origin(
        self, event: CallRecord, ctx: EventContext, p: WangiriParams, tenant: str, one_ring: bool
    ) -> list[DetectorFinding]:
        """The tenant's own outbound calls, when mostly one-ring calls to many numbers."""
        # keyed on the caller number, else the user, else the tenant (``NUMBER_THEN_USER``)
        key_kind, key = KeyKind.NUMBER, event.caller
        if not key:
            key_kind, key = key_for(event, tenant, NUMBER_THEN_USER)
        state = self._origins.get((tenant, key))
        at = ctx.at
        attempts, short = state.totals.add(at, _ONE_RING_ATTEMPT if one_ring else _OTHER_ATTEMPT)
        if not one_ring:
            return []
        distinct = state.destinations.add(at, event.callee)
        state.evidence.add(event.call_id)
        if attempts < p.origin_attempts:
            return []
        share = short / attempts
        if share < p.origin_share or distinct < min(p.distinct_share * short, _DISTINCT_CAP):
            return []
        critical = attempts >= p.origin_critical_attempts
        return self.raise_once(
            ctx,
            "origin",
            key_kind,
            key,
            Severity.CRITICAL if critical else Severity.HIGH,
            ONE_HOUR,
            statistic="one_ring_share",
            value=round(share, 4),
            threshold=p.origin_share,
            summary=lambda: (
                f"{share:.0%} of {int(attempts)} calls in 60m were cut within "
                f"{p.ring_s:g} s unanswered, to {distinct} different numbers"
            ),
            evidence=state.evidence,
            action=suspend_action(key_kind),
        )

    def state_size(self) -> int:
        """Keys, buckets, destinations and evidence ids held."""
        size = len(self._rang) + held(self._callbacks) + held(self._origins) + held(self._waves)
        return size + self.dedup.size()
