"""/healthz, /readyz and /metrics: for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from callwarden.adapters.api.auth import PlatformDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    services: dict[str, str]


def _tcp_reachable(url: str, default_port: int) -> str:
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or default_port), 0.5
        ):
            return "reachable"
    except OSError as exc:
        return f"unreachable: {exc}"


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up and answering."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"model": Readiness, "description": "Not ready"}})
def readyz(p: PlatformDep) -> Response:
    """Which backing services this instance reached; 503 until all configured ones answer."""
    services: dict[str, str] = {}
    try:
        p.store.ping()
        services["database"] = "reachable"
    except Exception as exc:  # any driver error means "not ready", whatever its class
        services["database"] = f"unreachable: {type(exc).__name__}"
    if p.settings.counters_url.startswith("redis"):
        services["counters"] = _tcp_reachable(p.settings.counters_url, 6379)
    else:
        services["counters"] = "in-process"
    if p.settings.nats_url:
        services["stream"] = _tcp_reachable(p.settings.nats_url, 4222)
    else:
        services["stream"] = "in-process"
    ready = all(not s.startswith("unreachable") for s in services.values())
    body = Readiness(ready=ready, services=services)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
def metrics() -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
