"""Automatic actions of surveillance cases: taking them, undoing them, letting them expire (FRD-3).

Every action goes through the audited services a person would use, acting as the system
principal, so admission sees it on the next call attempt (in this process through the change
listeners, in others through the change feed) and the audit log records it like any other
change (GOV-1, GOV-2):

- ``suspend_tenant``, ``suspend_user``, ``suspend_number``: governance suspends the target with
  a reason naming the detector, the case and the action, citing the case's clauses, FRD-3 and
  GOV-2.
- ``block_prefix``: the prefix joins the operator's high-risk list (FRD-1), labelled with the
  case, so admission's ``high_risk_prefix`` rule refuses calls to it.
- ``throttle``: governance throttles the target (the finding's user, else its tenant): its
  attempt rates are tightened as the action policy's ``throttle`` says (LIM-5), citing the
  case's clauses, LIM-5 and FRD-3, until the action is reverted or expires (the throttle
  carries the action's expiry, so admission stops applying it on time even before the expiry
  job lifts it).

Undoing an action (a person's revert, or its expiry) reinstates the target only while the
suspension in force is still the one the action made (its reason names the action): a
suspension a person made since is left alone. A blocked prefix is removed only while its entry
still carries the case's label; a throttle is lifted only while it is still there (a person may
have lifted it already).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from callwarden.core.audit import JSONValue
from callwarden.core.cases import ActionPolicy, ActionStatus, Case, CaseAction
from callwarden.core.detectors.base import Severity, SuggestedAction
from callwarden.core.errors import CallwardenError, Conflict
from callwarden.core.model import NumberStatus, Principal, Suspension, TenantStatus, UserStatus
from callwarden.core.prefixes import PrefixEntry, PrefixList
from callwarden.services.admission_config import AdmissionConfigService
from callwarden.services.cases import CaseStore, audit_case
from callwarden.services.governance import SYSTEM, GovernanceService
from callwarden.services.ids import new_id

__all__ = ["ActionRunner", "ActionTarget"]

#: Expired actions undone per run of :meth:`ActionRunner.expire_due`.
_EXPIRY_BATCH: Final[int] = 100


@dataclass(frozen=True, slots=True)
class ActionTarget:
    """What an action is to be taken against, resolved from the finding and its record.

    ``target`` is a tenant id, user id, E.164 number or prefix digits depending on the kind;
    None when nothing identifies one (the action is then recorded as skipped, with ``why``).
    """

    kind: SuggestedAction
    target: str | None
    why: str = ""


class ActionRunner:
    """Takes, reverts and expires the automatic actions of cases."""

    def __init__(
        self,
        governance: GovernanceService,
        admission_config: AdmissionConfigService,
        cases: CaseStore,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.governance = governance
        self.admission_config = admission_config
        self.cases = cases
        self.clock = clock or governance.clock

    # -- taking an action ----------------------------------------------------------------------
    def apply(
        self, case: Case, wanted: ActionTarget, severity: Severity, policy: ActionPolicy
    ) -> CaseAction:
        """Take one action because of ``case``, record it on the case and audit it.

        An action that cannot be taken (nothing identifies its target, the target is already
        suspended or blocked, governance refuses it) is recorded as skipped with the reason.
        """
        now = self.clock()
        action_id = new_id("ca")
        expire_s = policy.expire_after_s.get(wanted.kind)
        action = CaseAction(
            id=action_id,
            case_id=case.id,
            kind=wanted.kind,
            target=wanted.target or "",
            status=ActionStatus.APPLIED,
            created_at=now,
            severity=severity,
            expires_at=now + timedelta(seconds=expire_s) if expire_s is not None else None,
        )
        try:
            action = self._take(case, action, wanted, policy)
        except CallwardenError as exc:
            action = self._skipped(action, f"not applied: {exc.message}")
        with self.cases.transaction() as tx:
            tx.add_action(action)
            details: dict[str, JSONValue] = {
                "action_id": action.id,
                "kind": action.kind.value,
                "target": action.target,
                "status": action.status.value,
                "severity": severity.value,
                "expires_at": action.expires_at.isoformat() if action.expires_at else None,
            }
            verb = "applied" if action.in_force else "skipped"
            audit_case(
                tx, SYSTEM, case, f"case.action_{verb}", now, reason=action.note, details=details
            )
        return action

    @staticmethod
    def _skipped(action: CaseAction, note: str) -> CaseAction:
        return replace(action, status=ActionStatus.SKIPPED, expires_at=None, note=note)

    def _reason(self, case: Case, action: CaseAction) -> str:
        return (
            f"automatic action {action.id} ({action.kind.value}) of case {case.id}: "
            f"{case.detector} finding, {case.evidence.summary}"
        )[:2000]

    def _clauses(self, case: Case) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*case.clause_ids, "FRD-3", "GOV-2")))

    def _take(
        self, case: Case, action: CaseAction, wanted: ActionTarget, policy: ActionPolicy
    ) -> CaseAction:
        gov = self.governance
        if wanted.target is None:
            return self._skipped(action, f"not applied: {wanted.why}")
        tenant_id = case.tenant_id
        if wanted.kind is SuggestedAction.BLOCK_PREFIX:
            return self._block(case, action, wanted.target)
        if tenant_id is None:
            return self._skipped(action, "not applied: the finding names no tenant")
        reason = self._reason(case, action)
        if wanted.kind is SuggestedAction.THROTTLE:
            return self._throttle(case, action, tenant_id, wanted.target, reason, policy)
        if wanted.kind is SuggestedAction.SUSPEND_TENANT:
            tenant = gov.get_tenant(SYSTEM, tenant_id)
            if tenant.status is not TenantStatus.ACTIVE:
                return self._skipped(action, f"not applied: tenant is {tenant.status.value}")
            gov.suspend_tenant(SYSTEM, tenant_id, reason=reason, clause_ids=self._clauses(case))
            return action
        if wanted.kind is SuggestedAction.SUSPEND_USER:
            user = gov.get_user(SYSTEM, tenant_id, wanted.target)
            if user.status is not UserStatus.ACTIVE:
                return self._skipped(action, f"not applied: user is {user.status.value}")
            gov.suspend_user(
                SYSTEM, tenant_id, wanted.target, reason=reason, clause_ids=self._clauses(case)
            )
            return action
        # suspend_number: the target is the number's E.164 form; the action keeps its id.
        with gov.store.transaction() as tx:
            number = tx.get_number_by_e164(wanted.target)
        if number is None or number.tenant_id != tenant_id:
            return self._skipped(
                action, f"not applied: {wanted.target} is not a number of tenant {tenant_id}"
            )
        if number.status is not NumberStatus.ACTIVE:
            return self._skipped(action, f"not applied: number is {number.status.value}")
        gov.set_number_status(
            SYSTEM,
            tenant_id,
            number.id,
            status=NumberStatus.SUSPENDED,
            reason=reason,
            clause_ids=self._clauses(case),
        )
        return replace(action, target=number.id, reference=number.e164)

    def _throttle(
        self,
        case: Case,
        action: CaseAction,
        tenant_id: str,
        target: str,
        reason: str,
        policy: ActionPolicy,
    ) -> CaseAction:
        """Throttle the tenant (target is its id) or one of its users, unless a throttle of
        the same party is already in force."""
        gov = self.governance
        user_id = None if target == tenant_id else target
        now = self.clock()
        for held in gov.list_throttles(SYSTEM, tenant_id):
            if held.user_id == user_id and held.in_force(now):
                return self._skipped(action, f"not applied: already throttled by {held.id}")
        throttle = gov.throttle(
            SYSTEM,
            tenant_id,
            rates=policy.throttle,
            reason=reason,
            clause_ids=tuple(dict.fromkeys((*case.clause_ids, "LIM-5", "FRD-3"))),
            user_id=user_id,
            expires_at=action.expires_at,
        )
        return replace(action, reference=throttle.id)

    def _block(self, case: Case, action: CaseAction, prefix: str) -> CaseAction:
        config = self.admission_config
        entries = config.high_risk_prefixes(SYSTEM)
        covering = PrefixList(entries).longest_match(prefix)
        if covering is not None:
            return self._skipped(
                action, f"not applied: +{prefix} is already listed under +{covering.prefix}"
            )
        label = f"case {case.id} ({case.detector})"
        config.replace_high_risk_prefixes(SYSTEM, [*entries, PrefixEntry(prefix, label)])
        return replace(action, reference=label)

    # -- undoing an action ---------------------------------------------------------------------
    def revert(self, by: Principal, case: Case, action: CaseAction, note: str) -> CaseAction:
        """Undo an action in force at a person's request; audited on the case."""
        return self._undo(by, case, action, note, ActionStatus.REVERTED)

    def expire_due(self, now: datetime | None = None) -> list[CaseAction]:
        """Undo the actions in force whose expiry has passed; returns them as expired."""
        at = now or self.clock()
        with self.cases.transaction() as tx:
            due = [(a, tx.get_case(a.case_id)) for a in tx.due_actions(at, _EXPIRY_BATCH)]
        done: list[CaseAction] = []
        for action, case in due:
            if case is not None:
                note = f"expired at {action.expires_at.isoformat() if action.expires_at else ''}"
                done.append(self._undo(SYSTEM, case, action, note, ActionStatus.EXPIRED))
        return done

    def _ours(self, suspension: Suspension | None, action: CaseAction) -> bool:
        return suspension is not None and action.id in suspension.reason

    def _undo(
        self, by: Principal, case: Case, action: CaseAction, note: str, status: ActionStatus
    ) -> CaseAction:
        if not action.in_force:
            raise Conflict(
                f"action {action.id} is {action.status.value}, not in force", field="action_id"
            )
        outcome = self._lift(by, case, action, note)
        now = self.clock()
        ended = replace(
            action,
            status=status,
            ended_at=now,
            ended_by=by.user_id,
            note=f"{note}; {outcome}" if outcome else note,
        )
        with self.cases.transaction() as tx:
            current = tx.get_case(case.id)
            held = (
                next((a for a in current.actions if a.id == action.id), None) if current else None
            )
            if held is None or not held.in_force:
                raise Conflict(f"action {action.id} is no longer in force", field="action_id")
            tx.save_action(ended)
            audit_case(
                tx,
                by,
                case,
                f"case.action_{status.value}",
                now,
                reason=note,
                details={
                    "action_id": action.id,
                    "kind": action.kind.value,
                    "target": action.target,
                    "outcome": outcome or "undone",
                },
            )
        return ended

    def _lift(self, by: Principal, case: Case, action: CaseAction, note: str) -> str:
        """Undo the action's effect; returns what was found instead when there was nothing
        left to undo (empty when it was undone)."""
        gov = self.governance
        reason = f"revert of automatic action {action.id} of case {case.id}: {note}"[:2000]
        tenant_id = case.tenant_id or ""
        if action.kind is SuggestedAction.BLOCK_PREFIX:
            entries = self.admission_config.high_risk_prefixes(SYSTEM)
            kept = [e for e in entries if (e.prefix, e.label) != (action.target, action.reference)]
            if len(kept) == len(entries):
                return f"+{action.target} was no longer listed by this case"
            self.admission_config.replace_high_risk_prefixes(SYSTEM, kept)
            return ""
        if action.kind is SuggestedAction.THROTTLE:
            with gov.store.transaction() as tx:
                throttle = tx.get_throttle(action.reference or "")
            if throttle is None:
                return "the throttle was lifted already; left as it is"
            gov.lift_throttle(by, throttle.tenant_id, throttle.id, reason=reason)
            return ""
        if action.kind is SuggestedAction.SUSPEND_TENANT:
            tenant = gov.get_tenant(SYSTEM, action.target)
            if tenant.status is not TenantStatus.SUSPENDED or not self._ours(
                tenant.suspension, action
            ):
                return "the tenant's suspension is no longer this action's; left as it is"
            gov.reinstate_tenant(by, action.target, reason=reason)
            return ""
        if action.kind is SuggestedAction.SUSPEND_USER:
            user = gov.get_user(SYSTEM, tenant_id, action.target)
            if user.status is not UserStatus.SUSPENDED or not self._ours(user.suspension, action):
                return "the user's suspension is no longer this action's; left as it is"
            gov.reinstate_user(by, tenant_id, action.target, reason=reason)
            return ""
        number = gov.get_number(SYSTEM, tenant_id, action.target)
        if number.status is not NumberStatus.SUSPENDED or not self._ours(number.suspension, action):
            return "the number's suspension is no longer this action's; left as it is"
        gov.set_number_status(
            by, tenant_id, action.target, status=NumberStatus.ACTIVE, reason=reason
        )
        return ""
