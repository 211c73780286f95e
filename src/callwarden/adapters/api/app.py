"""The HTTP API application (FastAPI on uvicorn; docs/decisions/http-framework.md says why)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from callwarden import __version__
from callwarden.adapters.api.errors import install_error_handlers
from callwarden.adapters.api.middleware import SingleValuedQuery
from callwarden.adapters.api.routes import audit, health, numbers, plans, tenants, users
from callwarden.platform import Platform


def create_app(platform: Platform) -> FastAPI:
    """The API over an already built platform; the caller owns the platform's lifetime."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        title="callwarden",
        version=__version__,
        description=(
            "Acceptable-use-policy enforcement for hosted contact centers: tenants, seats, "
            "numbers, plans, suspensions and the audit log. Errors name the offending field and "
            "the policy clauses behind a refusal."
        ),
        lifespan=lifespan,
    )
    app.state.platform = platform
    install_error_handlers(app)
    app.add_middleware(SingleValuedQuery)
    for module in (health, plans, tenants, users, numbers, audit):
        app.include_router(module.router)
    return app
