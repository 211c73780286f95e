"""The API's request and response bodies: pydantic models, the contract at the edge.

Every string is bounded and free of control characters; ids match their type's pattern; numbers
have sane bounds. Anything else is a 422 naming the field, before a service sees it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StringConstraints,
)

from callwarden.core.audit import AuditEntry
from callwarden.core.model import (
    ApiKey,
    Billing,
    Channel,
    NumberOwnership,
    Order,
    Override,
    PhoneNumber,
    Plan,
    PlanLimits,
    SimBoxConsent,
    Suspension,
    Tenant,
    TenantStatus,
    Trunk,
    User,
    UserRole,
    UserStatus,
)
from callwarden.core.seats import SeatCount
from callwarden.services.ports import Page

NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
"""Text without control characters (NUL included: PostgreSQL refuses it in text)."""
Text = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_CONTROL)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=NO_CONTROL)]
OptionalText = Annotated[str, StringConstraints(max_length=200, pattern=NO_CONTROL)]
Email = Annotated[str, StringConstraints(min_length=3, max_length=320, pattern=NO_CONTROL)]
Country = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$")]
TimeZone = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")
]
E164 = Annotated[str, StringConstraints(pattern=r"^\+[1-9][0-9]{6,14}$")]
ClauseId = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}-[0-9]{1,2}$")]
Address = Annotated[
    str, StringConstraints(min_length=2, max_length=64, pattern=r"^[0-9A-Fa-f:./]+$")
]
Count = Annotated[int, Strict(), Field(ge=0, le=1_000_000_000)]


def _id(prefix: str) -> str:
    return rf"^{prefix}_[0-9a-f]{{16}}$"


PlanId = Annotated[str, Path(pattern=_id("pl"), description="A plan id, e.g. pl_0123456789abcdef")]
TenantId = Annotated[str, Path(pattern=_id("tn"), description="A tenant id")]
OrderId = Annotated[str, Path(pattern=_id("or"), description="An order id")]
UserId = Annotated[str, Path(pattern=_id("us"), description="A user id")]
NumberId = Annotated[str, Path(pattern=_id("nm"), description="A phone number id")]
TrunkId = Annotated[str, Path(pattern=_id("tk"), description="A trunk id")]
KeyId = Annotated[str, Path(pattern=_id("ak"), description="An API key id")]
PlanIdBody = Annotated[str, StringConstraints(pattern=_id("pl"))]
TenantRef = Annotated[str, StringConstraints(pattern=_id("tn"))]
UserRef = Annotated[str, StringConstraints(pattern=_id("us"))]

Limit = Annotated[int, Query(ge=1, le=500, description="Page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="Items to skip")]
FilterText = Annotated[str | None, Query(max_length=200, pattern=NO_CONTROL)]


class Model(BaseModel):
    """Base of every body: unknown fields are refused so typos don't pass silently."""

    model_config = ConfigDict(extra="forbid")


T = TypeVar("T")


class PageOut(BaseModel, Generic[T]):
    """A page of a list."""

    items: list[T]
    total: int
    limit: int
    offset: int
    next_offset: int | None


def page_of(page: Page[Any], items: list[T]) -> PageOut[T]:
    """Wrap converted items with the page's position."""
    return PageOut[T](
        items=items,
        total=page.total,
        limit=page.limit,
        offset=page.offset,
        next_offset=page.next_offset,
    )


