"""/v1/cases: surveillance cases, their evidence and their automatic actions (FRD-3).

Operators list, read and work every case; a tenant's admins and auditors read their own
tenant's (also under /v1/tenants/{tenant_id}/cases). Acknowledging, resolving, marking a false
positive and reverting an action take a note and are audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from callwarden.adapters.api.auth import Caller, PlatformDep
from callwarden.adapters.api.errors import ERROR_RESPONSES
from callwarden.adapters.api.schemas import (
    FilterText,
    Limit,
    LongText,
    Model,
    Offset,
    PageOut,
    TenantId,
    page_of,
)
from callwarden.core.admission.policy import RuleMode
from callwarden.core.cases import ActionStatus, Case, CaseAction, CaseStatus
from callwarden.core.detectors.base import KeyKind, Severity, SuggestedAction
from callwarden.core.model import Principal
from callwarden.platform import Platform
from callwarden.services.cases import CaseQuery
from callwarden.services.ports import PageRequest

router = APIRouter(tags=["cases"], responses=ERROR_RESPONSES)

CaseId = Annotated[
    str, Path(pattern=r"^cs_[0-9a-f]{16}$", description="A case id: cs_ and 16 hex digits")
]
ActionId = Annotated[
    str, Path(pattern=r"^ca_[0-9a-f]{16}$", description="An action id: ca_ and 16 hex digits")
]
TenantFilter = Annotated[
    str | None, Query(pattern=r"^tn_[0-9a-f]{16}$", description="Only this tenant's cases")
]
StatusFilter = Annotated[CaseStatus | None, Query(description="Only cases in this status")]
DetectorFilter = Annotated[FilterText, Query(description="Only this detector's cases")]


class NoteIn(Model):
    """Why a person changes a case or reverts an action (kept in the audit log)."""

    note: LongText


class EvidenceOut(BaseModel):
    """The numbers behind a case (from its latest finding) and the calls behind all of them."""

    statistic: str
    value: float
    threshold: float
    score: float
    baseline: float | None
    summary: str
    call_ids: list[str]


class CaseActionOut(BaseModel):
    """An automatic action: what was done to what, and whether it is still in force."""

    id: str
    kind: SuggestedAction
    target: str
    status: ActionStatus
    severity: Severity
    created_at: datetime
    expires_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None
    reference: str | None
    note: str | None

    @classmethod
    def of(cls, a: CaseAction) -> CaseActionOut:
        """The action as the API shows it."""
        return cls(
            id=a.id,
            kind=a.kind,
            target=a.target,
            status=a.status,
            severity=a.severity,
            created_at=a.created_at,
            expires_at=a.expires_at,
            ended_at=a.ended_at,
            ended_by=a.ended_by,
            reference=a.reference,
            note=a.note,
        )


class CaseOut(BaseModel):
    """A surveillance case."""

    id: str
    tenant_id: str | None
    detector: str
    clause_ids: list[str]
    key_kind: KeyKind
    key: str
    window: str
    severity: Severity
    status: CaseStatus
    mode: RuleMode
    first_seen: datetime
    last_seen: datetime
    finding_count: int
    evidence: EvidenceOut
    note: str | None
    created_at: datetime
    updated_at: datetime
    actions: list[CaseActionOut]

    @classmethod
    def of(cls, c: Case) -> CaseOut:
        """The case as the API shows it."""
        e = c.evidence
        return cls(
            id=c.id,
            tenant_id=c.tenant_id,
            detector=c.detector,
            clause_ids=list(c.clause_ids),
            key_kind=c.key_kind,
            key=c.key,
            window=c.window,
            severity=c.severity,
            status=c.status,
            mode=c.mode,
            first_seen=c.first_seen,
            last_seen=c.last_seen,
            finding_count=c.finding_count,
            evidence=EvidenceOut(
                statistic=e.statistic,
                value=e.value,
                threshold=e.threshold,
                score=e.score,
                baseline=e.baseline,
                summary=e.summary,
                call_ids=list(e.call_ids),
            ),
            note=c.note,
            created_at=c.created_at,
            updated_at=c.updated_at,
            actions=[CaseActionOut.of(a) for a in c.actions],
        )


def _list(
    p: Platform, by: Principal, query: CaseQuery, limit: int, offset: int
) -> PageOut[CaseOut]:
    page = p.surveillance.cases.list(by, query, PageRequest(limit, offset))
    return page_of(page, [CaseOut.of(c) for c in page.items])


@router.get("/v1/cases")
def list_cases(
    by: Caller,
    p: PlatformDep,
    status: StatusFilter = None,
    tenant_id: TenantFilter = None,
    detector: DetectorFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[CaseOut]:
    """Cases, most recently seen first; a tenant's key sees only its own tenant's."""
    query = CaseQuery(tenant_id=tenant_id, status=status, detector=detector)
    return _list(p, by, query, limit, offset)


@router.get("/v1/tenants/{tenant_id}/cases")
def list_tenant_cases(
    tenant_id: TenantId,
    by: Caller,
    p: PlatformDep,
    status: StatusFilter = None,
    detector: DetectorFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[CaseOut]:
    """One tenant's cases, most recently seen first."""
    query = CaseQuery(tenant_id=tenant_id, status=status, detector=detector)
    return _list(p, by, query, limit, offset)


@router.get("/v1/cases/{case_id}")
def get_case(case_id: CaseId, by: Caller, p: PlatformDep) -> CaseOut:
    """One case with its evidence and actions."""
    return CaseOut.of(p.surveillance.cases.get(by, case_id))


def _move(p: Platform, by: Principal, case_id: str, status: CaseStatus, note: str) -> CaseOut:
    return CaseOut.of(p.surveillance.cases.change_status(by, case_id, status, note))


@router.post("/v1/cases/{case_id}/acknowledge")
def acknowledge_case(case_id: CaseId, body: NoteIn, by: Caller, p: PlatformDep) -> CaseOut:
    """Someone is looking at an open case (operators; audited)."""
    return _move(p, by, case_id, CaseStatus.ACKNOWLEDGED, body.note)


@router.post("/v1/cases/{case_id}/resolve")
def resolve_case(case_id: CaseId, body: NoteIn, by: Caller, p: PlatformDep) -> CaseOut:
    """Close a case as dealt with (operators; audited). Actions in force stay in force."""
    return _move(p, by, case_id, CaseStatus.RESOLVED, body.note)


@router.post("/v1/cases/{case_id}/false-positive")
def mark_false_positive(case_id: CaseId, body: NoteIn, by: Caller, p: PlatformDep) -> CaseOut:
    """Close a case as a false positive (operators; audited); revert its actions separately."""
    return _move(p, by, case_id, CaseStatus.FALSE_POSITIVE, body.note)


@router.post("/v1/cases/{case_id}/actions/{action_id}/revert")
def revert_action(
    case_id: CaseId, action_id: ActionId, body: NoteIn, by: Caller, p: PlatformDep
) -> CaseOut:
    """Undo an automatic action still in force (operators; audited), returning the case."""
    return CaseOut.of(p.surveillance.cases.revert_action(by, case_id, action_id, body.note))
