"""Who is calling: API keys presented as a bearer token or in X-API-Key.

Nothing here runs in the thread pool unless the key is not cached: the admission hot path
cannot afford a thread hop per request (docs/decisions/http-framework.md).
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from callwarden.core.model import Principal
from callwarden.platform import Platform
from callwarden.services.access import AccessService

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer cw_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key")


async def platform(request: Request) -> Platform:
    """The platform the app was built with."""
    p: Platform = request.app.state.platform
    return p


def presented_key(request: Request) -> str | None:
    """The API key in the request's headers, if any."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials:
            return credentials.strip()
    return request.headers.get("x-api-key")


async def recognise(request: Request, secret: str | None) -> Principal:
    """The principal behind `secret`; 401 when there is none or it is not recognised."""
    return await recognise_secret(request.app.state.platform.access, secret)


async def recognise_secret(access: AccessService, secret: str | None) -> Principal:
    """The principal behind `secret` according to `access`; 401 when there is none or it is not
    recognised. A cached key costs no thread hop."""
    if not secret:
        raise HTTPException(401, "an API key is required", headers={"WWW-Authenticate": "Bearer"})
    found: Principal | None = access.cached(secret)
    if found is None:
        found = await anyio.to_thread.run_sync(access.recognise, secret)
    if found is None:
        raise HTTPException(
            401,
            "the API key is unknown, revoked or its user is inactive",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


async def principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> Principal:
    """The caller of an ordinary API route (the key as the OpenAPI document describes it)."""
    return await recognise(request, bearer.credentials if bearer is not None else header)


Caller = Annotated[Principal, Depends(principal)]
PlatformDep = Annotated[Platform, Depends(platform)]
