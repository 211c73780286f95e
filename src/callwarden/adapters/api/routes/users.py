"""/v1/tenants/{tenant_id}/users: users, seats taken by activation, and their API keys."""

from __future__ import annotations

from fastapi import APIRouter

from callwarden.adapters.api.auth import Caller, PlatformDep
from callwarden.adapters.api.errors import ERROR_RESPONSES
from callwarden.adapters.api.schemas import (
    ActivateIn,
    FilterText,
    IssuedKeyOut,
    KeyId,
    KeyIn,
    KeyOut,
    Limit,
    Offset,
    PageOut,
    ReinstateIn,
    SuspendIn,
    TenantId,
    UserId,
    UserIn,
    UserOut,
    UserPatch,
    page_of,
)
from callwarden.core.model import UserRole, UserStatus
from callwarden.services.ports import PageRequest, UserQuery

router = APIRouter(
    prefix="/v1/tenants/{tenant_id}/users", tags=["users"], responses=ERROR_RESPONSES
)


@router.post("", status_code=201)
def create_user(tenant_id: TenantId, body: UserIn, by: Caller, p: PlatformDep) -> UserOut:
    """Invite a user; it takes a seat only when activated."""
    user = p.governance.create_user(
        by, tenant_id, email=body.email, display_name=body.display_name, role=body.role
    )
    return UserOut.of(user)


@router.get("")
def list_users(
    tenant_id: TenantId,
    by: Caller,
    p: PlatformDep,
    role: UserRole | None = None,
    status: UserStatus | None = None,
    email: FilterText = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[UserOut]:
    """A tenant's users, filtered by role, status or a fragment of the e-mail."""
    query = UserQuery(
        tenant_id=tenant_id,
        role=role.value if role else None,
        status=status.value if status else None,
        email_contains=email,
    )
    page = p.governance.list_users(by, query, PageRequest(limit, offset))
    return page_of(page, [UserOut.of(u) for u in page.items])


@router.get("/{user_id}")
def get_user(tenant_id: TenantId, user_id: UserId, by: Caller, p: PlatformDep) -> UserOut:
    """One user."""
    return UserOut.of(p.governance.get_user(by, tenant_id, user_id))


@router.patch("/{user_id}")
def update_user(
    tenant_id: TenantId, user_id: UserId, body: UserPatch, by: Caller, p: PlatformDep
) -> UserOut:
    """Change a user's e-mail, name or role."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return UserOut.of(p.governance.update_user(by, tenant_id, user_id, **changes))


@router.post("/{user_id}/activate")
def activate_user(
    tenant_id: TenantId, user_id: UserId, body: ActivateIn, by: Caller, p: PlatformDep
) -> UserOut:
    """Give the user a seat; refused with ACC-3 past the seat limit unless an operator overrides."""
    user = p.governance.activate_user(by, tenant_id, user_id, override_reason=body.override_reason)
    return UserOut.of(user)


@router.post("/{user_id}/deactivate")
def deactivate_user(tenant_id: TenantId, user_id: UserId, by: Caller, p: PlatformDep) -> UserOut:
    """Free the user's seat."""
    return UserOut.of(p.governance.deactivate_user(by, tenant_id, user_id))


@router.post("/{user_id}/suspend")
def suspend_user(
    tenant_id: TenantId, user_id: UserId, body: SuspendIn, by: Caller, p: PlatformDep
) -> UserOut:
    """Suspend the user at once (GOV-2)."""
    user = p.governance.suspend_user(
        by, tenant_id, user_id, reason=body.reason, clause_ids=body.clause_ids
    )
    return UserOut.of(user)


@router.post("/{user_id}/reinstate")
def reinstate_user(
    tenant_id: TenantId, user_id: UserId, body: ReinstateIn, by: Caller, p: PlatformDep
) -> UserOut:
    """Lift the user's suspension."""
    return UserOut.of(p.governance.reinstate_user(by, tenant_id, user_id, reason=body.reason))


@router.post("/{user_id}/api-keys", status_code=201)
def issue_key(
    tenant_id: TenantId, user_id: UserId, body: KeyIn, by: Caller, p: PlatformDep
) -> IssuedKeyOut:
    """Issue an API key for the user; the secret is in this answer only."""
    issued = p.access.issue(by, tenant_id, user_id, body.name)
    return IssuedKeyOut(**KeyOut.of(issued.key).model_dump(), secret=issued.secret)


@router.get("/{user_id}/api-keys")
def list_keys(
    tenant_id: TenantId,
    user_id: UserId,
    by: Caller,
    p: PlatformDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[KeyOut]:
    """The user's keys, without secrets."""
    page = p.access.list(by, tenant_id, user_id, PageRequest(limit, offset))
    return page_of(page, [KeyOut.of(k) for k in page.items])


@router.delete("/{user_id}/api-keys/{key_id}")
def revoke_key(
    tenant_id: TenantId, user_id: UserId, key_id: KeyId, by: Caller, p: PlatformDep
) -> KeyOut:
    """Revoke a key at once."""
    return KeyOut.of(p.access.revoke(by, tenant_id, user_id, key_id))
