"""Fixtures of the counters tests: a loop per test, and a backend of each kind."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from tests.adapters.counters.backends import KINDS, Backend, Loop

from callwarden.core.counters import Counters


@pytest.fixture
def run() -> Iterator[Loop]:
    with asyncio.Runner() as runner:
        yield Loop(runner)


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, run: Loop) -> Iterator[Backend]:
    b = Backend(request.param)
    yield b
    run(b.aclose())


@pytest.fixture
def counters(backend: Backend) -> Counters:
    return backend.new()
