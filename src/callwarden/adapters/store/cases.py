"""Surveillance cases and their automatic actions in SQL (migration 0006).

Two tables on the store's metadata: ``cases`` (one row per case, evidence as JSON) and
``case_actions`` (one row per action, so that the actions due to expire are found by an index
rather than by reading every case). The (tenant, detector, key kind, key, status) index finds
the active case a new finding updates.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Engine, ForeignKey, Index, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from callwarden.adapters.store.sql import SqlTransaction
from callwarden.adapters.store.tables import Base
from callwarden.core.admission.policy import RuleMode
from callwarden.core.audit import AuditEntry, AuditFact
from callwarden.core.cases import (
    ACTIVE_STATUSES,
    ActionStatus,
    Case,
    CaseAction,
    CaseEvidence,
    CaseStatus,
)
from callwarden.core.detectors.base import KeyKind, Severity, SuggestedAction
from callwarden.services.cases import CaseQuery
from callwarden.services.ports import Page, PageRequest

__all__ = ["CaseActionRow", "CaseRow", "SqlCaseStore", "SqlCaseTransaction"]


class CaseRow(Base):
    """One surveillance case; ``evidence`` holds the statistic, threshold, baseline and ids."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_key", "tenant_id", "detector", "key_kind", "key", "status"),
        Index("ix_cases_status_last_seen", "status", "last_seen"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    detector: Mapped[str] = mapped_column(String(64))
    clause_ids: Mapped[list[Any]] = mapped_column(JSON)
    key_kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(Text)
    window: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    finding_count: Mapped[int] = mapped_column(Integer)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CaseActionRow(Base):
    """One automatic action taken because of a case."""

    __tablename__ = "case_actions"
    __table_args__ = (
        Index("ix_case_actions_case", "case_id"),
        Index("ix_case_actions_status_expires", "status", "expires_at"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(32), ForeignKey("cases.id"))
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


def _evidence_json(e: CaseEvidence) -> dict[str, Any]:
    return {
        "statistic": e.statistic,
        "value": e.value,
        "threshold": e.threshold,
        "score": e.score,
        "summary": e.summary,
        "baseline": e.baseline,
        "call_ids": list(e.call_ids),
    }


def _evidence(data: dict[str, Any]) -> CaseEvidence:
    return CaseEvidence(
        statistic=str(data["statistic"]),
        value=float(data["value"]),
        threshold=float(data["threshold"]),
        score=float(data["score"]),
        summary=str(data["summary"]),
        baseline=None if data.get("baseline") is None else float(data["baseline"]),
        call_ids=tuple(str(i) for i in data.get("call_ids", ())),
    )


def _action(row: CaseActionRow) -> CaseAction:
    return CaseAction(
        id=row.id,
        case_id=row.case_id,
        kind=SuggestedAction(row.kind),
        target=row.target,
        status=ActionStatus(row.status),
        created_at=row.created_at,
        severity=Severity(row.severity),
        expires_at=row.expires_at,
        ended_at=row.ended_at,
        ended_by=row.ended_by,
        reference=row.reference,
        note=row.note,
    )


def _case(row: CaseRow, actions: list[CaseAction]) -> Case:
    return Case(
        id=row.id,
        tenant_id=row.tenant_id,
        detector=row.detector,
        clause_ids=tuple(str(c) for c in row.clause_ids),
        key_kind=KeyKind(row.key_kind),
        key=row.key,
        window=row.window,
        severity=Severity(row.severity),
        status=CaseStatus(row.status),
        mode=RuleMode(row.mode),
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        finding_count=row.finding_count,
        evidence=_evidence(row.evidence),
        created_at=row.created_at,
        updated_at=row.updated_at,
        note=row.note,
        actions=tuple(actions),
    )


def _fill(row: CaseRow, case: Case) -> None:
    row.tenant_id = case.tenant_id
    row.detector = case.detector
    row.clause_ids = list(case.clause_ids)
    row.key_kind = case.key_kind.value
    row.key = case.key
    row.window = case.window
    row.severity = case.severity.value
    row.status = case.status.value
    row.mode = case.mode.value
    row.first_seen = case.first_seen
    row.last_seen = case.last_seen
    row.finding_count = case.finding_count
    row.evidence = _evidence_json(case.evidence)
    row.note = case.note
    row.created_at = case.created_at
    row.updated_at = case.updated_at


def _fill_action(row: CaseActionRow, action: CaseAction) -> None:
    row.case_id = action.case_id
    row.kind = action.kind.value
    row.target = action.target
    row.status = action.status.value
    row.severity = action.severity.value
    row.created_at = action.created_at
    row.expires_at = action.expires_at
    row.ended_at = action.ended_at
    row.ended_by = action.ended_by
    row.reference = action.reference
    row.note = action.note


class SqlCaseTransaction:
    """The `CaseTransaction` port over one SQLAlchemy session; audit entries go through the
    main store's transaction on the same session, so a change and its entry are one commit."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._main = SqlTransaction(session)

    def _actions(self, case_ids: list[str]) -> dict[str, list[CaseAction]]:
        found: dict[str, list[CaseAction]] = {i: [] for i in case_ids}
        if not case_ids:
            return found
        rows = self.session.scalars(
            select(CaseActionRow)
            .where(CaseActionRow.case_id.in_(case_ids))
            .order_by(CaseActionRow.created_at, CaseActionRow.id)
        )
        for row in rows:
            found[row.case_id].append(_action(row))
        return found

    def add_case(self, case: Case) -> None:
        """Store a new case (its actions are added with `add_action`)."""
        row = CaseRow(id=case.id)
        _fill(row, case)
        self.session.add(row)
        self.session.flush()

    def save_case(self, case: Case) -> None:
        """Store a case's changed fields (not its actions)."""
        row = self.session.get(CaseRow, case.id)
        if row is None:
            raise KeyError(case.id)
        _fill(row, case)
        self.session.flush()

    def get_case(self, case_id: str) -> Case | None:
        """One case with its actions, oldest action first."""
        row = self.session.get(CaseRow, case_id)
        if row is None:
            return None
        return _case(row, self._actions([row.id])[row.id])

    def active_case(
        self, tenant_id: str | None, detector: str, key_kind: str, key: str
    ) -> Case | None:
        """The open or acknowledged case of this detector about this key, if any."""
        tenant = (
            CaseRow.tenant_id.is_(None) if tenant_id is None else CaseRow.tenant_id == tenant_id
        )
        row = self.session.scalars(
            select(CaseRow)
            .where(
                tenant,
                CaseRow.detector == detector,
                CaseRow.key_kind == key_kind,
                CaseRow.key == key,
                CaseRow.status.in_([s.value for s in ACTIVE_STATUSES]),
            )
            .order_by(CaseRow.created_at.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        return _case(row, self._actions([row.id])[row.id])

    def list_cases(self, query: CaseQuery, page: PageRequest) -> Page[Case]:
        """Cases matching ``query``, most recently seen first."""
        conditions = []
        if query.tenant_id is not None:
            conditions.append(CaseRow.tenant_id == query.tenant_id)
        if query.status is not None:
            conditions.append(CaseRow.status == query.status.value)
        if query.detector is not None:
            conditions.append(CaseRow.detector == query.detector)
        total = self.session.scalar(select(func.count()).select_from(CaseRow).where(*conditions))
        rows = list(
            self.session.scalars(
                select(CaseRow)
                .where(*conditions)
                .order_by(CaseRow.last_seen.desc(), CaseRow.id)
                .limit(page.limit)
                .offset(page.offset)
            )
        )
        actions = self._actions([r.id for r in rows])
        return Page(
            items=[_case(r, actions[r.id]) for r in rows],
            total=int(total or 0),
            limit=page.limit,
            offset=page.offset,
        )

    def add_action(self, action: CaseAction) -> None:
        """Record an action taken because of a case."""
        row = CaseActionRow(id=action.id)
        _fill_action(row, action)
        self.session.add(row)
        self.session.flush()

    def save_action(self, action: CaseAction) -> None:
        """Store an action's new status."""
        row = self.session.get(CaseActionRow, action.id)
        if row is None:
            raise KeyError(action.id)
        _fill_action(row, action)
        self.session.flush()

    def due_actions(self, now: datetime, limit: int) -> list[CaseAction]:
        """Actions in force whose expiry has passed, soonest first."""
        rows = self.session.scalars(
            select(CaseActionRow)
            .where(
                CaseActionRow.status == ActionStatus.APPLIED.value,
                CaseActionRow.expires_at.is_not(None),
                CaseActionRow.expires_at <= now,
            )
            .order_by(CaseActionRow.expires_at, CaseActionRow.id)
            .limit(limit)
        )
        return [_action(r) for r in rows]

    def append_audit(self, fact: AuditFact, at: datetime) -> AuditEntry:
        """Append to the audit log in this same transaction (GOV-1)."""
        return self._main.append_audit(fact, at)


class SqlCaseStore:
    """The `CaseStore` port on the same database as the rest of the store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[SqlCaseTransaction]:
        """One unit of work: committed when the block ends, rolled back if it raises."""
        with self._sessions() as session, session.begin():
            yield SqlCaseTransaction(session)
