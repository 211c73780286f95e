"""Seasonal baselines of volume and spend, with deviation alerts (FRD-4).

Rule
----
For each tenant, each of its numbers (the caller of an outbound call, the called number of an
inbound one) and each (tenant, destination country), the detector keeps the calls and the spend
(minor units: the record's cost, else the tenant's rate deck) of every hour, in the tenant's
local time, and remembers each hour of the week over the last ``weeks`` weeks (quiet hours count
as zero). The hour under way is compared with the same hour of the week before:

    threshold = median + max(sigmas * 1.4826 * MAD, min_relative_increase * median, floor)

over the stored weeks of that hour (median and MAD: robust statistics, so one odd week does not
move the norm). A finding is raised as soon as the hour's calls or spend cross it, with at least
``min_weeks`` weeks of history and at least ``min_calls`` calls or ``min_spend_minor`` spend
(the floors; ``number_min_calls`` for a single number, since one agent working a calling list
makes 20 to 50 calls an hour and only a machine dials a call a minute), once per key, metric
and hour; it is high at twice the threshold. Anomalies are
for notifying the tenant and the operator promptly, so no action is suggested.

``min_relative_increase`` 1.0 (twice the norm) follows the research table's "spend velocity
over 2x the daily average" warning level (shared research, compliance rules section 3.6,
engineering defaults); TransNexus learns calling patterns over 12 weeks (telecom anchors
section 6.3), here ``weeks`` (4 by default) bounds memory.

Calls placed under a campaign label are left out of the calls metric (their spend still
counts) unless ``count_campaigns`` is set: a campaign is declared to the platform and paced by
its dialer (DIA-1), so its volume is planned, and a new or larger campaign is exactly what a
seasonal norm cannot know about. The shape of a campaign's calls is the robocall detector's
business, its destinations and spend stay here and with IRSF.

Benign look-alikes: a peak that comes back every week (Monday-morning campaigns) is in the
baseline of that hour and raises nothing; a one-off lawful campaign of a thousand calls is
declared, so its calls are not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
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
    HourOfWeekBaseline,
    LruMap,
    threshold_above,
)
from callwarden.core.usage.record import CallRecord, UsageRecord

__all__ = ["BaselineDetector", "BaselineParams"]

#: Baselines are larger than other per-key state (2 metrics x 168 hours x weeks), so each of
#: the three key maps holds fewer keys by default.
DEFAULT_BASELINE_KEYS: Final[int] = 5_000

_CALLS, _SPEND = 0, 1
_METRICS: Final = (("calls_in_hour", "calls"), ("spend_in_hour_minor", "spend"))


@dataclass(frozen=True, slots=True)
class BaselineParams:
    """Thresholds of :class:`BaselineDetector` (see the module docstring for their sources)."""

    min_weeks: int = 2
    sigmas: float = 5.0
    min_relative_increase: float = 1.0
    min_calls: float = 20
    number_min_calls: float = 60
    min_spend_minor: float = 2_000
    per_number: bool = True
    per_destination: bool = True
    count_campaigns: bool = False


class _Key:
    __slots__ = ("alerted", "base", "evidence", "limits")

    def __init__(self, weeks: int, evidence: Evidence) -> None:
        self.base = HourOfWeekBaseline(2, weeks)
        self.limits: tuple[tuple[float, float], tuple[float, float]] | None = None
        self.alerted = [0, 0]
        self.evidence = evidence

    def size(self) -> int:
        return self.base.size() + self.evidence.size()


class BaselineDetector(Detector[BaselineParams]):
    """Hour-of-week baselines per tenant, number and destination; deviation alerts."""

    id = "baseline"
    clause_ids = ("FRD-4",)
    params_type = BaselineParams

    def __init__(
        self,
        params: BaselineParams | None = None,
        *,
        weeks: int = 4,
        max_keys: int = DEFAULT_BASELINE_KEYS,
        max_evidence: int = 20,
    ) -> None:
        super().__init__(params, max_keys=max_keys, max_evidence=max_evidence)
        if weeks < 1:
            raise ValueError("baseline: weeks must be at least 1")
        self.weeks = weeks
        factory = partial(_Key, weeks)
        self._tenants: LruMap[tuple[str, str], _Key] = self.per_key(factory)
        self._numbers: LruMap[tuple[str, str], _Key] = self.per_key(factory)
        self._destinations: LruMap[tuple[str, str], _Key] = self.per_key(factory)

    def observe(
        self, event: UsageRecord, ctx: EventContext, params: BaselineParams | None = None
    ) -> list[DetectorFinding]:
        """Add a call to its keys' hour; alert when the hour departs from its seasonal norm."""
        if not isinstance(event, CallRecord):
            return []
        p = params or self.params
        facts = ctx.tenant
        tenant = facts.tenant_id
        hour = ctx.context.local_hour(facts.timezone, ctx.at)
        # A call placed under a declared campaign is planned volume: its spend counts, its
        # number does not (unless ``count_campaigns``).
        counted = 0.0 if event.campaign and not p.count_campaigns else 1.0
        values = (counted, float(ctx.cost_minor or 0))
        findings: list[DetectorFinding] = []
        self._feed(
            self._tenants,
            KeyKind.TENANT,
            (tenant, tenant),
            p.min_calls,
            hour,
            values,
            event,
            ctx,
            p,
            findings,
        )
        outbound = event.direction is Direction.OUTBOUND
        if p.per_number:
            own = event.caller if outbound else event.callee
            if own:
                self._feed(
                    self._numbers,
                    KeyKind.NUMBER,
                    (tenant, own),
                    p.number_min_calls,
                    hour,
                    values,
                    event,
                    ctx,
                    p,
                    findings,
                )
        if p.per_destination and outbound:
            callee = ctx.callee
            if callee is not None and callee.region is not None:
                self._feed(
                    self._destinations,
                    KeyKind.DESTINATION,
                    (tenant, callee.region),
                    p.min_calls,
                    hour,
                    values,
                    event,
                    ctx,
                    p,
                    findings,
                )
        return findings

    def _feed(
        self,
        keys: LruMap[tuple[str, str], _Key],
        kind: KeyKind,
        key: tuple[str, str],
        min_calls: float,
        hour: int,
        values: tuple[float, float],
        event: CallRecord,
        ctx: EventContext,
        p: BaselineParams,
        findings: list[DetectorFinding],
    ) -> None:
        """Add the call to ``key``'s hour in ``keys``; append a finding for each metric that
        crossed its threshold more severely than before this hour.

        Most calls stop early: the hour is still under the floors (``min_calls``, the spend
        floor), or under both metrics' thresholds.
        """
        state = keys.get(key)
        base = state.base
        if base.add(hour, values):
            state.limits = None
            state.alerted = [0, 0]
        if base.hour != hour:
            return  # a record for an hour already closed
        current = base.current
        calls, spend = current
        if calls < min_calls and spend < p.min_spend_minor:
            return
        state.evidence.add(event.call_id)
        limits = state.limits
        if limits is None:
            limits = state.limits = self._limits(base, hour, p, min_calls)
        if calls < limits[_CALLS][0] and spend < limits[_SPEND][0]:
            return  # neither metric has reached its threshold
        for metric in (_CALLS, _SPEND):
            threshold, median = limits[metric]
            value = current[metric]
            if value < threshold:
                continue
            severity = Severity.HIGH if value >= 2 * threshold else Severity.MEDIUM
            if state.alerted[metric] >= severity.rank:
                continue
            state.alerted[metric] = severity.rank
            statistic, noun = _METRICS[metric]
            findings.append(
                self.finding(
                    ctx,
                    key_kind=kind,
                    key=key[1],
                    severity=severity,
                    window="hour-of-week",
                    statistic=statistic,
                    value=value,
                    threshold=round(threshold, 2),
                    baseline=median,
                    summary=(
                        f"{noun} this hour ({value:g}) is far above the usual for this hour of "
                        f"the week (median {median:g}, threshold {threshold:.1f})"
                    ),
                    evidence=state.evidence.ids(),
                    action=SuggestedAction.NONE,
                )
            )

    @staticmethod
    def _limits(
        base: HourOfWeekBaseline, hour: int, p: BaselineParams, min_calls: float
    ) -> tuple[tuple[float, float], tuple[float, float]]:
        """(threshold, median) per metric for ``hour``; infinite while history is short."""
        if base.weeks_seen(hour) < p.min_weeks:
            return ((math.inf, 0.0), (math.inf, 0.0))
        out: list[tuple[float, float]] = []
        for metric, floor in ((_CALLS, min_calls), (_SPEND, p.min_spend_minor)):
            norm = base.baseline(hour, metric)
            assert norm is not None
            median, mad = norm
            limit = threshold_above(median, mad, p.sigmas, p.min_relative_increase, floor)
            out.append((max(limit, floor), median))
        return (out[0], out[1])

    def state_size(self) -> int:
        """Keys, baseline cells and evidence ids held."""
        maps = (self._tenants, self._numbers, self._destinations)
        return self.dedup.size() + sum(held(keys) for keys in maps)
