"""(d) Litestar with msgspec Structs as parameter and return type (its idiomatic route)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Litestar, get, post


class CallAttempt(msgspec.Struct):
    tenant_id: str
    caller: str
    destination: str
    direction: Literal["outbound", "inbound"]
    call_id: Annotated[str, msgspec.Meta(max_length=128)]
    source_ip: str
    at: float
    user_id: str | None = None


class AdmissionDecision(msgspec.Struct):
    admit: bool
    sip_status: int
    reason: str
    clause_ids: list[str]
    max_duration_s: int | None
    warnings: list[str]
    degraded: bool


@get("/trivial")
async def trivial() -> dict[str, bool]:
    return {"ok": True}


@post("/v1/admission/calls", status_code=200)
async def admit(data: CallAttempt) -> AdmissionDecision:
    return AdmissionDecision(
        admit=True,
        sip_status=200,
        reason=f"{data.direction} call admitted",
        clause_ids=["AUP-3.1"],
        max_duration_s=3600,
        warnings=[],
        degraded=False,
    )


app = Litestar(route_handlers=[trivial, admit], debug=False, logging_config=None)
