"""One JSON error shape for every refusal, naming the field and the clauses behind it."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from callwarden.core.counters import CountersUnavailable
from callwarden.core.errors import (
    CallwardenError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PolicyRefusal,
)

log = logging.getLogger("callwarden.api")


class FieldError(BaseModel):
    """One problem with one field of the request."""

    field: str
    message: str


class ErrorDetail(BaseModel):
    """What went wrong, in words, with the field and clause ids where they apply."""

    status: int
    code: str
    message: str
    field: str | None = None
    clause_ids: list[str] = []
    errors: list[FieldError] = []


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (400, "Malformed request"),
        (401, "Missing or unknown API key"),
        (403, "The key's role or tenant does not allow this"),
        (404, "Not found"),
        (409, "Conflicts with the current state or a policy clause"),
        (422, "A field is invalid; the error names it"),
    )
}

_STATUS: list[tuple[type[CallwardenError], int, str]] = [
    (NotFound, 404, "not_found"),
    (Forbidden, 403, "forbidden"),
    (PolicyRefusal, 409, "policy_refusal"),
    (Conflict, 409, "conflict"),
    (InvalidInput, 422, "invalid_input"),
]


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    clause_ids: tuple[str, ...] | list[str] = (),
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error answer in the one shape."""
    body = ErrorBody(
        error=ErrorDetail(
            status=status,
            code=code,
            message=message,
            field=field,
            clause_ids=list(clause_ids),
            errors=errors or [],
        )
    )
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _domain_error(exc: CallwardenError) -> JSONResponse:
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return error_response(
                status, code, exc.message, field=exc.field, clause_ids=exc.clause_ids
            )
    log.warning("unclassified domain error", extra={"error": exc.message})
    return error_response(400, "bad_request", exc.message, field=exc.field)


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    errors = [
        FieldError(field=_location(tuple(e.get("loc", ()))), message=str(e.get("msg", "")))
        for e in exc.errors()
    ]
    first = errors[0] if errors else FieldError(field="", message="invalid request")
    return error_response(
        422,
        "validation_error",
        f"{first.field}: {first.message}",
        field=first.field,
        errors=errors,
    )


def _counters_error(exc: CountersUnavailable) -> JSONResponse:
    log.warning("counters unreachable", extra={"error": str(exc)})
    return error_response(503, "counters_unavailable", f"counters unreachable: {exc}")


def _http_error(exc: HTTPException) -> JSONResponse:
    code = {
        401: "unauthorized",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


def error_for(exc: Exception) -> JSONResponse | None:
    """The answer to an error the API knows (domain, validation, counters, HTTP), or None for
    one it does not, which is a 500. The exception handlers and the admission hot path both
    answer through it, so an error looks the same whichever way the request was served."""
    if isinstance(exc, CallwardenError):
        return _domain_error(exc)
    if isinstance(exc, RequestValidationError):
        return _validation_error(exc)
    if isinstance(exc, CountersUnavailable):
        return _counters_error(exc)
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Translate domain errors, validation errors and HTTP errors into the one shape."""

    @app.exception_handler(CallwardenError)
    async def _domain(_: Request, exc: CallwardenError) -> JSONResponse:
        return _domain_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc)

    @app.exception_handler(CountersUnavailable)
    async def _counters(_: Request, exc: CountersUnavailable) -> JSONResponse:
        return _counters_error(exc)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        return _http_error(exc)
