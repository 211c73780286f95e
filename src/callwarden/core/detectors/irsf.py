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

Established destinations: a tenant whose trade is calling premium or shared-cost numbers (a
relay or information service) calls its country's risky ranges every day. Once a tenant has
made risky calls to a country code on ``established_days`` different days before today, that
country code is *established* for it and its thresholds are ``established_factor`` times higher:
the tenant's busy afternoons stay quiet, while a hijacked account dialling the same ranges at
fraud prices (or for fraud minutes) still crosses them. Risky calls to any other country code
keep the ordinary thresholds. This is the tenant's own history doing what a provider's
allowlist does by hand; an operator who knows the trade can also allowlist the ranges in the
tenant's detector policy (``allow_destinations``).

New destination countries: a tenant learns its countries during its first ``learning_s``
seconds and ``learning_calls`` outbound calls (both must be over). A foreign country it calls
after that is *new* until ``new_country_s`` seconds have passed since its first call and it has
been called on ``known_country_days`` different days: test calls to the same countries after a
second takeover, days after the first, are still calls to countries that are no part of the
tenant's business. When ``new_country_calls`` calls reach new countries within 60 minutes, a
finding is raised (high when one of them was risky). Without a risky call, at least
``new_countries_min`` distinct new countries are needed among those 60 minutes' calls: a
tenant opening one new market calls one new country many times, test calls after a takeover
spread over several. A tenant still in its learning period raises nothing.

Benign look-alikes: a tenant that really calls premium numbers at normal prices scores their low
price and, once they are its established destinations, has higher thresholds for them; a tenant
whose first busy morning brings its usual foreign countries learns them.
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
    FIVE_MINUTES,
    ONE_HOUR,
    LruMap,
    SlidingDistinct,
    SlidingSum,
    Window,
)
from callwarden.core.usage.record import CallRecord, UsageRecord

__all__ = ["IrsfDetector", "IrsfParams"]

_MAX_COUNTRIES: Final[int] = 400
_DAY_S: Final[int] = 86_400


@dataclass(frozen=True, slots=True)
class IrsfParams:
    """Thresholds of :class:`IrsfDetector` (prices in major currency units per minute).

    - ``high_cost_per_minute`` 0.10: IRSF hides in "mid-range" destinations of 0.10 to 0.30 per
      minute (shared research, compliance rules section 3.2, citing biaas.com).
    - ``fast_score`` 3.0 over 5 minutes and ``slow_score`` 15.0 over 60 minutes: for example ten
      attempts at 0.30 a minute in five minutes, or an hour of calls costing 15; engineering
      defaults to tune per tenant in observe mode first (ClearIP advises at least a week
      report-only).
    - ``learning_s`` one day, ``known_country_days`` 3, ``established_days`` 3 and
      ``established_factor`` 3: engineering defaults (a tenant's first day shows its usual
      countries; three days make a habit).
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
    learning_s: int = 86_400
    known_country_days: int = 3
    established_days: int = 3
    established_factor: float = 3.0


class _Burst:
    __slots__ = ("days", "evidence", "fast", "last_day", "slow")

    def __init__(self, evidence: Evidence) -> None:
        self.fast = SlidingSum(FIVE_MINUTES)
        self.slow = SlidingSum(ONE_HOUR)
        self.evidence = evidence
        # different days with risky calls to this country code, and the latest of them
        self.days = 0
        self.last_day = -1

    def seen_on(self, at: float) -> int:
        """Count the day of ``at``; return the days with risky calls before it."""
        day = int(at // _DAY_S)
        if day > self.last_day:
            self.days += 1
            self.last_day = day
        return self.days - 1 if day == self.last_day else self.days

    def size(self) -> int:
        return self.fast.size() + self.slow.size() + self.evidence.size()


class _Countries:
    __slots__ = (
        "calls",
        "days",
        "evidence",
        "first_at",
        "first_seen",
        "new_calls",
        "new_regions",
        "risky",
    )

    def __init__(self, evidence: Evidence) -> None:
        self.calls = 0
        self.first_at = -1.0
        self.first_seen: dict[str, float] = {}
        # per country first seen after learning: [days called on, latest of those days]
        self.days: dict[str, list[int]] = {}
        self.new_calls = SlidingSum(ONE_HOUR)
        self.new_regions: SlidingDistinct[str] = SlidingDistinct(ONE_HOUR, cap=_MAX_COUNTRIES)
        self.risky = SlidingSum(ONE_HOUR)
        self.evidence = evidence

    def size(self) -> int:
        return (
            len(self.first_seen)
            + len(self.days)
            + self.new_calls.size()
            + self.new_regions.size()
            + self.risky.size()
            + self.evidence.size()
        )

    def learning(self, at: float, p: IrsfParams) -> bool:
        """True while the tenant is in its learning period (time and calls)."""
        if self.first_at < 0:
            self.first_at = at
        return self.calls <= p.learning_calls or at - self.first_at < p.learning_s

    def is_new(self, region: str, at: float, p: IrsfParams) -> bool:
        """True when ``region``, first called after learning, is not yet the tenant's habit."""
        seen = self.first_seen.get(region, -1.0)
        if seen < 0:
            return False
        days = self.days.get(region)
        return at - seen < p.new_country_s or (days is not None and days[0] < p.known_country_days)

    def new_countries(self) -> list[str]:
        """The new countries called in the last 60 minutes."""
        return sorted(r for r in self.first_seen if r in self.new_regions)


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
            state = self._countries.get(ctx.tenant.tenant_id)
            state.learning(ctx.at, p)
            state.calls += 1
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
        factor = p.established_factor if burst.seen_on(at) >= p.established_days else 1.0
        for topic, window, sums, threshold in (
            ("burst 5m", FIVE_MINUTES, burst.fast, p.fast_score * factor),
            ("burst 60m", ONE_HOUR, burst.slow, p.slow_score * factor),
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
            first = state.first_seen[region] = -1.0 if state.learning(at, p) else at
            if first >= 0:
                state.days[region] = [0, -1]
        if first < 0:
            return []
        days = state.days[region]
        day = int(at // _DAY_S)
        if day > days[1]:
            days[0] += 1
            days[1] = day
        if not state.is_new(region, at, p):
            return []
        state.evidence.add(event.call_id)
        calls = state.new_calls.add(at)
        regions = state.new_regions.add(at, region)
        risky_calls = state.risky.add(at, 1 if risky else 0)
        if calls < p.new_country_calls:
            return []
        if not risky_calls and regions < p.new_countries_min:
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
                f"({', '.join(state.new_countries())})"
            ),
            evidence=state.evidence,
            action=SuggestedAction.THROTTLE if risky_calls else SuggestedAction.NONE,
        )

    def state_size(self) -> int:
        """Keys, buckets, countries and evidence ids held."""
        return held(self._bursts) + held(self._countries) + self.dedup.size()
