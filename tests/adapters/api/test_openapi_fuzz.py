"""schemathesis against the published OpenAPI document: no 5xx, every answer as documented.

Generated requests run with an operator's key (the widest reach) against a seeded two-tenant
store, so valid ids exist alongside the random ones schemathesis makes up.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from tests.world import build_world

from callwarden.adapters.api.app import create_app
from callwarden.platform import Platform
from callwarden.settings import Settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


_DATA = Path(tempfile.mkdtemp(prefix="callwarden-fuzz-"))
_PLATFORM = Platform.build(Settings(database_url=f"sqlite:///{_DATA / 'callwarden.db'}"))
WORLD = build_world(_PLATFORM)
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(_PLATFORM))


@pytest.fixture(scope="module", autouse=True)
def _close_platform() -> Iterator[None]:
    yield
    _PLATFORM.close()
    shutil.rmtree(_DATA, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_never_answers_5xx_and_matches_its_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(headers=WORLD.headers(WORLD.operator_key), checks=CHECKS)
