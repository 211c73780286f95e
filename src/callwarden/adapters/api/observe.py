"""What the admission endpoint shows operators: Prometheus metrics and the latest decisions."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram

from callwarden.core.admission.attempt import CallAttempt
from callwarden.core.admission.decision import Decision

DECISIONS = Counter(
    "callwarden_admission_decisions_total",
    "Admission decisions, by outcome and the rule that refused",
    ["outcome", "rule"],
)
DECISION_SECONDS = Histogram(
    "callwarden_admission_decision_seconds",
    "Server time spent deciding one call attempt",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25),
)


@dataclass(frozen=True, slots=True)
class RecentDecision:
    """One decision as the console's live view shows it (numbers as sent by the SIP server)."""

    at: float
    call_id: str
    tenant_id: str | None
    destination: str
    decision: Decision


class DecisionLog:
    """The last few hundred decisions of this instance, newest last; metrics for all of them."""

    def __init__(self, size: int = 500) -> None:
        self._recent: deque[RecentDecision] = deque(maxlen=size)
        self._counters: dict[tuple[str, str], Any] = {}

    def record(self, attempt: CallAttempt, decision: Decision, started: float) -> None:
        """Count the decision and keep it for the live view."""
        DECISION_SECONDS.observe(time.perf_counter() - started)
        if decision.admit:
            outcome = "emergency" if decision.emergency else "admitted"
        else:
            outcome = "refused"
        key = (outcome, decision.refused_by or "")
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = DECISIONS.labels(*key)
        counter.inc()
        self._recent.append(
            RecentDecision(
                attempt.at, attempt.call_id, attempt.tenant_id, attempt.destination, decision
            )
        )

    def latest(self, limit: int, tenant_id: str | None = None) -> list[RecentDecision]:
        """The newest decisions first, optionally of one tenant."""
        items = [d for d in reversed(self._recent) if tenant_id is None or d.tenant_id == tenant_id]
        return items[:limit]
