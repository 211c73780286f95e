"""International revenue share fraud: cost-weighted bursts to high-risk ranges, and calls to
countries new for the tenant (FRD-1, FRD-2).

Rule
----
Every outbound call to a *risky* destination adds a cost-weighted score to its tenant's rolling
windows, per destination country code:

- a destination is risky when its number type is one FRD-1 names (premium rate, shared cost,
  satellite, international network), when it falls under the operator's high-risk prefix list,
  or when the tenant's rate deck prices it at ``high_cost_per_minute`` or more;
- its score is the destination's price per minute times ``1 + billable minutes``: an
  unanswered test call counts one minute's price, a pumped call grows with its length. This is
  ClearIP's "fraud score = termination rate" (shared research, telecom anchors section 6.3)
  extended by the call's minutes. A risky destination the deck cannot price scores
  ``unrated_weight`` per attempt.

A finding is raised when the 5-minute score reaches ``fast_score`` or the 60-minute score
reaches ``slow_score`` (ClearIP's fast and slow pumping windows); it is critical at
``critical_factor`` times the threshold. The suggested action is to block the country prefix.

New destination countries: once a tenant has made ``learning_calls`` outbound calls, a foreign
country it never called before stays *new* for ``new_country_s`` seconds. When
``new_country_calls`` calls reach new countries within 60 minutes, a finding is raised (high
when one of them was risky). Without a risky call, at least ``new_countries_min`` distinct new
countries are needed: a tenant opening one new market calls one new country many times, test
calls after a takeover spread over several. Fraud after an account takeover dials
destinations the tenant never used; a tenant still in its learning period raises nothing.

Benign look-alike: a tenant that really calls premium numbers at normal prices scores their low
price, so its ordinary volume stays under the thresholds.
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
from callwarden.core.detectors.windows import FIVE_MINUTES, ONE_HOUR, LruMap, SlidingSum, Window
from callwarden.core.usage.record import CallRecord, UsageRecord

__all__ = ["IrsfDetector", "IrsfParams"]

_MAX_COUNTRIES: Final[int] = 400


@dataclass(frozen=True, slots=True)
class IrsfParams:
    """Thresholds of :class:`IrsfDetector` (prices in major currency units per minute).

    - ``high_cost_per_minute`` 0.10: IRSF hides in "mid-range" destinations of 0.10 to 0.30 per
      minute (shared research, compliance rules section 3.2, citing biaas.com).
    - ``fast_score`` 3.0 over 5 minutes and ``slow_score`` 15.0 over 60 minutes: for example ten
      attempts at 0.30 a minute in five minutes, or an hour of calls costing 15; engineering
      defaults to tune per tenant in observe mode first (ClearIP advises at least a week
      report-only).
    """

    high_cost_per_minute: float = 0.10
    unrated_weight: float = 0.25
    fast_score: float = 3.0
    slow_score: float = 15.0
    critical_factor: float = 3.0
    learning_calls: int = 50
    new_country_s: int = 86_400
    new_country_calls: int = 5
    new_countries_min: int = 2


class _Burst:
    __slots__ = ("evidence", "fast", "slow")

    def __init__(self, evidence: Evidence) -> None:
        self.fast = SlidingSum(FIVE_MINUTES)
        self.slow = SlidingSum(ONE_HOUR)
        self.evidence = evidence

    def size(self) -> int:
        return self.fast.size() + self.slow.size() + self.evidence.size()


class _Countries:
    __slots__ = ("calls", "evidence", "first_seen", "new_calls", "risky")

    def __init__(self, evidence: Evidence) -> None:
        self.calls = 0
        self.first_seen: dict[str, float] = {}
        self.new_calls = SlidingSum(ONE_HOUR)
        self.risky = SlidingSum(ONE_HOUR)
        self.evidence = evidence

    def size(self) -> int:
        return (
            len(self.first_seen) + self.new_calls.size() + self.risky.size() + self.evidence.size()
        )


def _new_countries(first_seen: dict[str, float], at: float, new_s: float) -> list[str]:
    """The countries first seen (after learning) less than ``new_s`` seconds before ``at``."""
    return sorted(r for r, seen in first_seen.items() if seen >= 0 and at - seen < new_s)


class IrsfDetector(Detector[IrsfParams]):
    """Cost-weighted bursts to high-risk or high-cost destinations; calls to new countries."""

    id = "irsf"
    clause_ids = ("FRD-1", "FRD-2")
    params_type = IrsfParams

    def __init__(self, params: IrsfParams | None = None, **bounds: int) -> None:
        super().__init__(params, **bounds)
        self._bursts: LruMap[tuple[str, int], _Burst] = self.per_key(_Burst)
        self._countries: LruMap[str, _Countries] = self.per_key(_Countries)

    def observe(
        self, event: UsageRecord, ctx: EventContext, params: IrsfParams | None = None
    ) -> list[DetectorFinding]:
        """Score an outbound call to a risky destination; track the tenant's countries."""
        if not isinstance(event, CallRecord) or event.direction is not Direction.OUTBOUND:
            return []
        callee = ctx.callee
        if callee is None or callee.e164 is None or callee.is_emergency:
            return []
        p = params or self.params
        findings: list[DetectorFinding] = []
        risky = ctx.costly(p.high_cost_per_minute)
        if risky:
            price = ctx.rate_per_minute
            weight = p.unrated_weight if price is None else price * (1 + event.duration_s / 60)
            if weight > 0:
                self._score(event, ctx, p, callee.country_code or 0, weight, findings)
        region = callee.region
        if region is not None and region != ctx.tenant.country:
            findings += self._country(event, ctx, p, region, risky)
        else:
            self._countries.get(ctx.tenant.tenant_id).calls += 1
        return findings

    def _score(
        self,
        event: CallRecord,
        ctx: EventContext,
        p: IrsfParams,
        country_code: int,
        weight: float,
        findings: list[DetectorFinding],
    ) -> None:
        """Add a risky call's weight to its country's 5- and 60-minute scores."""
        tenant = ctx.tenant.tenant_id
        burst = self._bursts.get((tenant, country_code))
        burst.evidence.add(event.call_id)
        at = ctx.at
        for topic, window, sums, threshold in (
            ("burst 5m", FIVE_MINUTES, burst.fast, p.fast_score),
            ("burst 60m", ONE_HOUR, burst.slow, p.slow_score),
        ):
            score = sums.add(at, weight)
            if score >= threshold:
                findings += self._burst(
                    ctx, topic, window, country_code, score, threshold, burst, p
                )

    def _burst(
        self,
        ctx: EventContext,
        topic: str,
        window: Window,
        country_code: int,
        score: float,
        threshold: float,
        burst: _Burst,
        p: IrsfParams,
    ) -> list[DetectorFinding]:
        """A finding on the destination country whose score crossed ``window``'s threshold."""
        critical = score >= threshold * p.critical_factor
        return self.raise_once(
            ctx,
            topic,
            KeyKind.DESTINATION,
            f"+{country_code}",
            Severity.CRITICAL if critical else Severity.HIGH,
            window,
            statistic="cost_weighted_score",
            value=round(score, 4),
            threshold=threshold,
            summary=lambda: (
                f"calls to high-risk or high-cost numbers in +{country_code} scored "
                f"{score:.2f} in {window.name} (threshold {threshold:g})"
            ),
            evidence=burst.evidence,
            action=SuggestedAction.BLOCK_PREFIX,
        )

    def _country(
        self,
        event: CallRecord,
        ctx: EventContext,
        p: IrsfParams,
        region: str,
        risky: bool,
    ) -> list[DetectorFinding]:
        """Calls to countries new for the tenant, once it has learnt its usual ones."""
        tenant = ctx.tenant.tenant_id
        state = self._countries.get(tenant)
        state.calls += 1
        at = ctx.at
        first = state.first_seen.get(region)
        if first is None:
            if len(state.first_seen) >= _MAX_COUNTRIES:
                return []
            # Countries met while learning are part of the tenant's normal traffic.
            first = state.first_seen[region] = at if state.calls > p.learning_calls else -1.0
        if first < 0 or at - first >= p.new_country_s:
            return []
        state.evidence.add(event.call_id)
        calls = state.new_calls.add(at)
        risky_calls = state.risky.add(at, 1 if risky else 0)
        if calls < p.new_country_calls:
            return []
        first_seen = state.first_seen
        if not risky_calls and (
            len(_new_countries(first_seen, at, p.new_country_s)) < p.new_countries_min
        ):
            return []  # one new country and nothing risky: a tenant opening a new market
        severity = Severity.HIGH if risky_calls else Severity.MEDIUM
        return self.raise_once(
            ctx,
            "new",
            KeyKind.TENANT,
            tenant,
            severity,
            ONE_HOUR,
            statistic="calls_to_new_countries",
            value=calls,
            threshold=p.new_country_calls,
            summary=lambda: (
                f"{int(calls)} calls in 60m to countries new for the tenant "
                f"({', '.join(_new_countries(first_seen, at, p.new_country_s))})"
            ),
            evidence=state.evidence,
            action=SuggestedAction.THROTTLE if risky_calls else SuggestedAction.NONE,
        )

    def state_size(self) -> int:
        """Keys, buckets, countries and evidence ids held."""
        return held(self._bursts) + held(self._countries) + self.dedup.size()
