"""(e) FastAPI app whose admission endpoint is a plain Starlette Route, with pydantic types.

`app.add_route` registers a starlette.routing.Route on the same router, so the request skips
FastAPI's per-request handler entirely (no dependant solving, no response-model step). The types
are still pydantic models, so they remain the contract. The route is not in the generated
OpenAPI by itself; the app would add its schema explicitly.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response


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


app = FastAPI(title="bench-fastapi-route")


@app.get("/trivial")
async def trivial() -> dict[str, bool]:
    return {"ok": True}


async def admit(request: Request) -> Response:
    try:
        attempt = CallAttempt.model_validate_json(await request.body())
    except ValidationError as exc:
        return Response(exc.json(include_url=False), status_code=422, media_type="application/json")
    decision = AdmissionDecision(
        admit=True,
        sip_status=200,
        reason=f"{attempt.direction} call admitted",
        clause_ids=["AUP-3.1"],
        max_duration_s=3600,
        warnings=[],
        degraded=False,
    )
    return Response(decision.model_dump_json(), media_type="application/json")


app.add_route("/v1/admission/calls", admit, methods=["POST"], include_in_schema=False)
