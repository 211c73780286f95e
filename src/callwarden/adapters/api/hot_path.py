"""The admission hot path, served straight from ASGI ahead of the framework.

A SIP server waits on ``POST /v1/admission/calls`` before every call it places, and on the call
events after it. Those two requests are answered here, before FastAPI's own per-request work
(its telemetry check, the middleware stack, routing, the request object, the exception
middlewares), which costs about as much server time as the whole trivial endpoint
(docs/decisions/http-framework.md). Everything else goes to FastAPI unchanged.

What the framework would have done for these requests is done here, in the same way:

- the API key is read from ``Authorization: Bearer`` or ``X-API-Key`` and recognised through the
  same cache;
- the body is read whole, at most :data:`MAX_BODY_BYTES` (413 beyond it; a client that goes
  away before sending it gets a 400 nobody reads);
- every error, expected or not, is answered in the API's one error shape (:mod:`errors`): a
  malformed attempt is a 422 naming the field, an unknown key a 401, an unexpected failure a
  logged 500 in the same shape.

The path operations in :mod:`routes.admission` still publish the contract in the OpenAPI
document; a test checks that both ways give the same answers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope, Send

from callwarden.adapters.api.auth import recognise_secret
from callwarden.adapters.api.errors import error_for, error_response
from callwarden.adapters.api.observe import DecisionLog
from callwarden.core.model import Principal
from callwarden.platform import Platform

__all__ = ["MAX_BODY_BYTES", "HotRequest", "handler_for", "serve"]

log = logging.getLogger("callwarden.api")

MAX_BODY_BYTES: Final[int] = 16_384
"""The largest request body the hot path reads: a call attempt is a few hundred bytes."""

M = TypeVar("M", bound=BaseModel)

_JSON_HEADERS: Final[tuple[bytes, bytes]] = (b"content-type", b"application/json")


class ClientGone(Exception):
    """The client disconnected before its request was read."""


class HotRequest:
    """One hot-path request: the platform it is served by and what the client sent."""

    __slots__ = ("body", "by", "decision_log", "path_param", "platform")

    def __init__(
        self,
        platform: Platform,
        decision_log: DecisionLog,
        by: Principal,
        body: bytes,
        path_param: str,
    ) -> None:
        self.platform = platform
        self.decision_log = decision_log
        self.by = by
        self.body = body
        self.path_param = path_param


Handler = Callable[[HotRequest], Awaitable[bytes]]
"""Serves one hot-path request: returns the JSON body of a 200 answer, or raises an error the
API knows how to answer (:func:`errors.error_for`)."""

_EXACT: dict[str, Handler] = {}
_BETWEEN: list[tuple[str, str, Handler]] = []


def route(path: str, handler: Handler) -> None:
    """Serve POSTs to ``path`` with ``handler``. One ``{param}`` segment may stand in the path;
    it matches one path segment (no ``/``), as the framework's routes do."""
    head, brace, rest = path.partition("{")
    if not brace:
        _EXACT[path] = handler
        return
    _, _, tail = rest.partition("}")
    _BETWEEN.append((head, tail, handler))


def handler_for(scope: Scope) -> tuple[Handler, str] | None:
    """The hot-path handler for this request and its path parameter, or None when the request
    is for the framework."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    handler = _EXACT.get(path)
    if handler is not None:
        return handler, ""
    for head, tail, handler in _BETWEEN:
        if path.startswith(head) and path.endswith(tail):
            param = path[len(head) : len(path) - len(tail)]
            if param and "/" not in param:
                return handler, param
    return None


def _presented_key(scope: Scope) -> str | None:
    """The API key in the request's headers (bearer token first), as auth.presented_key."""
    header_key: str | None = None
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials:
                return credentials.strip()
        elif name == b"x-api-key":
            header_key = value.decode("latin-1")
    return header_key


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    if message["type"] != "http.request":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > MAX_BODY_BYTES:
            raise _too_large()
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large() -> HTTPException:
    return HTTPException(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")


async def serve(
    platform: Platform,
    decision_log: DecisionLog,
    handler: Handler,
    param: str,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Answer one hot-path request: recognise the caller, read the body, run ``handler`` and
    send its answer, or the error in the API's one shape."""
    try:
        by = await recognise_secret(platform.access, _presented_key(scope))
        body = await _read_body(receive)
        answer = await handler(HotRequest(platform, decision_log, by, body, param))
    except ClientGone:
        return
    except Exception as exc:  # every failure gets an answer in the one shape
        response = error_for(exc)
        if response is None:
            log.exception("admission hot path failed", extra={"path": scope["path"]})
            response = error_response(500, "internal_error", "an internal error occurred")
        await response(scope, receive, send)
        return
    start: Message = {
        "type": "http.response.start",
        "status": 200,
        "headers": [_JSON_HEADERS, (b"content-length", str(len(answer)).encode())],
    }
    await send(start)
    await send({"type": "http.response.body", "body": answer})


def validation_error(exc: ValidationError, *prefix: str) -> RequestValidationError:
    """A pydantic error about the body as the framework reports it (fields under ``body``)."""
    errors = [{**e, "loc": (*prefix, *e["loc"])} for e in exc.errors(include_url=False)]
    return RequestValidationError(errors)


def parse(model: type[M], body: bytes) -> M:
    """``body`` validated as ``model``; a 422 naming the field when it does not fit."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(exc, "body") from exc
