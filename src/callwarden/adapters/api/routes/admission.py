"""/v1/admission: the hot path. A SIP server asks here before every call it places."""

from __future__ import annotations

import re
import time
from typing import Annotated, Self

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, Strict, StringConstraints, model_validator

from callwarden.adapters.api import hot_path
from callwarden.adapters.api.auth import Caller, PlatformDep
from callwarden.adapters.api.errors import ERROR_RESPONSES
from callwarden.adapters.api.hot_path import HotRequest, parse
from callwarden.adapters.api.observe import DecisionLog
from callwarden.adapters.api.schemas import NO_CONTROL, Model, TenantId, TenantRef, UserRef
from callwarden.core.admission.attempt import CallAttempt, Direction
from callwarden.core.admission.decision import Decision
from callwarden.core.model import Principal
from callwarden.core.permissions import Permission
from callwarden.platform import Platform
from callwarden.services.admission import CallEvent
from callwarden.services.governance import authorize

router = APIRouter(prefix="/v1/admission", tags=["admission"], responses=ERROR_RESPONSES)

_CALL_ID = re.compile(NO_CONTROL)
CallId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NO_CONTROL)]
SourceIp = Annotated[
    str, StringConstraints(min_length=2, max_length=45, pattern=r"^[0-9A-Fa-f:.]+$")
]
Epoch = Annotated[float, Strict(), Field(ge=0, le=100_000_000_000, allow_inf_nan=False)]


class IdentifiedByTenant(Model):
    """A body that names its tenant: by `tenant_id`, or the `source_ip` of one of its trunks."""

    tenant_id: TenantRef | None = None
    source_ip: SourceIp | None = None

    @model_validator(mode="after")
    def _identified(self) -> Self:
        if self.tenant_id is None and self.source_ip is None:
            raise ValueError("give tenant_id or source_ip to identify the tenant")
        return self


class AttemptIn(IdentifiedByTenant):
    """A call attempt. Give `tenant_id`, or the `source_ip` of a tenant's trunk."""

    call_id: CallId
    destination: Annotated[str, StringConstraints(max_length=128)] = Field(
        description="As dialled or as E.164; an unparseable one is refused with its reason"
    )
    direction: Direction = Direction.OUTBOUND
    user_id: UserRef | None = None
    caller: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="The presented caller ID; null or 'anonymous' when withheld"
    )
    at: Epoch | None = Field(None, description="Epoch seconds; the server's time when absent")


class FindingOut(BaseModel):
    rule: str
    clause_ids: list[str]
    reason: str


class DecisionOut(BaseModel):
    """The answer: admit or refuse, the SIP status to use, why, and for how long."""

    admit: bool
    sip_status: int
    reason: str
    clause_ids: list[str]
    max_duration_s: int | None
    warnings: list[str]
    degraded: bool
    emergency: bool
    refused_by: str | None
    retry_after_s: float | None
    observed: list[FindingOut]

    @classmethod
    def of(cls, d: Decision) -> DecisionOut:
        return cls(
            admit=d.admit,
            sip_status=d.sip_status,
            reason=d.reason,
            clause_ids=list(d.clause_ids),
            max_duration_s=d.max_duration_s,
            warnings=list(d.warnings),
            degraded=d.degraded,
            emergency=d.emergency,
            refused_by=d.refused_by,
            retry_after_s=d.retry_after_s,
            observed=[
                FindingOut(rule=f.rule, clause_ids=list(f.clause_ids), reason=f.reason)
                for f in d.observed
            ],
        )


class EventIn(IdentifiedByTenant):
    """A call's progress or end, identified like its attempt."""

    event: CallEvent
    duration_s: Annotated[float, Strict(), Field(ge=0, le=10**7, allow_inf_nan=False)] | None = None


class EventOut(BaseModel):
    call_id: str
    event: CallEvent
    changed: bool = Field(description="False for a repeated event or an unknown call")


class LeasesOut(BaseModel):
    tenant_id: str
    calls: list[str]


def decision_json(d: Decision) -> dict[str, object]:
    """The decision in the `DecisionOut` shape, built directly (the hot path skips the model)."""
    return {
        "admit": d.admit,
        "sip_status": d.sip_status,
        "reason": d.reason,
        "clause_ids": list(d.clause_ids),
        "max_duration_s": d.max_duration_s,
        "warnings": list(d.warnings),
        "degraded": d.degraded,
        "emergency": d.emergency,
        "refused_by": d.refused_by,
        "retry_after_s": d.retry_after_s,
        "observed": [
            {"rule": f.rule, "clause_ids": list(f.clause_ids), "reason": f.reason}
            for f in d.observed
        ],
    }


