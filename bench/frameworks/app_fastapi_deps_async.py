"""(h) As (g), but the two dependencies are `async def`, so they run on the event loop."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field


class CallAttempt(BaseModel):
    tenant_id: str
    user_id: str | None = None
    caller: str
    destination: str
    direction: Literal["outbound", "inbound"]
    call_id: Annotated[str, Field(max_length=128)]
    source_ip: str
    at: float


class AdmissionDecision(BaseModel):
    admit: bool
    sip_status: int
    reason: str
    clause_ids: list[str]
    max_duration_s: int | None
    warnings: list[str]
    degraded: bool


KEYS = {"cw_bench_key": "sip-server-1"}
_bearer = HTTPBearer(auto_error=False)
_header = APIKeyHeader(name="X-API-Key", auto_error=False)


async def platform(request: Request) -> dict[str, str]:
    keys: dict[str, str] = request.app.state.keys
    return keys


async def principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> str:
    secret = bearer.credentials if bearer is not None else header
    found = (await platform(request)).get(secret or "")
    if found is None:
        raise HTTPException(401, "an API key is required")
    return found


app = FastAPI(title="bench-fastapi-deps-async")
app.state.keys = KEYS


@app.get("/trivial")
async def trivial() -> dict[str, bool]:
    return {"ok": True}


@app.post("/v1/admission/calls")
async def admit(
    attempt: CallAttempt,
    by: Annotated[str, Depends(principal)],
    keys: Annotated[dict[str, str], Depends(platform)],
) -> AdmissionDecision:
    return AdmissionDecision(
        admit=True,
        sip_status=200,
        reason=f"{attempt.direction} call admitted",
        clause_ids=["AUP-3.1"],
        max_duration_s=3600,
        warnings=[],
        degraded=False,
    )
