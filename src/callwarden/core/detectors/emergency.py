"""Repeated short emergency calls: possible hoax or misuse of emergency numbers (CID-3).

Rule
----
Emergency calls are always admitted; surveillance only opens a case, and never suggests an
action against one (hoax handling belongs to the emergency services, not the network: shared
research, compliance rules section 6, rules EM-5 and EM-8). An emergency call is *short* when it
was not answered or lasted under ``short_s`` seconds. Per user (else caller number, else
tenant), ``warn_calls`` short emergency calls within 60 minutes raise a medium finding and
``high_calls`` a high one; the research suggests alerting above 3 an hour per site (compliance
rules section 6, engine rule 4). An emergency call placed with a campaign label (a dialer or API
campaign) raises a high finding at once: campaign dialers must never dial emergency numbers
(rule EM-5).

Emergency numbers are recognised as admission recognises them, including outside-line and
country-prefixed forms (``9911``, ``+44999``).

Benign look-alike: one real emergency call, or a misdial hung up at once, raises nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from callwarden.core.detectors.base import (
    Detector,
    DetectorFinding,
    Evidence,
    KeyKind,
    Severity,
    SuggestedAction,
)
from callwarden.core.detectors.context import EventContext
from callwarden.core.detectors.windows import ONE_HOUR, LruMap, SlidingSum
from callwarden.core.usage.record import CallRecord, Direction, UsageKind, UsageRecord

__all__ = ["EmergencyAbuseDetector", "EmergencyParams"]


@dataclass(frozen=True, slots=True)
class EmergencyParams:
    """Thresholds of :class:`EmergencyAbuseDetector` (see the module docstring)."""

    short_s: int = 10
    warn_calls: int = 4
    high_calls: int = 10


class _Caller:
    __slots__ = ("calls", "evidence")

    def __init__(self, evidence: Evidence) -> None:
        self.calls = SlidingSum(ONE_HOUR)
        self.evidence = evidence


class EmergencyAbuseDetector(Detector[EmergencyParams]):
    """Short emergency calls per user within an hour; emergency calls from campaigns."""

    id: ClassVar[str] = "emergency"
    clause_ids: ClassVar[tuple[str, ...]] = ("CID-3",)
    kinds: ClassVar[frozenset[UsageKind]] = frozenset({UsageKind.CALL})
    params_type: ClassVar[type] = EmergencyParams

    def __init__(self, params: EmergencyParams | None = None, **bounds: int) -> None:
        super().__init__(params or EmergencyParams(), **bounds)
        self._callers: LruMap[tuple[str, str], _Caller] = LruMap(
            lambda: _Caller(self._evidence()), self.max_keys
        )

    def observe(
        self, event: UsageRecord, ctx: EventContext, params: EmergencyParams | None = None
    ) -> list[DetectorFinding]:
        """Count short emergency calls; flag emergency calls placed by a campaign."""
        if (
            not isinstance(event, CallRecord)
            or event.direction is not Direction.OUTBOUND
            or not ctx.emergency
        ):
            return []
        p = params or self.params
        tenant = ctx.tenant.tenant_id
        if event.user_id:
            key_kind, key = KeyKind.USER, event.user_id
        elif event.caller:
            key_kind, key = KeyKind.NUMBER, event.caller
        else:
            key_kind, key = KeyKind.TENANT, tenant
        findings: list[DetectorFinding] = []
        at = ctx.at
        campaign_key = ("campaign", tenant, event.campaign)
        if event.campaign and self.dedup.allow(campaign_key, at, ONE_HOUR.span_s, Severity.HIGH):
            findings.append(
                self.finding(
                    ctx,
                    key_kind=KeyKind.CAMPAIGN,
                    key=event.campaign,
                    severity=Severity.HIGH,
                    window=ONE_HOUR.name,
                    statistic="campaign_emergency_calls",
                    value=1,
                    threshold=1,
                    summary=(
                        f"campaign {event.campaign!r} placed a call to the emergency "
                        f"number {event.callee}"
                    ),
                    evidence=(event.call_id,),
                )
            )
        if event.answered_at is not None and event.duration_s >= p.short_s:
            return findings
        state = self._callers.get((tenant, key))
        state.evidence.add(event.call_id)
        calls = state.calls.add(at)
        if calls < p.warn_calls:
            return findings
        high = calls >= p.high_calls
        severity = Severity.HIGH if high else Severity.MEDIUM
        if self.dedup.allow(("short", tenant, key), at, ONE_HOUR.span_s, severity):
            findings.append(
                self.finding(
                    ctx,
                    key_kind=key_kind,
                    key=key,
                    severity=severity,
                    window=ONE_HOUR.name,
                    statistic="short_emergency_calls",
                    value=calls,
                    threshold=p.high_calls if high else p.warn_calls,
                    summary=(
                        f"{int(calls)} short or unanswered emergency calls in 60m "
                        "(the calls went through; this is for review)"
                    ),
                    evidence=state.evidence.ids(),
                    action=SuggestedAction.NONE,
                )
            )
        return findings

    def state_size(self) -> int:
        """Keys, buckets and evidence ids held."""
        size = len(self._callers) + self.dedup.size()
        for state in self._callers.values():
            size += state.calls.size() + state.evidence.size()
        return size
