"""(c) Plain Starlette with msgspec Structs: the lean ASGI baseline."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


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


_decode = msgspec.json.Decoder(CallAttempt).decode
_encode = msgspec.json.Encoder().encode


async def trivial(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def admit(request: Request) -> Response:
    try:
        attempt = _decode(await request.body())
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return Response(
            _encode({"detail": str(exc)}), status_code=422, media_type="application/json"
        )
    decision = AdmissionDecision(
        admit=True,
        sip_status=200,
        reason=f"{attempt.direction} call admitted",
        clause_ids=["AUP-3.1"],
        max_duration_s=3600,
        warnings=[],
        degraded=False,
    )
    return Response(_encode(decision), media_type="application/json")


app = Starlette(
    routes=[
        Route("/trivial", trivial, methods=["GET"]),
        Route("/v1/admission/calls", admit, methods=["POST"]),
    ]
)
