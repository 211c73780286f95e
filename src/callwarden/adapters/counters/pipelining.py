"""Automatic pipelining of one Lua script's calls: the Redis counters' hot path.

Under load many call attempts await :meth:`RedisCounters.admit` at the same moment, each one
EVALSHA. Sent one by one, each pays for a pooled connection, a socket write and a wake-up of its
own, which costs the server process more than the script costs Redis. :class:`ScriptPipeline`
collects the calls made during one turn of the event loop and sends them as one pipeline (no
MULTI: each script stays atomic on its own, and they run in the order they were made), then
hands every caller its own reply. A lone call is sent on the next turn, so nothing waits for
company.

Errors stay per call: a script error reaches only its caller; a connection error or timeout
reaches every caller of the batch (none of them knows whether its script ran, exactly as with a
single call). If the server lost its script cache (a restart, SCRIPT FLUSH), the script is
loaded again and the batch sent once more: NOSCRIPT means nothing of it ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

__all__ = ["ScriptPipeline"]

_Call = tuple[Sequence[str], Sequence[str | int | bytes], "asyncio.Future[Any]"]


class ScriptPipeline:
    """Sends the calls of one Lua script made in the same event-loop turn together."""

    def __init__(self, client: Redis, script: str, sha: str) -> None:
        self._client = client
        self._script = script
        self._sha = sha
        self._pending: list[_Call] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int | bytes]) -> Any:
        """Run the script with ``keys`` and ``args``; its reply, or its error."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((keys, args, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._send(batch))
            self._tasks.add(task)  # keep a reference until it is done
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            replies = await self._execute(batch)
            if any(isinstance(r, NoScriptError) for r in replies):
                await self._client.script_load(self._script)
                replies = await self._execute(batch)
        except BaseException as exc:  # a lost connection, a timeout, a cancelled server
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, _, future), reply in zip(batch, replies, strict=True):
            if future.done():  # the caller gave up (cancelled)
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for keys, args, _ in batch:
            pipe.evalsha(self._sha, len(keys), *keys, *args)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies
