"""/v1/audit: the tamper-evident audit log (GOV-1)."""

from __future__ import annotations

from fastapi import APIRouter

from callwarden.adapters.api.auth import Caller, PlatformDep
from callwarden.adapters.api.errors import ERROR_RESPONSES
from callwarden.adapters.api.schemas import (
    AuditOut,
    FilterText,
    Limit,
    Offset,
    PageOut,
    TenantId,
    VerifyOut,
    page_of,
)
from callwarden.core.errors import Forbidden
from callwarden.services.ports import AuditQuery, PageRequest

router = APIRouter(tags=["audit"], responses=ERROR_RESPONSES)


def _list(
    p: PlatformDep, by: Caller, query: AuditQuery, limit: int, offset: int
) -> PageOut[AuditOut]:
    page = p.audit.list(by, query, PageRequest(limit, offset))
    return page_of(page, [AuditOut.of(e) for e in page.items])


@router.get("/v1/audit")
def list_audit(
    by: Caller,
    p: PlatformDep,
    action: FilterText = None,
    subject_type: FilterText = None,
    subject_id: FilterText = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[AuditOut]:
    """The whole audit log, newest first (operators)."""
    if not by.is_operator:
        raise Forbidden("only operators read the whole audit log; use the tenant's audit")
    query = AuditQuery(action=action, subject_type=subject_type, subject_id=subject_id)
    return _list(p, by, query, limit, offset)


@router.get("/v1/tenants/{tenant_id}/audit")
def list_tenant_audit(
    tenant_id: TenantId,
    by: Caller,
    p: PlatformDep,
    action: FilterText = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[AuditOut]:
    """A tenant's audit entries, newest first."""
    return _list(p, by, AuditQuery(tenant_id=tenant_id, action=action), limit, offset)


@router.get("/v1/audit/verify")
def verify_audit(by: Caller, p: PlatformDep) -> VerifyOut:
    """Walk the hash chain and report the first broken link (operators)."""
    if not by.is_operator:
        raise Forbidden("only operators verify the audit log")
    count, broken = p.audit.verify()
    return VerifyOut(
        entries=count,
        intact=broken is None,
        first_broken_seq=broken.seq if broken else None,
        problem=broken.problem if broken else None,
    )
