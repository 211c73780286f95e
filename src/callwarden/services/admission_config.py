"""Admission configuration: rule policies per plan or tenant, and the high-risk prefix list.

Changes are operator-only, audited in the same transaction, and reach admission on the next
call attempt through the change listeners.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from callwarden.core.admission.policy import RULE_IDS, RULES_BY_ID, RulePolicy
from callwarden.core.audit import JSONValue
from callwarden.core.errors import InvalidInput, NotFound
from callwarden.core.model import Principal
from callwarden.core.permissions import Permission
from callwarden.core.prefixes import PrefixEntry, PrefixList
from callwarden.services.governance import GovernanceService, authorize
from callwarden.services.ports import PageRequest, TenantQuery, Transaction
from callwarden.services.scopes import check_scope

SCOPES = ("plan", "tenant")
_PREFIX = re.compile(r"[0-9]{1,15}")
_USER_ID = re.compile(r"us_[0-9a-f]{16}")


class AdmissionConfigService:
    """Reads and changes how admission rules run."""

    def __init__(self, governance: GovernanceService) -> None:
        self.governance = governance

    @staticmethod
    def _check_rule(rule: str) -> None:
        if rule not in RULE_IDS:
            raise InvalidInput(
                f"rule {rule!r} is not an admission rule; known: {', '.join(sorted(RULE_IDS))}",
                field="rule",
            )

    def _notify(self, tx: Transaction, scope: str, scope_id: str) -> list[str]:
        if scope == "tenant":
            return [scope_id]
        tenants = tx.list_tenants(TenantQuery(plan_id=scope_id), PageRequest(limit=10**9))
        return [t.id for t in tenants.items]

    def policies(self, by: Principal, scope: str, scope_id: str) -> dict[str, RulePolicy]:
        """The policies set at this scope (rules not listed run in enforce mode)."""
        authorize(by, Permission.TENANTS_READ, scope_id if scope == "tenant" else None)
        with self.governance.store.transaction() as tx:
            check_scope(tx, scope, scope_id, SCOPES)
            return tx.get_rule_policies(scope, scope_id)

    def set_policy(
        self, by: Principal, scope: str, scope_id: str, rule: str, policy: RulePolicy
    ) -> RulePolicy:
        """Set how `rule` runs for a plan or tenant: mode, failure mode and allowlist."""
        authorize(by, Permission.PLANS_WRITE)
        self._check_rule(rule)
        for p in policy.allow_destinations:
            if not _PREFIX.fullmatch(p):
                raise InvalidInput(
                    f"allow_destinations: {p!r} is not a prefix of 1 to 15 digits",
                    field="allow_destinations",
                )
        for u in policy.allow_users:
            if not _USER_ID.fullmatch(u):
                raise InvalidInput(f"allow_users: {u!r} is not a user id", field="allow_users")
        gov = self.governance
        with gov.store.transaction() as tx:
            check_scope(tx, scope, scope_id, SCOPES)
            tx.set_rule_policy(scope, scope_id, rule, policy, gov.clock())
            details: dict[str, JSONValue] = {
                "scope": scope,
                "rule": rule,
                "mode": policy.mode.value,
                "failure": policy.failure.value,
                "allow_destinations": [str(p) for p in policy.allow_destinations],
                "allow_users": [str(u) for u in sorted(policy.allow_users)],
            }
            gov._audit(
                tx,
                by,
                "rule_policy.set",
                scope,
                scope_id,
                scope_id if scope == "tenant" else None,
                clause_ids=(*RULES_BY_ID[rule].clause_ids, "GOV-7"),
                details=details,
            )
            affected = self._notify(tx, scope, scope_id)
        for tenant_id in affected:
            gov._changed(tenant_id)
        return policy

    def delete_policy(self, by: Principal, scope: str, scope_id: str, rule: str) -> None:
        """Return `rule` to its default (enforce, no allowlist) at this scope."""
        authorize(by, Permission.PLANS_WRITE)
        self._check_rule(rule)
        gov = self.governance
        with gov.store.transaction() as tx:
            check_scope(tx, scope, scope_id, SCOPES)
            if not tx.delete_rule_policy(scope, scope_id, rule):
                raise NotFound(f"no policy for rule {rule} on {scope} {scope_id}", field="rule")
            gov._audit(
                tx,
                by,
                "rule_policy.deleted",
                scope,
                scope_id,
                scope_id if scope == "tenant" else None,
                clause_ids=RULES_BY_ID[rule].clause_ids,
                details={"rule": rule},
            )
            affected = self._notify(tx, scope, scope_id)
        for tenant_id in affected:
            gov._changed(tenant_id)

    def high_risk_prefixes(self, by: Principal) -> list[PrefixEntry]:
        """The operator's high-risk destination list (FRD-1)."""
        authorize(by, Permission.PLANS_WRITE)
        with self.governance.store.transaction() as tx:
            return tx.list_high_risk_prefixes()

    def replace_high_risk_prefixes(
        self, by: Principal, entries: Iterable[str | tuple[str, str | None] | PrefixEntry]
    ) -> int:
        """Replace the high-risk list as a whole; a bad line refuses the import and names it."""
        authorize(by, Permission.PLANS_WRITE)
        try:
            parsed = PrefixList(entries)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="prefixes") from exc
        gov = self.governance
        with gov.store.transaction() as tx:
            tx.replace_high_risk_prefixes(list(parsed), gov.clock())
            gov._audit(
                tx,
                by,
                "high_risk_prefixes.replaced",
                "high_risk_prefixes",
                "global",
                None,
                clause_ids=("FRD-1",),
                details={"count": len(parsed)},
            )
        for listener in gov.listeners:
            listener.all_changed()
        return len(parsed)
