"""Fixtures the service tests share."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def counters_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Counters in process, and in Redis at 127.0.0.1:6379 under a random key prefix that is
    deleted afterwards."""
    if request.param == "memory":
        yield "memory://"
        return
    prefix = f"cwtest{secrets.token_hex(4)}"
    yield f"redis://127.0.0.1:6379/0?prefix={prefix}"
    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
