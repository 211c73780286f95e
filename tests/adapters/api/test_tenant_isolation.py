"""Tenant isolation: every endpoint under a tenant refuses another tenant's key.

The routes are read from the application itself, so a new endpoint is covered the day it is
added; a body model the table below does not know fails the test until it is added here.
"""

from __future__ import annotations

import re

import pytest
from tests.world import World

from callwarden.adapters.api.app import create_app
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import AuditQuery, PageRequest

VALID_BODIES: dict[str, dict[str, object]] = {
    "TenantPatch": {"name": "Renamed"},
    "SuspendIn": {"reason": "test", "clause_ids": ["GOV-2"]},
    "ReinstateIn": {"reason": "test"},
    "OrderIn": {"seat_limit": 5},
    "UserIn": {"email": "intruder@x.example", "display_name": "Intruder"},
    "UserPatch": {"display_name": "Renamed"},
    "ActivateIn": {},
    "KeyIn": {"name": "stolen"},
    "NumberIn": {"e164": "+442079460999"},
    "NumberPatch": {"ownership": "verified"},
    "NumberStatusIn": {"reason": "test"},
    "TrunkIn": {"name": "T", "source_addresses": ["198.51.100.1/32"]},
    "TrunkPatch": {"name": "Renamed"},
    "PolicyBody": {"mode": "observe"},
    "DetectorPolicyBody": {"mode": "observe"},
    "ThrottleIn": {"rates": {"fraction": 0.5}, "reason": "test"},
    "ThrottleLiftIn": {"reason": "test"},
    "RateDeckAssignmentIn": {"deck_id": "rd_0123456789abcdef"},
    "ChargeLimitsIn": {"hard_minor": 1, "soft_minor": None},
    "SimBoxConsentIn": {"reference": "Annex 4"},
    "WithdrawIn": {"reason": "test"},
    "SubscriptionIn": {
        "channel": "webhook",
        "target": "https://hooks.intruder.example/cw",
        "actions": ["spend.threshold"],
    },
}


def tenant_routes() -> list[tuple[str, str, str | None]]:
    """(method, path, body schema) of every operation under /v1/tenants/{tenant_id}."""
    spec = create_app(None).openapi()  # type: ignore[arg-type]  # only the route table is read
    routes = []
    for path, operations in spec["paths"].items():
        if "{tenant_id}" not in path:
            continue
        for method, operation in operations.items():
            ref = (
                operation.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
                .get("$ref")
            )
            routes.append((method.upper(), path, ref.rsplit("/", 1)[-1] if ref else None))
    return routes


ROUTES = tenant_routes()


def test_the_route_table_is_not_empty() -> None:
    assert len(ROUTES) >= 30


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_another_tenants_key_is_refused(
    world: World, method: str, path: str, body: str | None
) -> None:
    victim = 1
    with world.platform.store.transaction() as tx:
        key_id = tx.list_api_keys(world.admins[victim], PageRequest()).items[0].id
    values = {
        "tenant_id": world.tenants[victim],
        "user_id": world.admins[victim],
        "number_id": world.numbers[victim],
        "trunk_id": world.trunks[victim],
        "order_id": world.orders[victim],
        "key_id": key_id,
        "rule": "caller_id",
        "detector": "irsf",
        "throttle_id": "th_0123456789abcdef",
    }
    url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
    if body is not None:
        assert body in VALID_BODIES, f"add a valid {body} to VALID_BODIES"
    before = world.platform.audit.list(
        SYSTEM, AuditQuery(tenant_id=world.tenants[victim]), PageRequest(limit=1)
    ).total
    response = world.client.request(
        method,
        url,
        json=VALID_BODIES[body] if body else None,
        headers=world.headers(world.admin_keys[0]),
    )
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"
    after = world.platform.audit.list(
        SYSTEM, AuditQuery(tenant_id=world.tenants[victim]), PageRequest(limit=1)
    ).total
    assert after == before


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_the_operator_reaches_every_tenant_route(
    world: World, method: str, path: str, body: str | None
) -> None:
    """The same calls with the operator's key are not refused: the 403s above are isolation."""
    with world.platform.store.transaction() as tx:
        key_id = tx.list_api_keys(world.admins[1], PageRequest()).items[0].id
    values = {
        "tenant_id": world.tenants[1],
        "user_id": world.admins[1],
        "number_id": world.numbers[1],
        "trunk_id": world.trunks[1],
        "order_id": world.orders[1],
        "key_id": key_id,
        "rule": "caller_id",
        "detector": "irsf",
        "throttle_id": "th_0123456789abcdef",
    }
    url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
    response = world.client.request(
        method,
        url,
        json=VALID_BODIES[body] if body else None,
        headers=world.headers(world.operator_key),
    )
    assert response.status_code not in (401, 403), response.text
    assert response.status_code < 500
