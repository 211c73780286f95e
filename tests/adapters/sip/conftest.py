"""Fixtures of the SIP tests: the two-tenant world behind a running redirect interface."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.world import World

from callwarden.adapters.sip import SipEndpoint, serve_sip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def endpoint(world: World) -> AsyncIterator[SipEndpoint]:
    """The redirect interface over the world's platform, on a free loopback port."""
    async with serve_sip(world.platform, "127.0.0.1", 0) as running:
        yield running
