"""Fair use on unlimited plans: continuous or consistently excessive use (LIM-4).

Rule
----
Only tenants on an unlimited plan are watched (metered plans pay for what they use). Per user
(else caller number, else tenant), from answered calls:

- *talk time*: minutes on calls over the last 24 hours, rolling (never reset at midnight). At
  ``daily_minutes`` a medium finding; at ``high_daily_minutes`` a high one. A minute is counted
  once however many calls the user had open in it: fair use measures how much of the day a
  user spends on calls, and calls running at once under one user (a hijacked account dialling
  in parallel, a consultation during a call) are concurrency, not more use of the day; the
  clauses on concurrent calls (LIM-2) and shared credentials (ACC-5) are the place for them.
- *continuous activity*: calls that follow one another with gaps of at most ``gap_s`` seconds
  form one stretch of activity, from the first call's start to the last one's end. A stretch of
  ``continuous_s`` seconds raises a medium finding, ``high_continuous_s`` a high one.

The suggested action is throttling at high severity, none below: fair use is settled with the
tenant, not by cutting calls. The defaults are engineering choices longer than any working
shift (10 hours of talk a day, 12 hours without a break of ``gap_s``); tune them per plan.

Benign look-alike: a 24/7 desk staffed in shifts keeps the tenant busy all day, but each user
works a shift, so no user's talk time or activity stretch reaches the thresholds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from callwarden.core.detectors.base import (
    USER_THEN_NUMBER,
    Detector,
    DetectorFinding,
    Evidence,
    KeyKind,
    Severity,
    SuggestedAction,
    held,
    key_for,
    tier,
)
from callwarden.core.detectors.context import EventContext
from callwarden.core.detectors.windows import ONE_DAY, LruMap, SlidingSum
from callwarden.core.model import Billing
from callwarden.core.usage.record import CallRecord, UsageRecord

__all__ = ["FairUseDetector", "FairUseParams"]


@dataclass(frozen=True, slots=True)
class FairUseParams:
    """Thresholds of :class:`FairUseDetector` (see the module docstring)."""

    daily_minutes: float = 600
    high_daily_minutes: float = 1_080
    gap_s: int = 300
    continuous_s: int = 12 * 3600
    high_continuous_s: int = 20 * 3600


class _User:
    __slots__ = ("busy_until", "end", "evidence", "start", "talk")

    def __init__(self, evidence: Evidence) -> None:
        self.talk = SlidingSum(ONE_DAY)
        self.start = -1.0
        self.end = -1.0
        self.busy_until = -1.0  # the end of the latest talk time counted
        self.evidence = evidence

    def talk_seconds(self, end: float, billable_s: float) -> float:
        """The seconds of a call's talk time (``billable_s`` up to ``end``) not already
        counted for an earlier call of the user that overlapped it."""
        fresh = max(0.0, end - max(end - billable_s, self.busy_until))
        self.busy_until = max(self.busy_until, end)
        return fresh

    def size(self) -> int:
        return self.talk.size() + self.evidence.size()


class FairUseDetector(Detector[FairUseParams]):
    """Talk time over 24 hours and stretches of continuous activity, per user."""

    id = "fair_use"
    clause_ids = ("LIM-4",)
    params_type = FairUseParams

    def __init__(self, params: FairUseParams | None = None, **bounds: int) -> None:
        super().__init__(params, **bounds)
        self._users: LruMap[tuple[str, str], _User] = self.per_key(_User)

    def observe(
        self, event: UsageRecord, ctx: EventContext, params: FairUseParams | None = None
    ) -> list[DetectorFinding]:
        """Add an answered call of an unlimited-plan user; raise at the fair-use limits."""
        # the plan first: four tenants in five are metered and stop here
        if (
            ctx.tenant.billing is not Billing.UNLIMITED
            or not isinstance(event, CallRecord)
            or event.answered_at is None
        ):
            return []
        p = params or self.params
        tenant = ctx.tenant.tenant_id
        key_kind, key = key_for(event, tenant, USER_THEN_NUMBER)
        state = self._users.get((tenant, key))
        state.evidence.add(event.call_id)
        at = ctx.at
        findings: list[DetectorFinding] = []
        minutes = state.talk.add(at, state.talk_seconds(at, event.duration_s) / 60)
        if minutes >= p.daily_minutes:
            limits = (p.daily_minutes, p.high_daily_minutes)
            findings += self._raise(
                ctx,
                state,
                key_kind,
                key,
                "talk_minutes",
                minutes,
                limits,
                lambda: f"{minutes:.0f} minutes of calls in the last 24 hours",
            )
        start = ctx.started
        if state.start < 0 or start - state.end > p.gap_s:
            state.start = start
        state.end = max(state.end, at)
        stretch = state.end - state.start
        if stretch >= p.continuous_s:
            limits = (p.continuous_s, p.high_continuous_s)
            findings += self._raise(
                ctx,
                state,
                key_kind,
                key,
                "continuous_seconds",
                stretch,
                limits,
                lambda: (
                    f"{stretch / 3600:.1f} hours of calls without a break of "
                    f"{p.gap_s // 60} minutes"
                ),
            )
        return findings

    def _raise(
        self,
        ctx: EventContext,
        state: _User,
        key_kind: KeyKind,
        key: str,
        statistic: str,
        value: float,
        limits: tuple[float, float],
        summary: Callable[[], str],
    ) -> list[DetectorFinding]:
        """A medium or high finding on one of the two measures; throttling only when high."""
        severity, threshold = tier(value, *limits)
        return self.raise_once(
            ctx,
            statistic,
            key_kind,
            key,
            severity,
            ONE_DAY,
            statistic=statistic,
            value=round(value, 2),
            threshold=threshold,
            summary=summary,
            evidence=state.evidence,
            action=SuggestedAction.THROTTLE if severity is Severity.HIGH else SuggestedAction.NONE,
        )

    def state_size(self) -> int:
        """Keys, buckets and evidence ids held."""
        return held(self._users) + self.dedup.size()
