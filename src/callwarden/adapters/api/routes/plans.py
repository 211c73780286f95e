"""/v1/plans: the provider's plan catalogue (operators)."""

from __future__ import annotations

from fastapi import APIRouter

from callwarden.adapters.api.auth import Caller, PlatformDep
from callwarden.adapters.api.errors import ERROR_RESPONSES
from callwarden.adapters.api.schemas import (
    Limit,
    Offset,
    PageOut,
    PlanId,
    PlanIn,
    PlanOut,
    PlanPatch,
    page_of,
)
from callwarden.services.ports import PageRequest

router = APIRouter(prefix="/v1/plans", tags=["plans"], responses=ERROR_RESPONSES)


@router.post("", status_code=201)
def create_plan(body: PlanIn, by: Caller, p: PlatformDep) -> PlanOut:
    """Add a plan."""
    plan = p.governance.create_plan(
        by,
        name=body.name,
        billing=body.billing,
        channels=body.channels,
        currency=body.currency,
        limits=body.limits.to_core(),
    )
    return PlanOut.of(plan)


@router.get("")
def list_plans(
    by: Caller, p: PlatformDep, limit: Limit = 50, offset: Offset = 0
) -> PageOut[PlanOut]:
    """The plan catalogue."""
    page = p.governance.list_plans(by, PageRequest(limit, offset))
    return page_of(page, [PlanOut.of(x) for x in page.items])


@router.get("/{plan_id}")
def get_plan(plan_id: PlanId, by: Caller, p: PlatformDep) -> PlanOut:
    """One plan."""
    return PlanOut.of(p.governance.get_plan(by, plan_id))


@router.patch("/{plan_id}")
def update_plan(plan_id: PlanId, body: PlanPatch, by: Caller, p: PlatformDep) -> PlanOut:
    """Change a plan; tenants on it see the change on their next call attempt."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if body.limits is not None:
        changes["limits"] = body.limits.to_core()
    return PlanOut.of(p.governance.update_plan(by, plan_id, **changes))
