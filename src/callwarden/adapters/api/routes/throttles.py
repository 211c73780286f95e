"""/v1/tenants/{tenant_id}/throttles: tightened attempt rates of a tenant or one of its users
(LIM-5, FRD-3).

Surveillance's ``throttle`` action puts them there; an operator may too, and lifts them. The
tenant's own users read them. Every change is audited and reaches admission on the next
attempt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import AwareDatetime, BaseModel, Field

from callwarden.adapters.api.auth import Caller, PlatformDep
from callwarden.adapters.api.errors import ERROR_RESPONSES
from callwarden.adapters.api.routes.surveillance import ThrottleRatesBody
from callwarden.adapters.api.schemas import (
    ClauseId,
    Limit,
    LongText,
    Model,
    Offset,
    PageOut,
    TenantId,
    UserRef,
    page_of,
)
from callwarden.core.model import Throttle
from callwarden.core.permissions import Permission
from callwarden.services.governance import authorize
from callwarden.services.ports import Page

router = APIRouter(tags=["throttles"], responses=ERROR_RESPONSES)

ThrottleId = Annotated[
    str, Path(pattern=r"^th_[0-9a-f]{16}$", description="A throttle id: th_ and 16 hex digits")
]


class ThrottleIn(Model):
    """Tighten the tenant's attempt rates, or one user's (``user_id``): a fraction of the
    plan's, fixed rates, or both; why, citing clauses; until when (null: until lifted)."""

    user_id: UserRef | None = None
    rates: ThrottleRatesBody
    reason: LongText
    clause_ids: list[ClauseId] = Field(
        default_factory=lambda: ["LIM-5", "FRD-3"], min_length=1, max_length=10
    )
    expires_at: AwareDatetime | None = None


class ThrottleLiftIn(Model):
    """Why the throttle is lifted (kept in the audit log)."""

    reason: LongText


class ThrottleOut(BaseModel):
    """A throttle, and whether it is in force (false once past its expiry)."""

    id: str
    tenant_id: str
    user_id: str | None
    rates: ThrottleRatesBody
    reason: str
    clause_ids: list[str]
    at: datetime
    by: str
    expires_at: datetime | None
    in_force: bool


def _out(t: Throttle, now: datetime) -> ThrottleOut:
    return ThrottleOut(
        id=t.id,
        tenant_id=t.tenant_id,
        user_id=t.user_id,
        rates=ThrottleRatesBody.of(t.rates),
        reason=t.reason,
        clause_ids=list(t.clause_ids),
        at=t.at,
        by=t.by,
        expires_at=t.expires_at,
        in_force=t.in_force(now),
    )


@router.get("/v1/tenants/{tenant_id}/throttles")
def list_throttles(
    tenant_id: TenantId, by: Caller, p: PlatformDep, limit: Limit = 50, offset: Offset = 0
) -> PageOut[ThrottleOut]:
    """The throttles on the tenant and its users, oldest first (expired ones until lifted)."""
    now = p.governance.clock()
    found = p.governance.list_throttles(by, tenant_id)
    page = Page(found[offset : offset + limit], len(found), limit, offset)
    return page_of(page, [_out(t, now) for t in page.items])


@router.post("/v1/tenants/{tenant_id}/throttles", status_code=201)
def add_throttle(tenant_id: TenantId, body: ThrottleIn, by: Caller, p: PlatformDep) -> ThrottleOut:
    """Throttle the tenant or one of its users from the next call attempt on (operators)."""
    authorize(by, Permission.SUSPEND, tenant_id)  # a refusal comes before any validation
    gov = p.governance
    throttle = gov.throttle(
        by,
        tenant_id,
        rates=body.rates.to_core("rates."),
        reason=body.reason,
        clause_ids=body.clause_ids,
        user_id=body.user_id,
        expires_at=body.expires_at,
    )
    return _out(throttle, gov.clock())


@router.get("/v1/tenants/{tenant_id}/throttles/{throttle_id}")
def get_throttle(
    tenant_id: TenantId, throttle_id: ThrottleId, by: Caller, p: PlatformDep
) -> ThrottleOut:
    """One throttle of the tenant."""
    gov = p.governance
    return _out(gov.get_throttle(by, tenant_id, throttle_id), gov.clock())


@router.post("/v1/tenants/{tenant_id}/throttles/{throttle_id}/lift")
def lift_throttle(
    tenant_id: TenantId, throttle_id: ThrottleId, body: ThrottleLiftIn, by: Caller, p: PlatformDep
) -> ThrottleOut:
    """Lift a throttle at once: the plan's rates alone apply again (operators; audited).
    Answers the throttle as it was."""
    gov = p.governance
    return _out(gov.lift_throttle(by, tenant_id, throttle_id, reason=body.reason), gov.clock())
