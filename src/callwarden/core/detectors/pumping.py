"""Traffic pumping and access stimulation (FRD-5).

Rule
----
Concentration: over 60 minutes, the answered minutes of each tenant's outbound calls are summed
per terminating range (the first ``range_digits`` E.164 digits: for North America that is the
NPA-NXX block). When one range gets ``min_range_minutes`` or more, at least ``range_share`` of
all the tenant's minutes, and the range is costly (a high-risk number type or list entry, or
priced at ``high_cost_per_minute`` or more by the tenant's deck), a finding suggests blocking
the range. Pumping concentrates minutes on a few high-cost terminating ranges (shared research,
compliance rules section 3.4: FCC 19-94 access-stimulation triggers are traffic ratios).
Earlier, a medium finding comes at ``early_range_minutes`` when the range's calls go to the same
few numbers again and again (at least ``early_repeat`` calls per distinct number, over at least
three calls): pumping keeps a handful of numbers busy, while a tenant's own customers in a
costly range (foreign mobiles, a relay service's premium numbers) are different numbers each
time. It escalates to high at ``min_range_minutes``.

Sudden volume: a number (called outbound, or the tenant's own number called inbound) that, within
``new_number_s`` seconds (24 hours) of being first seen, takes ``new_number_minutes`` answered
minutes in ``new_number_calls`` calls or more, from at most ``max_sources`` different callers,
has volume with no history behind it: a finding suggests blocking it (outbound) or throttling it
(inbound). A medium finding, with no action, comes already at ``early_number_calls`` calls with
those minutes: four calls that long from so few callers to a number nobody had called before
are rare in a contact centre. Pumping repeats long calls between few parties; a new hotline
taking calls from many different people is not pumping. A number's state is a few counters,
since most numbers a contact centre calls are new ones.

Memory: the "first seen" record is per (tenant, number), in a map bounded by ``max_keys``; a
number evicted from it counts as new again, which the few-callers condition keeps from becoming
a false alarm on its own.

Benign look-alike: a tenant whose traffic goes mostly to one cheap domestic range (its own
customers' area) is concentrated but not costly, so it raises nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from callwarden.core.admission.attempt import Direction
from callwarden.core.detectors.base import (
    Detector,
    DetectorFinding,
    Evidence,
    KeyKind,
    Severity,
    SuggestedAction,
    held,
)
from callwarden.core.detectors.context import EventContext
from callwarden.core.detectors.windows import (
    ONE_DAY,
    ONE_HOUR,
    LruMap,
    SlidingDistinct,
    SlidingSum,
    SlidingTotals,
)
from callwarden.core.usage.record import CallRecord, UsageRecord

__all__ = ["PumpingDetector", "PumpingParams"]


@dataclass(frozen=True, slots=True)
class PumpingParams:
    """Thresholds of :class:`PumpingDetector` (engineering defaults; tune in observe mode)."""

    range_digits: int = 7
    min_range_minutes: float = 120
    range_share: float = 0.5
    high_cost_per_minute: float = 0.05
    new_number_s: int = 86_400
    new_number_minutes: float = 60
    new_number_calls: int = 10
    max_sources: int = 3
    early_range_minutes: float = 30
    early_repeat: float = 1.25
    early_number_calls: int = 4


_NUMBERS_CAP: Final[int] = 64


class _Range:
    """A costly range's answered minutes, calls and distinct numbers over 60 minutes."""

    __slots__ = ("evidence", "numbers", "totals")

    def __init__(self, evidence: Evidence) -> None:
        self.totals = SlidingTotals(ONE_HOUR, 2)  # minutes, calls
        self.numbers: SlidingDistinct[str] = SlidingDistinct(ONE_HOUR, cap=_NUMBERS_CAP)
        self.evidence = evidence

    def size(self) -> int:
        return self.totals.size() + self.numbers.size() + self.evidence.size()


class _Number:
    """What is known of a number since it was first seen: calls, minutes, a few callers."""

    __slots__ = ("calls", "evidence", "first", "minutes", "sources")

    def __init__(self) -> None:
        self.first = -1.0
        self.calls = 0
        self.minutes = 0.0
        self.sources: list[str] = []
        self.evidence: list[str] = []

    def size(self) -> int:
        return len(self.sources) + len(self.evidence)


