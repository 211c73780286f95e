"""Role-based permissions (ACC-1): which role may do what.

Operators act for the provider across every tenant. Every other role acts only inside its own
tenant; that isolation is enforced separately, by comparing the principal's tenant with the
tenant of the resource.
"""

from __future__ import annotations

from enum import StrEnum

from callwarden.core.model import UserRole


class Permission(StrEnum):
    """One thing a caller can be allowed to do."""

    PLANS_READ = "plans:read"
    PLANS_WRITE = "plans:write"
    TENANTS_READ = "tenants:read"
    TENANTS_WRITE = "tenants:write"
    SUSPEND = "suspend"
    ORDERS_READ = "orders:read"
    ORDERS_WRITE = "orders:write"
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    NUMBERS_READ = "numbers:read"
    NUMBERS_WRITE = "numbers:write"
    TRUNKS_READ = "trunks:read"
    TRUNKS_WRITE = "trunks:write"
    KEYS_WRITE = "keys:write"
    AUDIT_READ = "audit:read"
    OVERRIDE = "override"
    ADMISSION = "admission"
    USAGE_READ = "usage:read"
    USAGE_WRITE = "usage:write"
    RATE_DECKS_READ = "rate_decks:read"
    RATE_DECKS_WRITE = "rate_decks:write"
    NOTIFICATIONS_READ = "notifications:read"
    NOTIFICATIONS_WRITE = "notifications:write"


_P = Permission
GRANTS: dict[UserRole, frozenset[Permission]] = {
    UserRole.OPERATOR: frozenset(Permission),
    UserRole.TENANT_ADMIN: frozenset(
        {
            _P.TENANTS_READ,
            _P.ORDERS_READ,
            _P.USERS_READ,
            _P.USERS_WRITE,
            _P.NUMBERS_READ,
            _P.TRUNKS_READ,
            _P.KEYS_WRITE,
            _P.AUDIT_READ,
            _P.USAGE_READ,
            _P.USAGE_WRITE,
            _P.NOTIFICATIONS_READ,
            _P.NOTIFICATIONS_WRITE,
        }
    ),
    UserRole.SUPERVISOR: frozenset({_P.TENANTS_READ, _P.USERS_READ, _P.NUMBERS_READ}),
    UserRole.AGENT: frozenset({_P.TENANTS_READ}),
    UserRole.AUDITOR: frozenset(
        {
            _P.TENANTS_READ,
            _P.ORDERS_READ,
            _P.USERS_READ,
            _P.NUMBERS_READ,
            _P.TRUNKS_READ,
            _P.AUDIT_READ,
            _P.USAGE_READ,
        }
    ),
}


def allows(role: UserRole, permission: Permission) -> bool:
    """True when `role` carries `permission`."""
    return permission in GRANTS[role]
