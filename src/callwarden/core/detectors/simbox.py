"""SIM-box and GSM-gateway signals, with the written-consent exemption (FRD-6).

Rule
----
Per trunk (else source address, else tenant) over 60 minutes, four signals named in public
SIM-box material (shared research, compliance rules section 3.5 and telecom anchors section
6.4: many SIM numbers as caller IDs, one-way traffic, short uniform calls, CLI rotation):

1. *mobile caller IDs*: ``min_mobile_clis`` or more distinct mobile numbers presented;
2. *one-way*: at least ``min_calls`` outbound calls and an outbound share of ``one_way_share``
   or more (a gateway terminates, it never receives);
3. *short uniform calls*: at least ``min_answered`` answered calls whose mean billable time is at
   most ``short_mean_s`` with a coefficient of variation at most ``uniform_cv``;
4. *CLI rotation*: distinct caller IDs per outbound call of ``rotation_share`` or more.

Signal 1 and at least two of the others raise a finding: medium with three signals, high with
all four (the suggested action is then throttling; the research advises flagging and
investigating before blocking, since call centres can look alike). A tenant whose written
consent is on record (``TenantFacts.sim_box_consent``) is exempt: nothing is tracked for it.

Benign look-alike: a contact centre trunk with many agents presenting the tenant's own
geographic numbers, taking calls as well as making them, with conversations of every length.
"""

from __future__ import annotations

import math
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
from callwarden.core.detectors.windows import ONE_HOUR, LruMap, SlidingDistinct, SlidingTotals
from callwarden.core.numbering import NumberType
from callwarden.core.usage.record import CallRecord, UsageKind, UsageRecord

__all__ = ["SimBoxDetector", "SimBoxParams"]

_MOBILE: Final = frozenset({NumberType.MOBILE, NumberType.FIXED_LINE_OR_MOBILE})
_CLI_CAP: Final[int] = 256


@dataclass(frozen=True, slots=True)
class SimBoxParams:
    """Thresholds of :class:`SimBoxDetector` (engineering defaults; tune in observe mode)."""

    min_mobile_clis: int = 10
    min_calls: int = 30
    one_way_share: float = 0.95
    min_answered: int = 20
    short_mean_s: float = 90
    uniform_cv: float = 0.35
    rotation_share: float = 0.3


class _Source:
    __slots__ = ("clis", "evidence", "mobile_clis", "totals")

    def __init__(self, evidence: Evidence) -> None:
        # outbound, inbound, answered outbound, seconds, seconds squared
        self.totals = SlidingTotals(ONE_HOUR, 5)
        self.clis: SlidingDistinct[str] = SlidingDistinct(ONE_HOUR, cap=_CLI_CAP)
        self.mobile_clis: SlidingDistinct[str] = SlidingDistinct(ONE_HOUR, cap=_CLI_CAP)
        self.evidence = evidence


class SimBoxDetector(Detector[SimBoxParams]):
    """Mobile caller IDs, one-way traffic, short uniform calls and CLI rotation per trunk."""

    id: ClassVar[str] = "simbox"
    clause_ids: ClassVar[tuple[str, ...]] = ("FRD-6",)
    kinds: ClassVar[frozenset[UsageKind]] = frozenset({UsageKind.CALL})
    params_type: ClassVar[type] = SimBoxParams

    def __init__(self, params: SimBoxParams | None = None, **bounds: int) -> None:
        super().__init__(params or SimBoxParams(), **bounds)
        self._sources: LruMap[tuple[str, str, str], _Source] = LruMap(
            lambda: _Source(self._evidence()), self.max_keys
        )

    def observe(
        self, event: UsageRecord, ctx: EventContext, params: SimBoxParams | None = None
    ) -> list[DetectorFinding]:
        """Update the trunk's signals; raise when enough of them agree."""
        if not isinstance(event, CallRecord) or ctx.tenant.sim_box_consent:
            return []
        p = params or self.params
        tenant = ctx.tenant.tenant_id
        if event.trunk_id:
            key_kind, key = KeyKind.TRUNK, event.trunk_id
        elif event.source_ip:
            key_kind, key = KeyKind.SOURCE_IP, event.source_ip
        else:
            key_kind, key = KeyKind.TENANT, tenant
        state = self._sources.get((tenant, key_kind, key))
        at = ctx.at
        if event.direction is not Direction.OUTBOUND:
            state.totals.add(at, (0, 1, 0, 0, 0))
            return []
        d = event.duration_s
        answered = 1 if event.answered_at is not None else 0
        outbound, inbound, n, s, s2 = state.totals.add(at, (1, 0, answered, d, d * d))
        clis = 0
        mobile_clis = state.mobile_clis
        if event.caller:
            before = state.clis.count()
            clis = state.clis.add(at, event.caller)
            # A caller ID is classified when it is new in the window, or already known mobile.
            if clis != before or event.caller in mobile_clis:
                caller = ctx.caller
                if caller is not None and caller.number_type in _MOBILE:
                    mobile_clis.add(at, event.caller)
        mobiles = mobile_clis.count(at)
        if mobiles < p.min_mobile_clis:
            return []
        state.evidence.add(event.call_id)
        signals = ["mobile caller IDs"]
        if outbound >= p.min_calls and outbound / (outbound + inbound) >= p.one_way_share:
            signals.append("one-way traffic")
        if n >= p.min_answered:
            mean = s / n
            cv = math.sqrt(max(s2 / n - mean * mean, 0.0)) / mean if mean > 0 else 0.0
            if mean <= p.short_mean_s and cv <= p.uniform_cv:
                signals.append("short uniform calls")
        if clis / outbound >= p.rotation_share:
            signals.append("caller ID rotation")
        if len(signals) < 3:
            return []
        severity = Severity.HIGH if len(signals) == 4 else Severity.MEDIUM
        if not self.dedup.allow(("simbox", tenant, key), at, ONE_HOUR.span_s, severity):
            return []
        return [
            self.finding(
                ctx,
                key_kind=key_kind,
                key=key,
                severity=severity,
                window=ONE_HOUR.name,
                statistic="mobile_caller_ids",
                value=mobiles,
                threshold=p.min_mobile_clis,
                summary=f"SIM-box signals in 60m: {', '.join(signals)}",
                evidence=state.evidence.ids(),
                action=SuggestedAction.THROTTLE
                if severity is Severity.HIGH
                else SuggestedAction.NONE,
            )
        ]

    def state_size(self) -> int:
        """Keys, buckets, caller IDs and evidence ids held."""
        size = len(self._sources) + self.dedup.size()
        for state in self._sources.values():
            size += state.totals.size() + state.clis.size() + state.mobile_clis.size()
            size += state.evidence.size()
        return size
