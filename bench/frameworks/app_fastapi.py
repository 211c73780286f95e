"""(a) FastAPI with pydantic models as parameter and return type: the idiomatic route.

FastAPI validates the body into CallAttempt through its dependant machinery and serialises the
AdmissionDecision return value through the response model.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import FastAPI
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


app = FastAPI(title="bench-fastapi")


@app.get("/trivial")
async def trivial() -> dict[str, bool]:
    return {"ok": True}


@app.post("/v1/admission/calls")
async def admit(attempt: CallAttempt) -> AdmissionDecision:
    return AdmissionDecision(
        admit=True,
        sip_status=200,
        reason=f"{attempt.direction} call admitted",
        clause_ids=["AUP-3.1"],
        max_duration_s=3600,
        warnings=[],
        degraded=False,
    )
