"""Counters backends for the counters tests: in process, or Redis at 127.0.0.1:6379 under a
random key prefix that is deleted afterwards, and an event loop that lives for a whole test (a
redis.asyncio connection pool belongs to the loop that opened it)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import TypeVar

import pytest
from redis.asyncio import Redis

from callwarden.adapters.counters.memory import MemoryCounters
from callwarden.adapters.counters.redis import RedisCounters
from callwarden.core.counters import Counters

REDIS_URL = "redis://127.0.0.1:6379/0"
KINDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]

R = TypeVar("R")


class Backend:
    """Makes counters of one kind that share state (several Redis clients on one prefix, or the
    same in-process object) and removes everything they stored afterwards."""

    def __init__(self, kind: str, *, ttl_slack_s: float = 600.0) -> None:
        self.kind = kind
        self.prefix = f"cwtest-{uuid.uuid4().hex[:16]}"
        self.ttl_slack_s = ttl_slack_s
        self.instances: list[Counters] = []
        self._memory: MemoryCounters | None = None

    def new(self) -> Counters:
        if self.kind == "memory":
            if self._memory is None:
                self._memory = MemoryCounters()
                self.instances.append(self._memory)
            return self._memory
        # a pool big enough for every task of the concurrency tests to be in flight at once
        counters = RedisCounters.from_url(
            REDIS_URL,
            socket_timeout=2.0,
            max_connections=500,
            prefix=self.prefix,
            ttl_slack_s=self.ttl_slack_s,
        )
        self.instances.append(counters)
        return counters

    async def aclose(self) -> None:
        for counters in self.instances:
            await counters.close()
        if self.kind == "redis":
            await purge(self.prefix)


async def redis_keys(prefix: str) -> list[bytes]:
    client = Redis.from_url(REDIS_URL)
    try:
        return [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    finally:
        await client.aclose()


async def purge(prefix: str) -> None:
    keys = await redis_keys(prefix)
    if keys:
        client = Redis.from_url(REDIS_URL)
        try:
            await client.delete(*keys)
        finally:
            await client.aclose()


class Loop:
    """Runs coroutines on one event loop for the whole test (a redis.asyncio connection pool
    belongs to the loop that opened it)."""

    def __init__(self, runner: asyncio.Runner) -> None:
        self._runner = runner

    def __call__(self, awaitable: Awaitable[R]) -> R:
        return self._runner.run(_wait(awaitable))


async def _wait(awaitable: Awaitable[R]) -> R:
    return await awaitable


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"
