"""Rule policies: how each admission rule runs for a plan or tenant.

Every rule can be enforced, only observed (the decision records what it would have done and the
call goes through, so a provider can roll a rule out in report-only mode first) or turned off;
an allowlist of destination prefixes and users exempts attempts from it; and rules that need the
shared counters say whether to fail open or closed when the counters cannot be reached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class RuleMode(StrEnum):
    """Enforce refuses; observe records and admits; off skips the rule."""

    ENFORCE = "enforce"
    OBSERVE = "observe"
    OFF = "off"


class FailureMode(StrEnum):
    """What a counter rule does when its backend is unreachable."""

    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class RulePolicy:
    """The mode, failure mode and allowlist of one rule."""

    mode: RuleMode = RuleMode.ENFORCE
    failure: FailureMode = FailureMode.OPEN
    allow_destinations: tuple[str, ...] = ()
    allow_users: frozenset[str] = field(default_factory=frozenset)

    def exempts(self, destination_e164: str | None, user_id: str | None) -> bool:
        """True when the allowlist exempts this destination or user from the rule."""
        if user_id is not None and user_id in self.allow_users:
            return True
        if destination_e164 is not None and self.allow_destinations:
            digits = destination_e164.removeprefix("+")
            return any(digits.startswith(p) for p in self.allow_destinations)
        return False


DEFAULT_POLICY = RulePolicy()


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """A rule's id, the clauses it serves, and what it checks, for docs and the API."""

    id: str
    clause_ids: tuple[str, ...]
    description: str
    uses_counters: bool = False


RULES: tuple[RuleInfo, ...] = (
    RuleInfo("tenant_status", ("GOV-2",), "the tenant is active (not suspended or terminated)"),
    RuleInfo(
        "user_status", ("GOV-2", "ACC-1", "ACC-3"), "the user exists, is active, holds a seat"
    ),
    RuleInfo("channel", ("ACC-1",), "the plan entitles the tenant to voice"),
    RuleInfo("destination_valid", ("FRD-1",), "the destination is a valid number"),
    RuleInfo("destination_type", ("FRD-1",), "the destination's number type is not blocked"),
    RuleInfo("destination_country", ("FRD-1",), "the destination country is permitted"),
    RuleInfo("high_risk_prefix", ("FRD-1",), "the destination is not on the high-risk list"),
    RuleInfo("caller_id", ("CID-1",), "the caller ID is the tenant's own, valid, not premium"),
    RuleInfo("attempt_rate", ("LIM-5",), "attempts per second and minute", uses_counters=True),
    RuleInfo("concurrent_calls", ("LIM-2",), "concurrent calls", uses_counters=True),
    RuleInfo("repeat_calls", ("DIA-4",), "calls per destination in 24 h", uses_counters=True),
    RuleInfo(
        "monthly_charges",
        ("LIM-1", "LIM-3"),
        "the month's charges stay within the hard limit; the call lasts what the budget affords",
        uses_counters=True,
    ),
)
RULE_IDS = frozenset(r.id for r in RULES)
RULES_BY_ID = {r.id: r for r in RULES}
