"""Sequential number-range dialing: scanning a block of numbers one after another (DIA-5).

Rule
----
Per source (user, else caller number, else tenant), calls and messages are followed as *runs*:
a number within ``max_step`` above or below the last number of a run (same length) extends it;
any other number starts a new run. Up to ``max_runs`` runs are followed at once per source, so
a dialer scanning several blocks in parallel, or interleaving other calls, is still seen; a run
left untouched for ``gap_s`` seconds ends. A run of ``early_run`` numbers raises a low finding
(observe: five numbers in a row within a few of each other do not come from a list of
customers, but a scan is only sure later), of ``warn_run`` a medium one, of ``block_run`` a high
one suggesting throttling. The defaults, 10 and 30, are the
research table's warning and block levels for range scanning; the UK regulator counts number
scanning as persistent misuse outright (shared research, compliance rules sections 3.6 and 1.3).

Benign look-alike: a calling list sorted by number, whose numbers are far apart, or repeated
calls to one number, never make a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from callwarden.core.detectors.base import (
    Detector,
    DetectorFinding,
    Evidence,
    KeyKind,
    KeyOrder,
    Severity,
    SuggestedAction,
    held,
    key_for,
    tier,
)
from callwarden.core.detectors.context import EventContext
from callwarden.core.detectors.windows import ONE_HOUR, LruMap
from callwarden.core.usage.record import (
    CallRecord,
    Direction,
    MessageRecord,
    UsageKind,
    UsageRecord,
)

__all__ = ["SequentialDialingDetector", "SequentialParams"]

#: The user, else the presenting number (a call's caller, a message's sender).
_KEYS: Final[KeyOrder] = (
    (KeyKind.USER, "user_id"),
    (KeyKind.NUMBER, "caller"),
    (KeyKind.NUMBER, "sender"),
)


@dataclass(frozen=True, slots=True)
class SequentialParams:
    """Thresholds of :class:`SequentialDialingDetector` (see the module docstring)."""

    max_step: int = 3
    early_run: int = 5
    warn_run: int = 10
    block_run: int = 30
    gap_s: int = 3_600
    max_runs: int = 8


class _Source:
    __slots__ = ("evidence", "runs")

    def __init__(self, evidence: Evidence) -> None:
        # last number of a run -> [length, last seen], least recently touched first
        self.runs: dict[int, list[float]] = {}
        self.evidence = evidence

    def size(self) -> int:
        return len(self.runs) + self.evidence.size()


def _nearest_live_run(
    runs: dict[int, list[float]], number: int, at: float, p: SequentialParams
) -> int | None:
    """The last number of the run that ``number`` extends, if any: the nearest run ending
    within ``max_step`` of it that was touched less than ``gap_s`` ago, the one below first."""
    gap_s = p.gap_s
    for step in range(1, p.max_step + 1):
        below = number - step
        if below in runs and at - runs[below][1] < gap_s:
            return below
        above = number + step
        if above in runs and at - runs[above][1] < gap_s:
            return above
    return None


class SequentialDialingDetector(Detector[SequentialParams]):
    """Runs of consecutive numbers dialled by one source."""

    id = "sequential"
    clause_ids = ("DIA-5",)
    kinds = frozenset({UsageKind.CALL, UsageKind.MESSAGE})
    params_type = SequentialParams

    def __init__(self, params: SequentialParams | None = None, **bounds: int) -> None:
        super().__init__(params, **bounds)
        self._sources: LruMap[tuple[str, str], _Source] = self.per_key(_Source)

    def observe(
        self, event: UsageRecord, ctx: EventContext, params: SequentialParams | None = None
    ) -> list[DetectorFinding]:
        """Extend or start a run with the dialled number; raise at the run thresholds."""
        if isinstance(event, CallRecord):
            item_id = event.call_id
        elif isinstance(event, MessageRecord):
            item_id = event.message_id
        else:
            return []
        if event.direction is not Direction.OUTBOUND:
            return []
        callee = ctx.callee
        if callee is None:
            return []
        e164 = callee.e164
        if e164 is None or callee.is_emergency:
            return []
        p = params or self.params
        number = int(e164[1:])
        tenant = ctx.tenant.tenant_id
        key = event.user_id
        if key:
            key_kind = KeyKind.USER  # the first party of _KEYS, read directly: most records
        else:
            key_kind, key = key_for(event, tenant, _KEYS)
        state = self._sources.get((tenant, key))
        runs = state.runs
        at = ctx.at
        if number in runs:
            # The same number again: its run is touched and becomes the most recent.
            run = runs.pop(number)
            run[1] = at
            runs[number] = run
            return []
        length = 1.0
        # Most numbers are nowhere near a followed run: look for a run to extend only when
        # one ends within max_step (a pass over at most max_runs numbers).
        low, high = number - p.max_step, number + p.max_step
        near = False
        for last in runs:
            if low <= last <= high:
                near = True
                break
        if near:
            previous = _nearest_live_run(runs, number, at, p)
            if previous is not None:
                length = runs.pop(previous)[0] + 1
        runs[number] = [length, at]
        if len(runs) > p.max_runs:
            del runs[next(iter(runs))]  # the least recently touched run is no longer followed
        if length < 2:
            return []
        state.evidence.add(item_id)
        if length < min(p.early_run, p.warn_run):
            return []
        if length < p.warn_run:
            severity, threshold = Severity.LOW, float(p.early_run)
        else:
            severity, threshold = tier(length, p.warn_run, p.block_run)
        return self.raise_once(
            ctx,
            "run",
            key_kind,
            key,
            severity,
            ONE_HOUR,
            statistic="sequential_run",
            value=length,
            threshold=threshold,
            summary=lambda: f"{int(length)} consecutive numbers dialled up to {e164}",
            evidence=state.evidence,
            action=SuggestedAction.THROTTLE if severity is Severity.HIGH else SuggestedAction.NONE,
        )

    def state_size(self) -> int:
        """Keys, runs and evidence ids held."""
        return held(self._sources) + self.dedup.size()
