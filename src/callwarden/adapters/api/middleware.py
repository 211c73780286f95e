"""Refuse ambiguous query strings before routing.

No callwarden query parameter takes several values, so `?status=a&status=b` is ambiguous; rather
than silently keeping one of them, the request is refused with a 422 naming the parameter.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from callwarden.adapters.api.errors import FieldError, error_response


class SingleValuedQuery:
    """ASGI middleware: a query parameter given more than once is a 422."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query: bytes = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if query:
            seen: set[str] = set()
            for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if name in seen:
                    field = f"query.{name}"
                    message = f"query parameter {name!r} is given more than once"
                    response = error_response(
                        422,
                        "validation_error",
                        message,
                        field=field,
                        errors=[FieldError(field=field, message=message)],
                    )
                    await response(scope, receive, send)
                    return
                seen.add(name)
        await self.app(scope, receive, send)
