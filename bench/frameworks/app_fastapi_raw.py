"""(b) FastAPI, but the admission endpoint takes the raw Request and does its own pydantic work.

The route is still a FastAPI path operation (so it still appears in OpenAPI, with the request
and response schemas declared by hand), but the body is decoded with `model_validate_json` and
the answer written with `model_dump_json` into a plain Response: no body parameter, no response
model, so FastAPI's body solving and response serialisation are skipped.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, Field, ValidationError


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


app = FastAPI(title="bench-fastapi-raw")


@app.get("/trivial")
async def trivial() -> dict[str, bool]:
    return {"ok": True}


@app.post(
    "/v1/admission/calls",
    response_class=Response,
    responses={200: {"model": AdmissionDecision}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": CallAttempt.model_json_schema()}},
        }
    },
)
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
