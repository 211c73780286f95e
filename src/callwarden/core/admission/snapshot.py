"""What admission needs to know of a tenant, held in memory between changes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from callwarden.core.admission.policy import DEFAULT_POLICY, RulePolicy
from callwarden.core.model import (
    Channel,
    NumberOwnership,
    NumberStatus,
    PlanLimits,
    Suspension,
    TenantStatus,
    Throttle,
    UserStatus,
)
from callwarden.core.spend import SpendLimits


@dataclass(frozen=True, slots=True)
class UserState:
    """A user's standing, as far as admission cares."""

    status: UserStatus
    suspension: Suspension | None = None


@dataclass(frozen=True, slots=True)
class NumberState:
    """A caller-ID number's standing."""

    id: str
    status: NumberStatus
    ownership: NumberOwnership
    suspension: Suspension | None = None


@dataclass(frozen=True, slots=True)
class TenantSnapshot:
    """A tenant's state for admission: built from the store, replaced on every change.

    `charge_limits` are the month's charge limits in effect (the tenant's own, else its
    plan's), in minor units of `currency`, the plan's currency; `timezone` sets when the
    tenant's budget month turns. `throttles` tighten the attempt rates of the tenant or of
    some of its users (LIM-5, FRD-3) until each one's expiry.
    """

    tenant_id: str
    country: str
    status: TenantStatus
    suspension: Suspension | None
    channels: frozenset[Channel]
    limits: PlanLimits
    users: Mapping[str, UserState] = field(default_factory=dict)
    numbers: Mapping[str, NumberState] = field(default_factory=dict)
    policies: Mapping[str, RulePolicy] = field(default_factory=dict)
    plan_id: str = ""
    timezone: str = "UTC"
    currency: str = "EUR"
    charge_limits: SpendLimits = field(default_factory=SpendLimits)
    throttles: tuple[Throttle, ...] = ()

    def policy(self, rule_id: str) -> RulePolicy:
        """The policy for `rule_id` (tenant's, else plan's, else enforce with no allowlist)."""
        return self.policies.get(rule_id, DEFAULT_POLICY)
