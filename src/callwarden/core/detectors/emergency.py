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
from functools import partial

from callwarden.core.detectors.base import (
    USER_THEN_NUMBER,
    Detector,
    DetectorFinding,
    KeyKind,
    Severity,
    held,
    key_for,
    tier,
)
from callwarden.core.detectors.context import EventContext
from callwarden.core.detectors.keystate import KeySum
from callwarden.core.detectors.windows import ONE_HOUR, LruMap
from callwarden.core.usage.record import CallRecord, Direction, UsageRecord

__all__ = ["EmergencyAbuseDetector", "EmergencyParams"]


@dataclass(frozen=True, slots=True)
class EmergencyParams:
    """Thresholds of :class:`EmergencyAbuseDetector` (see the module docstring)."""

    short_s: int = 10
    warn_calls: int = 4
    high_calls: int = 10


class EmergencyAbuseDetector(Detector[EmergencyParams]):
    """Short emergency calls per user within an hour; emergency calls from campaigns."""

    id = "emergency"
    clause_ids = ("CID-3",)
    params_type = EmergencyParams

    def __init__(self, params: EmergencyParams | None = None, **bounds: int) -> None:
        super().__init__(params, **bounds)
        self._callers: LruMap[tuple[str, str], KeySum] = self.per_key(partial(KeySum, ONE_HOUR))

    def observe(
        self, event: UsageRecord, ctx: EventContext, params: EmergencyParams | None = None
    ) -> list[DetectorFinding]:
        """Count short emergency calls; flag emergency calls placed by a campaign.

        No action is ever suggested: the calls went through and are for review only.
        """
        if (
            not isinstance(event, CallRecord)
            or event.direction is not Direction.OUTBOUND
            or not ctx.emergency
        ):
            return []
        p = params or self.params
        findings: list[DetectorFinding] = []
        if event.campaign:
            findings += self.raise_once(
                ctx,
                "campaign",
                KeyKind.CAMPAIGN,
                event.campaign,
                Severity.HIGH,
                ONE_HOUR,
                statistic="campaign_emergency_calls",
                value=1,
                threshold=1,
                summary=lambda: (
                    f"campaign {event.campaign!r} placed a call to the emergency "
                    f"number {event.callee}"
                ),
                evidence=(event.call_id,),
            )
        if event.answered_at is not None and event.duration_s >= p.short_s:
            return findings
        tenant = ctx.tenant.tenant_id
        key_kind, key = key_for(event, tenant, USER_THEN_NUMBER)
        state = self._callers.get((tenant, key))
        state.evidence.add(event.call_id)
        calls = state.sum.add(ctx.at)
        if calls < p.warn_calls:
            return findings
        severity, threshold = tier(calls, p.warn_calls, p.high_calls)
        findings += self.raise_once(
            ctx,
            "short",
            key_kind,
            key,
            severity,
            ONE_HOUR,
            statistic="short_emergency_calls",
            value=calls,
            threshold=threshold,
            summary=lambda: (
                f"{int(calls)} short or unanswered emergency calls in 60m "
                "(the calls went through; this is for review)"
            ),
            evidence=state.evidence,
        )
        return findings

    def state_size(self) -> int:
        """Keys, buckets and evidence ids held."""
        return held(self._callers) + self.dedup.size()
