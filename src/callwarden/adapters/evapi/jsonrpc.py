"""A client of Kamailio's JSON-RPC interface (module jsonrpcs, served over HTTP by xhttp).

callwarden uses it to keep the backstop hash tables (module htable) current; see
`backstops.py`. Each command is one HTTP POST of a JSON-RPC 2.0 request.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson


class KamailioRpcError(Exception):
    """Kamailio could not be reached, or refused the command (the message says which)."""


class KamailioRpc:
    """Runs Kamailio RPC commands such as `htable.sets` at one URL (e.g.
    `http://127.0.0.1:5061/RPC`)."""

    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        self.url = url
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._next_id = 0

    async def call(self, method: str, *params: str | int) -> Any:
        """Run one command and return its result; raise `KamailioRpcError` on any failure."""
        self._next_id += 1
        body = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": self._next_id}
        try:
            response = await self._client.post(
                self.url,
                content=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            unreachable = f"{method}: Kamailio RPC unreachable at {self.url}: {exc}"
            raise KamailioRpcError(unreachable) from exc
        if response.status_code != 200:
            raise KamailioRpcError(f"{method}: HTTP {response.status_code} from {self.url}")
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise KamailioRpcError(f"{method}: the answer is not JSON: {exc}") from None
        if not isinstance(answer, dict):
            raise KamailioRpcError(f"{method}: the answer is not a JSON-RPC response")
        error = answer.get("error")
        if error is not None:
            detail = error.get("message") if isinstance(error, dict) else error
            raise KamailioRpcError(f"{method}: {detail}")
        return answer.get("result")

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.aclose()