# -- plans ---------------------------------------------------------------------------------------
class LimitsBody(Model):
    """A plan's limit parameters; null means no limit."""

    concurrent_calls_per_tenant: Count | None = None
    concurrent_calls_per_user: Count | None = 2
    concurrent_calls_per_number: Count | None = None
    attempts_per_second: Annotated[int, Strict(), Field(ge=1, le=100_000)] | None = 10
    attempts_per_minute: Annotated[int, Strict(), Field(ge=1, le=6_000_000)] | None = 300
    attempts_per_15_minutes: Annotated[int, Strict(), Field(ge=1, le=90_000_000)] | None = None
    attempts_per_hour: Annotated[int, Strict(), Field(ge=1, le=360_000_000)] | None = None
    calls_per_destination_per_day: Count | None = 10
    max_call_duration_s: Annotated[int, Strict(), Field(ge=1, le=86_400)] | None = 14_400
    monthly_charge_limit_minor: Annotated[int, Strict(), Field(ge=0, le=10**15)] | None = None
    monthly_charge_soft_limit_minor: Annotated[int, Strict(), Field(ge=0, le=10**15)] | None = None
    allow_withheld_caller_id: StrictBool = False
    allowed_countries: list[Country] | None = Field(None, max_length=300)
    blocked_number_types: list[Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]] = (
        Field(
            default_factory=lambda: [
                "premium_rate",
                "shared_cost",
                "satellite",
                "international_network",
            ],
            max_length=20,
        )
    )

    def to_core(self) -> PlanLimits:
        """The core value."""
        data = self.model_dump()
        data["allowed_countries"] = (
            tuple(c.upper() for c in self.allowed_countries) if self.allowed_countries else None
        )
        data["blocked_number_types"] = tuple(self.blocked_number_types)
        return PlanLimits(**data)

    @classmethod
    def of(cls, limits: PlanLimits) -> LimitsBody:
        """From the core value."""
        return cls(
            concurrent_calls_per_tenant=limits.concurrent_calls_per_tenant,
            concurrent_calls_per_user=limits.concurrent_calls_per_user,
            concurrent_calls_per_number=limits.concurrent_calls_per_number,
            attempts_per_second=limits.attempts_per_second,
            attempts_per_minute=limits.attempts_per_minute,
            attempts_per_15_minutes=limits.attempts_per_15_minutes,
            attempts_per_hour=limits.attempts_per_hour,
            calls_per_destination_per_day=limits.calls_per_destination_per_day,
            max_call_duration_s=limits.max_call_duration_s,
            monthly_charge_limit_minor=limits.monthly_charge_limit_minor,
            monthly_charge_soft_limit_minor=limits.monthly_charge_soft_limit_minor,
            allow_withheld_caller_id=limits.allow_withheld_caller_id,
            allowed_countries=list(limits.allowed_countries) if limits.allowed_countries else None,
            blocked_number_types=list(limits.blocked_number_types),
        )


class PlanIn(Model):
    name: Text
    billing: Billing = Billing.METERED
    channels: list[Channel] = Field(default_factory=lambda: [Channel.VOICE], min_length=1)
    currency: Currency = "EUR"
    limits: LimitsBody = Field(default_factory=LimitsBody)


class PlanPatch(Model):
    name: Text | None = None
    channels: list[Channel] | None = Field(None, min_length=1)
    currency: Currency | None = None
    limits: LimitsBody | None = None


class PlanOut(BaseModel):
    id: str
    name: str
    billing: Billing
    channels: list[Channel]
    currency: str
    limits: LimitsBody
    created_at: datetime

    @classmethod
    def of(cls, p: Plan) -> PlanOut:
        return cls(
            id=p.id,
            name=p.name,
            billing=p.billing,
            channels=sorted(p.channels),
            currency=p.currency,
            limits=LimitsBody.of(p.limits),
            created_at=p.created_at,
        )


# -- tenants -------------------------------------------------------------------------------------
class SuspensionOut(BaseModel):
    reason: str
    clause_ids: list[str]
    at: datetime
    by: str

    @classmethod
    def of(cls, s: Suspension | None) -> SuspensionOut | None:
        if s is None:
            return None
        return cls(reason=s.reason, clause_ids=list(s.clause_ids), at=s.at, by=s.by)


class SimBoxConsentOut(BaseModel):
    """The tenant's written consent to run SIM boxes on record (FRD-6)."""

    reference: str = Field(description="The signed document, as an auditor would look it up")
    at: datetime
    by: str

    @classmethod
    def of(cls, c: SimBoxConsent | None) -> SimBoxConsentOut | None:
        if c is None:
            return None
        return cls(reference=c.reference, at=c.at, by=c.by)


