"""Seats (ACC-3): how many users a tenant may have active, and what happens at the limit.

The seat limit is the sum of the seats on the tenant's orders that are valid at the moment of the
check, so an add-on order adds seats and an expired order stops granting them. What happens when
an activation would go past the limit is a `SeatLimitPolicy`: the default refuses, citing ACC-3;
the overage workflow (ACC-4) plugs in as another policy without touching the callers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callwarden.core.model import Order, Tenant, User


@dataclass(frozen=True, slots=True)
class SeatCount:
    """Seats bought and seats taken at one moment."""

    limit: int
    used: int

    @property
    def available(self) -> int:
        """Seats still free (never negative, even when a past change left the tenant over)."""
        return max(self.limit - self.used, 0)


@dataclass(frozen=True, slots=True)
class SeatVerdict:
    """The outcome of asking for one more seat."""

    allowed: bool
    reason: str
    clause_ids: tuple[str, ...] = ()
    overage: bool = False


def seat_limit_at(orders: Iterable[Order], moment: datetime) -> int:
    """Seats granted at `moment`: the sum over the orders valid then."""
    return sum(o.seat_limit for o in orders if o.is_valid_at(moment))


class SeatLimitPolicy(Protocol):
    """Decides an activation that would exceed the seat limit (the ACC-4 seam)."""

    def on_limit_reached(self, tenant: Tenant, user: User, count: SeatCount) -> SeatVerdict:
        """Return whether the user may still be activated, and why."""
        ...


class RefuseBeyondLimit:
    """The default seat policy: no activation past the seats on the order (ACC-3)."""

    def on_limit_reached(self, tenant: Tenant, user: User, count: SeatCount) -> SeatVerdict:
        """Refuse, naming the limit and the clause."""
        return SeatVerdict(
            allowed=False,
            reason=(
                f"tenant {tenant.id} has {count.used} of {count.limit} seats in use; "
                f"activating {user.id} would exceed the seats on its orders"
            ),
            clause_ids=("ACC-3",),
        )


def check_activation(
    tenant: Tenant, user: User, count: SeatCount, policy: SeatLimitPolicy
) -> SeatVerdict:
    """Decide whether `user` may take a seat now, given the tenant's current seat count."""
    if count.used < count.limit:
        return SeatVerdict(allowed=True, reason="a seat is free")
    return policy.on_limit_reached(tenant, user, count)
