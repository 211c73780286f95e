"""The domain model: tenants, orders, users, phone numbers, trunks and plans.

Plain frozen dataclasses with no I/O. Services load and store them through the store adapter;
rules and detectors read them. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from callwarden.core.errors import InvalidInput


class TenantStatus(StrEnum):
    """A tenant's standing with the provider."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


class UserRole(StrEnum):
    """What a user may do. Operators are the provider's staff and belong to no tenant."""

    OPERATOR = "operator"
    TENANT_ADMIN = "tenant_admin"
    SUPERVISOR = "supervisor"
    AGENT = "agent"
    AUDITOR = "auditor"


class UserStatus(StrEnum):
    """A user's lifecycle: invited users hold no seat until activated."""

    INVITED = "invited"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DEACTIVATED = "deactivated"


class NumberStatus(StrEnum):
    """Whether a phone number may be used as a caller ID."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    RELEASED = "released"


class NumberOwnership(StrEnum):
    """How the tenant holds a number: assigned by the provider, or proven by verification."""

    OWNED = "owned"
    VERIFIED = "verified"


class Billing(StrEnum):
    """Metered plans are charged per use; unlimited plans are subject to fair use (LIM-4)."""

    METERED = "metered"
    UNLIMITED = "unlimited"


class Channel(StrEnum):
    """Communication channels a plan can entitle (ACC-1)."""

    VOICE = "voice"
    MESSAGING = "messaging"
    VIDEO = "video"


@dataclass(frozen=True, slots=True)
class Suspension:
    """Why something was suspended (GOV-2): a reason in words and the clauses behind it."""

    reason: str
    clause_ids: tuple[str, ...]
    at: datetime
    by: str


@dataclass(frozen=True, slots=True)
class SimBoxConsent:
    """The provider holds a tenant's written consent to run SIM boxes or GSM gateways (FRD-6).

    ``reference`` names the signed document (a contract annex, a ticket) so that an auditor can
    find it; ``at`` and ``by`` say when and by whom it was put on record. While it is on record
    the ``simbox`` detector leaves the tenant alone.
    """

    reference: str
    at: datetime
    by: str


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """The limit parameters a plan sets; admission rules read them.

    `None` means "no limit". Money is in minor units of the plan's currency.
    """

    concurrent_calls_per_tenant: int | None = None
    concurrent_calls_per_user: int | None = 2
    concurrent_calls_per_number: int | None = None
    attempts_per_second: int | None = 10
    attempts_per_minute: int | None = 300
    attempts_per_15_minutes: int | None = None
    attempts_per_hour: int | None = None
    calls_per_destination_per_day: int | None = 10
    max_call_duration_s: int | None = 14_400
    monthly_charge_limit_minor: int | None = None
    monthly_charge_soft_limit_minor: int | None = None
    allow_withheld_caller_id: bool = False
    allowed_countries: tuple[str, ...] | None = None
    blocked_number_types: tuple[str, ...] = (
        "premium_rate",
        "shared_cost",
        "satellite",
        "international_network",
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """A product the provider sells: billing kind, channels and limits."""

    id: str
    name: str
    billing: Billing
    channels: frozenset[Channel]
    currency: str
    limits: PlanLimits
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Tenant:
    """A business customer of the provider: one contact center.

    The two charge limits, in minor units of the plan's currency, replace the plan's for this
    tenant when set (LIM-1 hard, LIM-3 alerting soft limit); ``None`` keeps the plan's.
    ``sim_box_consent`` is the written consent to run SIM boxes on record (FRD-6), if any.
    """

    id: str
    name: str
    country: str
    timezone: str
    plan_id: str
    status: TenantStatus
    suspension: Suspension | None
    created_at: datetime
    monthly_charge_limit_minor: int | None = None
    monthly_charge_soft_limit_minor: int | None = None
    sim_box_consent: SimBoxConsent | None = None


@dataclass(frozen=True, slots=True)
class Order:
    """A sales order: the seats a tenant bought and when they are valid (ACC-3)."""

    id: str
    tenant_id: str
    seat_limit: int
    valid_from: datetime
    valid_until: datetime | None
    reference: str
    created_at: datetime

    def is_valid_at(self, moment: datetime) -> bool:
        """True when the order grants its seats at `moment`."""
        return self.valid_from <= moment and (self.valid_until is None or moment < self.valid_until)


@dataclass(frozen=True, slots=True)
class User:
    """A person who uses the platform; tenant users take a seat while active."""

    id: str
    tenant_id: str | None
    email: str
    display_name: str
    role: UserRole
    status: UserStatus
    suspension: Suspension | None
    created_at: datetime

    @property
    def takes_seat(self) -> bool:
        """Active tenant users (of any tenant role) count against the seat limit."""
        return self.tenant_id is not None and self.status is UserStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A number in E.164 form that the tenant may present as its caller ID (CID-1)."""

    id: str
    tenant_id: str
    e164: str
    ownership: NumberOwnership
    status: NumberStatus
    suspension: Suspension | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Trunk:
    """A SIP trunk: the source addresses (IP networks) that identify a tenant's traffic."""

    id: str
    tenant_id: str
    name: str
    source_addresses: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's public part; the secret is stored only as a hash."""

    id: str
    user_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user acting through an API key."""

    user_id: str
    tenant_id: str | None
    role: UserRole

    @property
    def is_operator(self) -> bool:
        """Operators act for the provider, across tenants."""
        return self.role is UserRole.OPERATOR


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's decision to set a policy outcome aside (GOV-7); always with a reason."""

    id: str
    tenant_id: str
    clause_id: str
    subject_type: str
    subject_id: str
    reason: str
    by: str
    at: datetime
    expires_at: datetime | None = None
    details: dict[str, str] = field(default_factory=dict)