async def _decision(
    decision_log: DecisionLog, p: Platform, by: Principal, body: AttemptIn
) -> Decision:
    authorize(by, Permission.ADMISSION)
    attempt = CallAttempt(
        call_id=body.call_id,
        destination=body.destination,
        direction=body.direction,
        at=body.at if body.at is not None else time.time(),
        tenant_id=body.tenant_id,
        user_id=body.user_id,
        caller=body.caller,
        source_ip=body.source_ip,
    )
    started = time.perf_counter()
    decision = await p.admission.decide(attempt)
    decision_log.record(attempt, decision, started)
    return decision


async def _event(p: Platform, by: Principal, call_id: str, body: EventIn) -> EventOut:
    authorize(by, Permission.ADMISSION)
    changed = await p.admission.call_event(
        call_id,
        body.event,
        tenant_id=body.tenant_id,
        source_ip=body.source_ip,
        duration_s=body.duration_s,
    )
    return EventOut(call_id=call_id, event=body.event, changed=changed)


# The two path operations below publish the contract in the OpenAPI document. Requests are
# answered by the hot path (callwarden.adapters.api.hot_path) ahead of the framework, which runs
# the same code without FastAPI's per-request machinery (docs/decisions/http-framework.md).
@router.post("/calls")
async def decide_call(request: Request, body: AttemptIn, by: Caller, p: PlatformDep) -> DecisionOut:
    """Admit or refuse a call attempt, citing the clauses behind the answer."""
    log: DecisionLog = request.app.state.decision_log
    return DecisionOut.of(await _decision(log, p, by, body))


@router.post("/calls/{call_id}/events")
async def call_event(
    call_id: Annotated[str, Path(min_length=1, max_length=256, pattern=NO_CONTROL)],
    body: EventIn,
    by: Caller,
    p: PlatformDep,
) -> EventOut:
    """Report that a call was answered (renews its leases) or ended (releases them)."""
    return await _event(p, by, call_id, body)


async def _serve_attempt(request: HotRequest) -> bytes:
    """The hot path of ``POST /v1/admission/calls``: the decision as JSON."""
    body = parse(AttemptIn, request.body)
    decision = await _decision(request.decision_log, request.platform, request.by, body)
    return orjson.dumps(decision_json(decision))


async def _serve_event(request: HotRequest) -> bytes:
    """The hot path of ``POST /v1/admission/calls/{call_id}/events``: the outcome as JSON."""
    call_id = request.path_param
    if len(call_id) > 256 or not _CALL_ID.fullmatch(call_id):
        message = "call_id must be 1 to 256 characters without control characters"
        raise RequestValidationError(
            [{"loc": ("path", "call_id"), "msg": message, "type": "value_error"}]
        )
    out = await _event(request.platform, request.by, call_id, parse(EventIn, request.body))
    return out.model_dump_json().encode()


hot_path.route("/v1/admission/calls", _serve_attempt)
hot_path.route("/v1/admission/calls/{call_id}/events", _serve_event)


@router.get("/tenants/{tenant_id}/leases")
async def tenant_leases(tenant_id: TenantId, by: Caller, p: PlatformDep) -> LeasesOut:
    """The calls currently holding concurrency leases for a tenant."""
    authorize(by, Permission.TENANTS_READ, tenant_id)
    calls = await p.counters.calls_holding(tenant_id, time.time())
    return LeasesOut(tenant_id=tenant_id, calls=calls)


class RecentOut(BaseModel):
    at: float
    call_id: str
    tenant_id: str | None
    destination: str
    decision: DecisionOut


@router.get("/recent")
async def recent_decisions(
    request: Request,
    by: Caller,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RecentOut]:
    """The latest decisions of this instance, newest first (operators): a live view."""
    authorize(by, Permission.ADMISSION)
    log: DecisionLog = request.app.state.decision_log
    return [
        RecentOut(
            at=d.at,
            call_id=d.call_id,
            tenant_id=d.tenant_id,
            destination=d.destination,
            decision=DecisionOut.of(d.decision),
        )
        for d in log.latest(limit)
    ]