class SimBoxConsentIn(Model):
    """The signed document that holds the tenant's written consent to run SIM boxes (FRD-6)."""

    reference: Annotated[str, StringConstraints(min_length=1, max_length=500, pattern=NO_CONTROL)]


class TenantIn(Model):
    name: Text
    country: Country
    timezone: TimeZone
    plan_id: PlanIdBody


class TenantPatch(Model):
    name: Text | None = None
    country: Country | None = None
    timezone: TimeZone | None = None
    plan_id: PlanIdBody | None = None


class TenantOut(BaseModel):
    id: str
    name: str
    country: str
    timezone: str
    plan_id: str
    status: TenantStatus
    suspension: SuspensionOut | None
    created_at: datetime
    monthly_charge_limit_minor: int | None = Field(
        None, description="The tenant's own hard limit (LIM-1); null: its plan's"
    )
    monthly_charge_soft_limit_minor: int | None = Field(
        None, description="The tenant's own soft limit (LIM-3); null: its plan's"
    )
    sim_box_consent: SimBoxConsentOut | None = Field(
        None, description="Written consent to run SIM boxes on record (FRD-6); null: none"
    )

    @classmethod
    def of(cls, t: Tenant) -> TenantOut:
        return cls(
            id=t.id,
            name=t.name,
            country=t.country,
            timezone=t.timezone,
            plan_id=t.plan_id,
            status=t.status,
            suspension=SuspensionOut.of(t.suspension),
            created_at=t.created_at,
            monthly_charge_limit_minor=t.monthly_charge_limit_minor,
            monthly_charge_soft_limit_minor=t.monthly_charge_soft_limit_minor,
            sim_box_consent=SimBoxConsentOut.of(t.sim_box_consent),
        )


class ChargeLimitsIn(Model):
    """A tenant's own monthly charge limits in minor units of its plan's currency; null keeps
    the plan's limit."""

    hard_minor: Annotated[int, Strict(), Field(ge=0, le=10**15)] | None = None
    soft_minor: Annotated[int, Strict(), Field(ge=0, le=10**15)] | None = None


class SpendOut(BaseModel):
    """Month-to-date spend of a tenant (LIM-1, LIM-3), in minor units of `currency`."""

    tenant_id: str
    month: str = Field(description="The budget month in the tenant's timezone, YYYY-MM")
    currency: str
    settled_minor: int = Field(description="Cost of the calls that ended this month")
    reserved_minor: int = Field(description="Held for calls in progress")
    hard_limit_minor: int | None
    soft_limit_minor: int | None
    remaining_minor: int | None = Field(description="Left under the hard limit; null: none")


class SuspendIn(Model):
    """Why: words and the clause ids behind them (GOV-2)."""

    reason: LongText
    clause_ids: list[ClauseId] = Field(min_length=1, max_length=10)


class ReinstateIn(Model):
    reason: LongText


class WithdrawIn(Model):
    """Why a consent is taken off record (withdrawn by the tenant, expired, found wanting)."""

    reason: LongText


class OrderIn(Model):
    seat_limit: Annotated[int, Strict(), Field(ge=0, le=1_000_000)]
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    reference: OptionalText = ""


class OrderOut(BaseModel):
    id: str
    tenant_id: str
    seat_limit: int
    valid_from: datetime
    valid_until: datetime | None
    reference: str
    created_at: datetime

    @classmethod
    def of(cls, o: Order) -> OrderOut:
        return cls(
            id=o.id,
            tenant_id=o.tenant_id,
            seat_limit=o.seat_limit,
            valid_from=o.valid_from,
            valid_until=o.valid_until,
            reference=o.reference,
            created_at=o.created_at,
        )


class SeatsOut(BaseModel):
    limit: int
    used: int
    available: int

    @classmethod
    def of(cls, c: SeatCount) -> SeatsOut:
        return cls(limit=c.limit, used=c.used, available=c.available)


# -- users and keys ------------------------------------------------------------------------------
class UserIn(Model):
    email: Email
    display_name: Text
    role: UserRole = UserRole.AGENT


