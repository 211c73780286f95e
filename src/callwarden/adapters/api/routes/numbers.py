"""/v1/tenants/{tenant_id}/numbers and /trunks: caller IDs and the addresses of SIP traffic."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from callwarden.adapters.api.auth import Caller, PlatformDep
from callwarden.adapters.api.errors import ERROR_RESPONSES
from callwarden.adapters.api.schemas import (
    Limit,
    NumberId,
    NumberIn,
    NumberOut,
    NumberPatch,
    NumberStatusIn,
    Offset,
    PageOut,
    TenantId,
    TrunkId,
    TrunkIn,
    TrunkOut,
    TrunkPatch,
    page_of,
)
from callwarden.core.model import NumberOwnership, NumberStatus
from callwarden.services.ports import NumberQuery, PageRequest

router = APIRouter(prefix="/v1/tenants/{tenant_id}", responses=ERROR_RESPONSES)

Prefix = Annotated[str | None, Query(pattern=r"^\+?[0-9]{1,15}$", description="E.164 prefix")]


@router.post("/numbers", status_code=201, tags=["numbers"])
def add_number(tenant_id: TenantId, body: NumberIn, by: Caller, p: PlatformDep) -> NumberOut:
    """Assign a number the tenant may present as caller ID."""
    number = p.governance.add_number(by, tenant_id, e164=body.e164, ownership=body.ownership)
    return NumberOut.of(number)


@router.get("/numbers", tags=["numbers"])
def list_numbers(
    tenant_id: TenantId,
    by: Caller,
    p: PlatformDep,
    status: NumberStatus | None = None,
    ownership: NumberOwnership | None = None,
    prefix: Prefix = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[NumberOut]:
    """A tenant's numbers, filtered by status, ownership or prefix."""
    if prefix is not None and not prefix.startswith("+"):
        prefix = "+" + prefix
    query = NumberQuery(
        tenant_id=tenant_id,
        status=status.value if status else None,
        ownership=ownership.value if ownership else None,
        prefix=prefix,
    )
    page = p.governance.list_numbers(by, query, PageRequest(limit, offset))
    return page_of(page, [NumberOut.of(n) for n in page.items])


@router.get("/numbers/{number_id}", tags=["numbers"])
def get_number(tenant_id: TenantId, number_id: NumberId, by: Caller, p: PlatformDep) -> NumberOut:
    """One number."""
    return NumberOut.of(p.governance.get_number(by, tenant_id, number_id))


@router.patch("/numbers/{number_id}", tags=["numbers"])
def update_number(
    tenant_id: TenantId, number_id: NumberId, body: NumberPatch, by: Caller, p: PlatformDep
) -> NumberOut:
    """Change how the tenant holds the number."""
    return NumberOut.of(
        p.governance.update_number(by, tenant_id, number_id, ownership=body.ownership)
    )


def _set_status(
    p: PlatformDep,
    by: Caller,
    tenant_id: str,
    number_id: str,
    status: NumberStatus,
    body: NumberStatusIn,
) -> NumberOut:
    number = p.governance.set_number_status(
        by, tenant_id, number_id, status=status, reason=body.reason, clause_ids=body.clause_ids
    )
    return NumberOut.of(number)


@router.post("/numbers/{number_id}/suspend", tags=["numbers"])
def suspend_number(
    tenant_id: TenantId, number_id: NumberId, body: NumberStatusIn, by: Caller, p: PlatformDep
) -> NumberOut:
    """Suspend the number at once (GOV-2): it may no longer be presented."""
    return _set_status(p, by, tenant_id, number_id, NumberStatus.SUSPENDED, body)


@router.post("/numbers/{number_id}/reinstate", tags=["numbers"])
def reinstate_number(
    tenant_id: TenantId, number_id: NumberId, body: NumberStatusIn, by: Caller, p: PlatformDep
) -> NumberOut:
    """Lift the number's suspension."""
    return _set_status(p, by, tenant_id, number_id, NumberStatus.ACTIVE, body)


@router.post("/numbers/{number_id}/release", tags=["numbers"])
def release_number(
    tenant_id: TenantId, number_id: NumberId, body: NumberStatusIn, by: Caller, p: PlatformDep
) -> NumberOut:
    """Take the number away from the tenant for good."""
    return _set_status(p, by, tenant_id, number_id, NumberStatus.RELEASED, body)


@router.post("/trunks", status_code=201, tags=["trunks"])
def create_trunk(tenant_id: TenantId, body: TrunkIn, by: Caller, p: PlatformDep) -> TrunkOut:
    """Register the source addresses of a tenant's SIP traffic."""
    trunk = p.governance.create_trunk(
        by, tenant_id, name=body.name, source_addresses=body.source_addresses
    )
    return TrunkOut.of(trunk)


@router.get("/trunks", tags=["trunks"])
def list_trunks(
    tenant_id: TenantId, by: Caller, p: PlatformDep, limit: Limit = 50, offset: Offset = 0
) -> PageOut[TrunkOut]:
    """A tenant's trunks."""
    page = p.governance.list_trunks(by, tenant_id, PageRequest(limit, offset))
    return page_of(page, [TrunkOut.of(t) for t in page.items])


@router.get("/trunks/{trunk_id}", tags=["trunks"])
def get_trunk(tenant_id: TenantId, trunk_id: TrunkId, by: Caller, p: PlatformDep) -> TrunkOut:
    """One trunk."""
    return TrunkOut.of(p.governance.get_trunk(by, tenant_id, trunk_id))


@router.patch("/trunks/{trunk_id}", tags=["trunks"])
def update_trunk(
    tenant_id: TenantId, trunk_id: TrunkId, body: TrunkPatch, by: Caller, p: PlatformDep
) -> TrunkOut:
    """Rename a trunk or change its addresses."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return TrunkOut.of(p.governance.update_trunk(by, tenant_id, trunk_id, **changes))


@router.delete("/trunks/{trunk_id}", status_code=204, tags=["trunks"])
def delete_trunk(tenant_id: TenantId, trunk_id: TrunkId, by: Caller, p: PlatformDep) -> None:
    """Remove a trunk."""
    p.governance.delete_trunk(by, tenant_id, trunk_id)