#: The attempt-rate windows of LIM-5: (label, plan limit field, period in seconds). The label
#: names the window in counter keys.
RATE_WINDOWS: Final[tuple[tuple[str, str, float], ...]] = (
    ("s", "attempts_per_second", 1.0),
    ("m", "attempts_per_minute", 60.0),
    ("q", "attempts_per_15_minutes", 900.0),
    ("h", "attempts_per_hour", 3600.0),
)


@dataclass(frozen=True, slots=True)
class ThrottleRates:
    """How far a throttle tightens attempt rates (LIM-5, FRD-3).

    ``fraction`` scales each attempt-rate window the plan sets (rounded down, at least one
    attempt); ``attempts_per_second`` and ``attempts_per_minute`` are fixed rates. When both
    are given the tighter one holds in each window. At least one must be given.
    """

    fraction: float | None = None
    attempts_per_second: int | None = None
    attempts_per_minute: int | None = None

    def __post_init__(self) -> None:
        if (
            self.fraction is None
            and self.attempts_per_second is None
            and (self.attempts_per_minute is None)
        ):
            raise InvalidInput(
                "a throttle needs a fraction or a fixed rate (attempts_per_second, "
                "attempts_per_minute)",
                field="fraction",
            )
        if self.fraction is not None and (
            isinstance(self.fraction, bool)
            or not isinstance(self.fraction, int | float)
            or not math.isfinite(self.fraction)
            or not 0 < self.fraction <= 1
        ):
            raise InvalidInput(
                f"fraction must be more than 0 and at most 1, got {self.fraction!r}",
                field="fraction",
            )
        for name, ceiling in (("attempts_per_second", 100_000), ("attempts_per_minute", 6_000_000)):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ceiling
            ):
                raise InvalidInput(
                    f"{name} must be a whole number between 1 and {ceiling:,}, got {value!r}",
                    field=name,
                )

    def windows(self, limits: PlanLimits) -> tuple[tuple[str, int, float], ...]:
        """The tightened windows as (label, attempts, period in seconds): in each window the
        tighter of the fixed rate and the plan's limit scaled by ``fraction``; a window with
        neither is left to the plan alone."""
        fixed = {"s": self.attempts_per_second, "m": self.attempts_per_minute}
        out: list[tuple[str, int, float]] = []
        for label, limit_field, period in RATE_WINDOWS:
            candidates: list[int] = []
            own = fixed.get(label)
            if own is not None:
                candidates.append(own)
            planned: int | None = getattr(limits, limit_field)
            if self.fraction is not None and planned:
                candidates.append(max(1, math.floor(planned * self.fraction)))
            if candidates:
                out.append((label, min(candidates), period))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Throttle:
    """Tightened attempt rates for a tenant, or for one of its users (LIM-5, FRD-3).

    A throttle adds its rates to the plan's: admission refuses an attempt past either. It holds
    until a person lifts it or ``expires_at`` passes, and cites ``clause_ids`` with its reason,
    like a suspension (GOV-2).
    """

    id: str
    tenant_id: str
    user_id: str | None
    rates: ThrottleRates
    reason: str
    clause_ids: tuple[str, ...]
    at: datetime
    by: str
    expires_at: datetime | None = None

    def in_force(self, now: datetime) -> bool:
        """True until ``expires_at`` (when it has one) has passed."""
        return self.expires_at is None or now < self.expires_at
