"""The scopes a policy is set at (a plan, a tenant and, for some policies, the defaults),
checked against the store."""

from __future__ import annotations

from collections.abc import Sequence

from callwarden.core.errors import InvalidInput, NotFound
from callwarden.services.ports import Transaction

__all__ = ["check_scope"]


def check_scope(tx: Transaction, scope: str, scope_id: str, scopes: Sequence[str]) -> None:
    """Refuse a scope that is not one of `scopes`, or a plan or tenant that does not exist;
    "default" (when among `scopes`) takes no id."""
    if scope == "plan":
        if tx.get_plan(scope_id) is None:
            raise NotFound(f"plan {scope_id} not found", field="plan_id")
    elif scope == "tenant":
        if tx.get_tenant(scope_id) is None:
            raise NotFound(f"tenant {scope_id} not found", field="tenant_id")
    elif scope != "default" or scope_id or "default" not in scopes:
        raise InvalidInput(f"scope must be one of {', '.join(scopes)}", field="scope")
