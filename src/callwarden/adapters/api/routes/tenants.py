"""/v1/tenants: tenants, their orders, seats and suspensions."""

from __future__ import annotations

from fastapi import APIRouter

from callwarden.adapters.api.auth import Caller, PlatformDep
from callwarden.adapters.api.errors import ERROR_RESPONSES
from callwarden.adapters.api.schemas import (
    ChargeLimitsIn,
    Country,
    FilterText,
    Limit,
    Offset,
    OrderId,
    OrderIn,
    OrderOut,
    OverrideOut,
    PageOut,
    ReinstateIn,
    SeatsOut,
    SimBoxConsentIn,
    SpendOut,
    SuspendIn,
    TenantId,
    TenantIn,
    TenantOut,
    TenantPatch,
    WithdrawIn,
    page_of,
)
from callwarden.core.model import TenantStatus
from callwarden.services.ports import PageRequest, TenantQuery

router = APIRouter(prefix="/v1/tenants", tags=["tenants"], responses=ERROR_RESPONSES)


@router.post("", status_code=201)
def create_tenant(body: TenantIn, by: Caller, p: PlatformDep) -> TenantOut:
    """Onboard a tenant on a plan."""
    tenant = p.governance.create_tenant(
        by, name=body.name, country=body.country, timezone=body.timezone, plan_id=body.plan_id
    )
    return TenantOut.of(tenant)


@router.get("")
def list_tenants(
    by: Caller,
    p: PlatformDep,
    status: TenantStatus | None = None,
    country: Country | None = None,
    plan_id: FilterText = None,
    name: FilterText = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[TenantOut]:
    """Tenants, filtered by status, country, plan or a fragment of the name."""
    query = TenantQuery(
        status=status.value if status else None,
        country=country.upper() if country else None,
        plan_id=plan_id,
        name_contains=name,
    )
    page = p.governance.list_tenants(by, query, PageRequest(limit, offset))
    return page_of(page, [TenantOut.of(t) for t in page.items])


@router.get("/{tenant_id}")
def get_tenant(tenant_id: TenantId, by: Caller, p: PlatformDep) -> TenantOut:
    """One tenant."""
    return TenantOut.of(p.governance.get_tenant(by, tenant_id))


@router.patch("/{tenant_id}")
def update_tenant(tenant_id: TenantId, body: TenantPatch, by: Caller, p: PlatformDep) -> TenantOut:
    """Rename a tenant or move it to another plan, country or time zone."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return TenantOut.of(p.governance.update_tenant(by, tenant_id, **changes))


@router.post("/{tenant_id}/suspend")
def suspend_tenant(tenant_id: TenantId, body: SuspendIn, by: Caller, p: PlatformDep) -> TenantOut:
    """Suspend a tenant at once (GOV-2); emergency calls still go through."""
    tenant = p.governance.suspend_tenant(
        by, tenant_id, reason=body.reason, clause_ids=body.clause_ids
    )
    return TenantOut.of(tenant)


@router.post("/{tenant_id}/reinstate")
def reinstate_tenant(
    tenant_id: TenantId, body: ReinstateIn, by: Caller, p: PlatformDep
) -> TenantOut:
    """Lift a suspension."""
    return TenantOut.of(p.governance.reinstate_tenant(by, tenant_id, reason=body.reason))


@router.post("/{tenant_id}/terminate")
def terminate_tenant(tenant_id: TenantId, body: SuspendIn, by: Caller, p: PlatformDep) -> TenantOut:
    """End a tenant's service."""
    tenant = p.governance.terminate_tenant(
        by, tenant_id, reason=body.reason, clause_ids=body.clause_ids
    )
    return TenantOut.of(tenant)


@router.put("/{tenant_id}/charge-limits")
def set_charge_limits(
    tenant_id: TenantId, body: ChargeLimitsIn, by: Caller, p: PlatformDep
) -> TenantOut:
    """Give the tenant its own monthly charge limits (LIM-1, LIM-3); null keeps the plan's."""
    tenant = p.governance.set_charge_limits(
        by, tenant_id, hard_minor=body.hard_minor, soft_minor=body.soft_minor
    )
    return TenantOut.of(tenant)


@router.put("/{tenant_id}/sim-box-consent")
def record_sim_box_consent(
    tenant_id: TenantId, body: SimBoxConsentIn, by: Caller, p: PlatformDep
) -> TenantOut:
    """Put the tenant's written consent to run SIM boxes on record (FRD-6): the simbox detector
    leaves it alone from its next record."""
    tenant = p.governance.record_sim_box_consent(by, tenant_id, reference=body.reference)
    return TenantOut.of(tenant)


@router.post("/{tenant_id}/sim-box-consent/withdraw")
def withdraw_sim_box_consent(
    tenant_id: TenantId, body: WithdrawIn, by: Caller, p: PlatformDep
) -> TenantOut:
    """Take the tenant's SIM-box consent off record, with the reason: the simbox detector
    watches it again from its next record."""
    tenant = p.governance.withdraw_sim_box_consent(by, tenant_id, reason=body.reason)
    return TenantOut.of(tenant)


@router.get("/{tenant_id}/spend")
async def get_spend(tenant_id: TenantId, by: Caller, p: PlatformDep) -> SpendOut:
    """Month-to-date spend: settled, held for calls in progress, and the limits (LIM-1)."""
    s = await p.spend.statement(by, tenant_id)
    return SpendOut(
        tenant_id=s.tenant_id,
        month=s.month,
        currency=s.currency,
        settled_minor=s.settled_minor,
        reserved_minor=s.reserved_minor,
        hard_limit_minor=s.limits.hard_minor,
        soft_limit_minor=s.limits.soft_minor,
        remaining_minor=s.remaining_minor,
    )


@router.get("/{tenant_id}/seats")
def get_seats(tenant_id: TenantId, by: Caller, p: PlatformDep) -> SeatsOut:
    """Seats bought on valid orders and seats in use (ACC-3)."""
    return SeatsOut.of(p.governance.seat_count(by, tenant_id))


@router.post("/{tenant_id}/orders", status_code=201)
def add_order(tenant_id: TenantId, body: OrderIn, by: Caller, p: PlatformDep) -> OrderOut:
    """Record a sales order granting seats."""
    order = p.governance.add_order(
        by,
        tenant_id,
        seat_limit=body.seat_limit,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
        reference=body.reference,
    )
    return OrderOut.of(order)


@router.get("/{tenant_id}/orders")
def list_orders(
    tenant_id: TenantId, by: Caller, p: PlatformDep, limit: Limit = 50, offset: Offset = 0
) -> PageOut[OrderOut]:
    """A tenant's orders."""
    page = p.governance.list_orders(by, tenant_id, PageRequest(limit, offset))
    return page_of(page, [OrderOut.of(o) for o in page.items])


@router.get("/{tenant_id}/orders/{order_id}")
def get_order(tenant_id: TenantId, order_id: OrderId, by: Caller, p: PlatformDep) -> OrderOut:
    """One order."""
    return OrderOut.of(p.governance.get_order(by, tenant_id, order_id))


@router.get("/{tenant_id}/overrides")
def list_overrides(
    tenant_id: TenantId, by: Caller, p: PlatformDep, limit: Limit = 50, offset: Offset = 0
) -> PageOut[OverrideOut]:
    """Operator overrides recorded for the tenant (GOV-7)."""
    page = p.governance.list_overrides(by, tenant_id, PageRequest(limit, offset))
    return page_of(page, [OverrideOut.of(o) for o in page.items])
