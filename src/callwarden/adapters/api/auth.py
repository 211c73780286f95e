"""Who is calling: API keys presented as a bearer token or in X-API-Key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from callwarden.core.model import Principal
from callwarden.platform import Platform

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer cw_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key")


def platform(request: Request) -> Platform:
    """The platform the app was built with."""
    p: Platform = request.app.state.platform
    return p


def principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header: Annotated[str | None, Security(_header)],
) -> Principal:
    """The principal behind the presented key; 401 when there is none or it is not recognised."""
    secret = bearer.credentials if bearer is not None else header
    if not secret:
        raise HTTPException(401, "an API key is required", headers={"WWW-Authenticate": "Bearer"})
    found = platform(request).access.recognise(secret)
    if found is None:
        raise HTTPException(
            401,
            "the API key is unknown, revoked or its user is inactive",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return found


Caller = Annotated[Principal, Depends(principal)]
PlatformDep = Annotated[Platform, Depends(platform)]