class PumpingDetector(Detector[PumpingParams]):
    """Minutes concentrated on costly ranges; sudden volume to numbers with no history."""

    id = "pumping"
    clause_ids = ("FRD-5",)
    params_type = PumpingParams

    def __init__(self, params: PumpingParams | None = None, **bounds: int) -> None:
        super().__init__(params, **bounds)
        self._tenant_minutes: LruMap[str, SlidingSum] = LruMap(
            lambda: SlidingSum(ONE_HOUR), self.max_keys
        )
        # answered minutes per costly range
        self._ranges: LruMap[tuple[str, str], _Range] = self.per_key(_Range)
        self._numbers: LruMap[tuple[str, str], _Number] = LruMap(_Number, self.max_keys)

    def observe(
        self, event: UsageRecord, ctx: EventContext, params: PumpingParams | None = None
    ) -> list[DetectorFinding]:
        """Add an answered call's minutes to its range and number; check both rules."""
        if not isinstance(event, CallRecord):
            return []
        outbound = event.direction is Direction.OUTBOUND
        if outbound:
            callee = ctx.callee
            if callee is None or callee.e164 is None or callee.is_emergency:
                return []
            number = callee.e164
        else:
            number = event.callee
        tenant = ctx.tenant.tenant_id
        at = ctx.at
        seen = self._numbers.get((tenant, number))
        if seen.first < 0:
            seen.first = at
        duration_s = event.duration_s
        if duration_s == 0:
            return []  # unanswered: it only marks when its number was first seen
        p = params or self.params
        findings: list[DetectorFinding] = []
        minutes = duration_s / 60
        if outbound:
            total = self._tenant_minutes.get(tenant).add(at, minutes)
            if ctx.costly(p.high_cost_per_minute):  # only costly ranges are followed
                self._concentration(event, ctx, p, tenant, number, minutes, total, findings)
        if at - seen.first < p.new_number_s:
            # Sudden volume: the number's calls, minutes, first few callers and evidence.
            seen.calls += 1
            seen.minutes += minutes
            source = (event.user_id or event.caller or "") if outbound else (event.caller or "")
            sources = seen.sources
            if source not in sources and len(sources) <= p.max_sources:
                sources.append(source)
            evidence = seen.evidence
            evidence.append(event.call_id)
            if len(evidence) > 2 * self.max_evidence:
                del evidence[: -self.max_evidence]
            if (
                seen.calls >= p.early_number_calls
                and seen.minutes >= p.new_number_minutes
                and len(sources) <= p.max_sources
            ):
                self._sudden(ctx, p, seen, number, outbound, findings)
        return findings

    def _concentration(
        self,
        event: CallRecord,
        ctx: EventContext,
        p: PumpingParams,
        tenant: str,
        e164: str,
        minutes: float,
        total: float,
        findings: list[DetectorFinding],
    ) -> None:
        """A costly range taking most of the tenant's ``total`` answered minutes in 60m."""
        at = ctx.at
        prefix = e164[1 : 1 + p.range_digits]
        state = self._ranges.get((tenant, prefix))
        state.evidence.add(event.call_id)
        on_range, calls = state.totals.add(at, (minutes, 1))
        numbers = state.numbers.add(at, e164)
        if on_range < p.range_share * total:
            return
        if on_range >= 3 * p.min_range_minutes:
            severity, threshold = Severity.CRITICAL, p.min_range_minutes
        elif on_range >= p.min_range_minutes:
            severity, threshold = Severity.HIGH, p.min_range_minutes
        elif on_range >= p.early_range_minutes and calls >= 3 and calls >= p.early_repeat * numbers:
            severity, threshold = Severity.MEDIUM, p.early_range_minutes
        else:
            return
        share = on_range / total
        findings += self.raise_once(
            ctx,
            "range",
            KeyKind.DESTINATION,
            f"+{prefix}",
            severity,
            ONE_HOUR,
            statistic="minutes_to_range",
            value=round(on_range, 2),
            threshold=threshold,
            summary=lambda: (
                f"{on_range:.0f} minutes in 60m ({share:.0%} of the tenant's) went to the "
                f"costly range +{prefix}, {int(calls)} calls to {numbers} number(s)"
            ),
            evidence=state.evidence,
            action=SuggestedAction.BLOCK_PREFIX
            if severity is not Severity.MEDIUM
            else SuggestedAction.NONE,
        )

    def _sudden(
        self,
        ctx: EventContext,
        p: PumpingParams,
        seen: _Number,
        number: str,
        outbound: bool,
        findings: list[DetectorFinding],
    ) -> None:
        """The finding on a number with volume and no history (its thresholds are met)."""
        sources = seen.sources
        evidence = seen.evidence
        high = seen.calls >= p.new_number_calls
        if high:
            action = SuggestedAction.BLOCK_PREFIX if outbound else SuggestedAction.THROTTLE
        else:
            action = SuggestedAction.NONE
        findings += self.raise_once(
            ctx,
            "number",
            KeyKind.NUMBER,
            number,
            Severity.HIGH if high else Severity.MEDIUM,
            ONE_DAY,
            statistic="minutes_to_new_number",
            value=round(seen.minutes, 2),
            threshold=p.new_number_minutes,
            summary=lambda: (
                f"{seen.minutes:.0f} minutes in {seen.calls} calls "
                f"{'to' if outbound else 'on'} {number} within a day of its first call, "
                f"from {len(sources)} caller(s)"
            ),
            evidence=evidence,
            action=action,
            hold_s=p.new_number_s,
        )

    def state_size(self) -> int:
        """Keys, buckets, sources and evidence ids held."""
        size = held(self._tenant_minutes) + held(self._ranges) + held(self._numbers)
        return size + self.dedup.size()