class UserPatch(Model):
    email: Email | None = None
    display_name: Text | None = None
    role: UserRole | None = None


class ActivateIn(Model):
    """An operator may activate past the seat limit by giving a reason (GOV-7)."""

    override_reason: LongText | None = None


class UserOut(BaseModel):
    id: str
    tenant_id: str | None
    email: str
    display_name: str
    role: UserRole
    status: UserStatus
    suspension: SuspensionOut | None
    created_at: datetime

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls(
            id=u.id,
            tenant_id=u.tenant_id,
            email=u.email,
            display_name=u.display_name,
            role=u.role,
            status=u.status,
            suspension=SuspensionOut.of(u.suspension),
            created_at=u.created_at,
        )


class KeyIn(Model):
    name: Text


class KeyOut(BaseModel):
    id: str
    user_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, k: ApiKey) -> KeyOut:
        return cls(
            id=k.id,
            user_id=k.user_id,
            name=k.name,
            created_at=k.created_at,
            revoked_at=k.revoked_at,
        )


class IssuedKeyOut(KeyOut):
    secret: str = Field(description="The key itself; shown once, never stored")


# -- numbers and trunks --------------------------------------------------------------------------
class NumberIn(Model):
    e164: E164
    ownership: NumberOwnership = NumberOwnership.OWNED


class NumberPatch(Model):
    ownership: NumberOwnership


class NumberStatusIn(Model):
    reason: LongText
    clause_ids: list[ClauseId] = Field(
        default_factory=lambda: ["GOV-2"], min_length=1, max_length=10
    )


class NumberOut(BaseModel):
    id: str
    tenant_id: str
    e164: str
    ownership: NumberOwnership
    status: str
    suspension: SuspensionOut | None
    created_at: datetime

    @classmethod
    def of(cls, n: PhoneNumber) -> NumberOut:
        return cls(
            id=n.id,
            tenant_id=n.tenant_id,
            e164=n.e164,
            ownership=n.ownership,
            status=n.status.value,
            suspension=SuspensionOut.of(n.suspension),
            created_at=n.created_at,
        )


class TrunkIn(Model):
    name: Text
    source_addresses: list[Address] = Field(min_length=1, max_length=50)


class TrunkPatch(Model):
    name: Text | None = None
    source_addresses: list[Address] | None = Field(None, min_length=1, max_length=50)


class TrunkOut(BaseModel):
    id: str
    tenant_id: str
    name: str
    source_addresses: list[str]
    created_at: datetime

    @classmethod
    def of(cls, t: Trunk) -> TrunkOut:
        return cls(
            id=t.id,
            tenant_id=t.tenant_id,
            name=t.name,
            source_addresses=list(t.source_addresses),
            created_at=t.created_at,
        )


# -- audit ---------------------------------------------------------------------------------------
class AuditOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str
    tenant_id: str | None
    reason: str | None
    clause_ids: list[str]
    details: dict[str, object]
    prev_hash: str
    hash: str

    @classmethod
    def of(cls, e: AuditEntry) -> AuditOut:
        return cls(
            seq=e.seq,
            at=e.at,
            actor=e.actor,
            action=e.action,
            subject_type=e.subject_type,
            subject_id=e.subject_id,
            tenant_id=e.tenant_id,
            reason=e.reason,
            clause_ids=list(e.clause_ids),
            details=dict(e.details),
            prev_hash=e.prev_hash,
            hash=e.hash,
        )


class VerifyOut(BaseModel):
    entries: int
    intact: bool
    first_broken_seq: int | None
    problem: str | None


class OverrideOut(BaseModel):
    id: str
    tenant_id: str
    clause_id: str
    subject_type: str
    subject_id: str
    reason: str
    by: str
    at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, o: Override) -> OverrideOut:
        return cls(
            id=o.id,
            tenant_id=o.tenant_id,
            clause_id=o.clause_id,
            subject_type=o.subject_type,
            subject_id=o.subject_id,
            reason=o.reason,
            by=o.by,
            at=o.at,
            expires_at=o.expires_at,
        )
