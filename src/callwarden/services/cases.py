"""Cases as people work them: list, read, acknowledge, resolve, mark false positive, revert an
automatic action (FRD-3).

Operators see and work every case; a tenant's admins and auditors read their own tenant's cases
(the audit permission: cases are part of what a tenant may review of its own record). Every change
is audited in the same transaction as the case (GOV-1). Reverting an action undoes it through
governance (reinstating the tenant, user or number, or removing the blocked prefix), which audits
the undoing as well.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callwarden.core import validation as v
from callwarden.core.audit import AuditEntry, AuditFact, JSONValue
from callwarden.core.cases import Case, CaseAction, CaseStatus, change_status
from callwarden.core.errors import Forbidden, InvalidInput, NotFound
from callwarden.core.model import Principal
from callwarden.core.permissions import Permission
from callwarden.services.governance import authorize
from callwarden.services.ports import Page, PageRequest

__all__ = [
    "CaseQuery",
    "CaseService",
    "CaseStore",
    "CaseTransaction",
    "audit_case",
]


@dataclass(frozen=True, slots=True)
class CaseQuery:
    """Filters for listing cases; None means any."""

    tenant_id: str | None = None
    status: CaseStatus | None = None
    detector: str | None = None


class CaseTransaction(Protocol):
    """Reads and writes of cases inside one database transaction."""

    def add_case(self, case: Case) -> None:
        """Store a new case (its actions are added one by one)."""
        ...

    def save_case(self, case: Case) -> None:
        """Store a case's changed fields (not its actions)."""
        ...

    def get_case(self, case_id: str) -> Case | None:
        """One case with its actions, or None."""
        ...

    def active_case(
        self, tenant_id: str | None, detector: str, key_kind: str, key: str
    ) -> Case | None:
        """The open or acknowledged case of this detector about this key, if any."""
        ...

    def list_cases(self, query: CaseQuery, page: PageRequest) -> Page[Case]:
        """Cases matching ``query``, most recently seen first."""
        ...

    def add_action(self, action: CaseAction) -> None:
        """Record an action taken because of a case."""
        ...

    def save_action(self, action: CaseAction) -> None:
        """Store an action's new status."""
        ...

    def due_actions(self, now: datetime, limit: int) -> list[CaseAction]:
        """Actions in force whose expiry has passed, soonest first."""
        ...

    def append_audit(self, fact: AuditFact, at: datetime) -> AuditEntry:
        """Append to the audit log in this same transaction (GOV-1)."""
        ...


class CaseStore(Protocol):
    """Opens case transactions."""

    def transaction(self) -> AbstractContextManager[CaseTransaction]: ...


def audit_case(
    tx: CaseTransaction,
    by: Principal,
    case: Case,
    action: str,
    at: datetime,
    *,
    reason: str | None = None,
    details: dict[str, JSONValue] | None = None,
) -> None:
    """Append the audit entry of a change to ``case``, citing its clauses and FRD-3."""
    tx.append_audit(
        AuditFact(
            actor=by.user_id,
            action=action,
            subject_type="case",
            subject_id=case.id,
            tenant_id=case.tenant_id,
            reason=reason,
            clause_ids=tuple(dict.fromkeys((*case.clause_ids, "FRD-3"))),
            details=details or {},
        ),
        at,
    )


Reverter = Callable[[Principal, Case, CaseAction, str], CaseAction]
"""Undoes one action in force (see `callwarden.services.case_actions.ActionRunner.revert`)."""


class CaseService:
    """Cases for the API: reading them and moving them through their review."""

    def __init__(self, store: CaseStore, revert: Reverter, clock: Callable[[], datetime]) -> None:
        self.store = store
        self._revert = revert
        self.clock = clock

    @staticmethod
    def _readable(by: Principal, case: Case | None, case_id: str) -> Case:
        """The case if ``by`` may read it; NotFound otherwise (another tenant's case is not
        acknowledged to exist)."""
        if case is None or not (by.is_operator or case.tenant_id == by.tenant_id):
            raise NotFound(f"case {case_id} not found", field="case_id")
        return case

    def list(self, by: Principal, query: CaseQuery, page: PageRequest) -> Page[Case]:
        """Cases matching ``query``, most recently seen first; a tenant's users see only their
        own tenant's."""
        if by.is_operator:
            authorize(by, Permission.AUDIT_READ)
        else:
            if query.tenant_id is not None and query.tenant_id != by.tenant_id:
                raise Forbidden("this key belongs to another tenant")
            authorize(by, Permission.AUDIT_READ, by.tenant_id)
            query = CaseQuery(tenant_id=by.tenant_id, status=query.status, detector=query.detector)
        with self.store.transaction() as tx:
            return tx.list_cases(query, page)

    def get(self, by: Principal, case_id: str) -> Case:
        """One case with its evidence and actions."""
        authorize(by, Permission.AUDIT_READ, None if by.is_operator else by.tenant_id)
        with self.store.transaction() as tx:
            return self._readable(by, tx.get_case(case_id), case_id)

    def change_status(self, by: Principal, case_id: str, status: CaseStatus, note: str) -> Case:
        """Acknowledge, resolve or mark a case false positive, with a note (operators; audited).

        Automatic actions stay as they are: reverting one is a separate, explicit step.
        """
        authorize(by, Permission.SUSPEND)
        note = v.check_text(note, "note", max_length=2000)
        if status is CaseStatus.OPEN:
            raise InvalidInput("a case cannot be reopened; a new finding opens a new case")
        with self.store.transaction() as tx:
            case = self._readable(by, tx.get_case(case_id), case_id)
            now = self.clock()
            updated = change_status(case, status, note, now)
            tx.save_case(updated)
            audit_case(
                tx,
                by,
                updated,
                f"case.{status.value}",
                now,
                reason=note,
                details={"from": case.status.value, "to": status.value},
            )
        return updated

    def revert_action(self, by: Principal, case_id: str, action_id: str, note: str) -> Case:
        """Undo an automatic action still in force (operators; audited), then return the case."""
        authorize(by, Permission.SUSPEND)
        note = v.check_text(note, "note", max_length=2000)
        case = self.get(by, case_id)
        action = next((a for a in case.actions if a.id == action_id), None)
        if action is None:
            raise NotFound(f"action {action_id} not found on case {case_id}", field="action_id")
        self._revert(by, case, action, note)
        return self.get(by, case_id)
