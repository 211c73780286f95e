"""The notifications API: subscriptions by tenant and platform-wide, deliveries, test sends."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi.testclient import TestClient
from tests.adapters.notify.notify_receivers import http_receiver
from tests.world import World

from callwarden.adapters.api.app import create_app
from callwarden.adapters.notify.webhook import verify_signature
from callwarden.core.audit import AuditFact
from callwarden.services.governance import utcnow


def _create(
    world: World, key: str, tenant: int | None, target: str, **extra: object
) -> dict[str, Any]:
    """Create a webhook subscription through the API; the answer's body with its status."""
    path = (
        f"/v1/tenants/{world.tenants[tenant]}/notifications/subscriptions"
        if tenant is not None
        else "/v1/notifications/subscriptions"
    )
    body = {"channel": "webhook", "target": target, "actions": ["spend.threshold"], **extra}
    response = world.client.post(path, json=body, headers=world.headers(key))
    return {"status": response.status_code, **response.json()}


def test_a_tenant_admin_subscribes_their_tenant_and_gets_the_secret_once(world: World) -> None:
    created = _create(world, world.admin_keys[0], 0, "https://hooks.acme.example/cw")
    assert created["status"] == 201
    assert created["secret"].startswith("whsec_")
    assert created["tenant_id"] == world.tenants[0]
    got = world.client.get(
        f"/v1/notifications/subscriptions/{created['id']}",
        headers=world.headers(world.admin_keys[0]),
    )
    assert got.status_code == 200
    assert "secret" not in got.json()
    listed = world.client.get(
        "/v1/notifications/subscriptions", headers=world.headers(world.admin_keys[0])
    ).json()
    assert [s["id"] for s in listed["items"]] == [created["id"]]


def test_only_operators_subscribe_to_every_tenant(world: World) -> None:
    refused = _create(world, world.admin_keys[0], None, "https://hooks.acme.example/cw")
    assert refused["status"] == 403
    created = _create(world, world.operator_key, None, "https://noc.example/cw")
    assert created["status"] == 201
    assert created["tenant_id"] is None


def test_another_tenants_subscription_is_not_found(world: World) -> None:
    theirs = _create(world, world.admin_keys[1], 1, "https://hooks.t1.example/cw")
    for method, suffix in (("GET", ""), ("DELETE", ""), ("GET", "/deliveries"), ("POST", "/test")):
        response = world.client.request(
            method,
            f"/v1/notifications/subscriptions/{theirs['id']}{suffix}",
            headers=world.headers(world.admin_keys[0]),
        )
        assert response.status_code == 404, (method, suffix, response.text)


def test_a_bad_target_is_a_422_naming_the_field(world: World) -> None:
    refused = _create(world, world.operator_key, 0, "gopher://hooks.example/x")
    assert refused["status"] == 422
    assert refused["error"]["field"] == "target"
    email_off = _create(world, world.operator_key, 0, "noc@x.example", channel="email")
    assert email_off["status"] == 422
    assert email_off["error"]["field"] == "channel"


def test_a_test_send_reaches_the_receiver_signed_and_is_logged(world: World) -> None:
    with http_receiver() as receiver:
        created = _create(world, world.admin_keys[0], 0, receiver.url)
        sent = world.client.post(
            f"/v1/notifications/subscriptions/{created['id']}/test",
            headers=world.headers(world.admin_keys[0]),
        )
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "delivered"
    (request,) = receiver.received
    assert verify_signature(
        created["secret"], request.headers["x-callwarden-signature"], request.body
    )
    log = world.client.get(
        f"/v1/notifications/subscriptions/{created['id']}/deliveries",
        headers=world.headers(world.admin_keys[0]),
    ).json()
    assert [d["event"] for d in log["items"]] == ["notification.test"]


def test_a_deleted_subscription_is_gone(world: World) -> None:
    created = _create(world, world.admin_keys[0], 0, "https://hooks.acme.example/cw")
    url = f"/v1/notifications/subscriptions/{created['id']}"
    assert world.client.delete(url, headers=world.headers(world.admin_keys[0])).status_code == 204
    assert world.client.get(url, headers=world.headers(world.admin_keys[0])).status_code == 404


def test_the_serving_app_delivers_a_spend_alert_to_a_subscribed_webhook(world: World) -> None:
    tenant = world.tenants[0]
    with http_receiver() as receiver:
        with TestClient(create_app(world.platform)) as client:
            created = client.post(
                f"/v1/tenants/{tenant}/notifications/subscriptions",
                json={"channel": "webhook", "target": receiver.url, "actions": ["spend.*"]},
                headers=world.headers(world.admin_keys[0]),
            ).json()
            with world.platform.store.transaction() as tx:
                tx.append_audit(
                    AuditFact(
                        actor="system",
                        action="spend.threshold",
                        subject_type="tenant",
                        subject_id=tenant,
                        tenant_id=tenant,
                        reason="the month's charges reached hard limit 50%",
                        clause_ids=("LIM-1", "LIM-3"),
                        details={"month": "2026-11", "mark": "hard:50"},
                    ),
                    utcnow(),
                )
            give_up = time.monotonic() + 30
            while not receiver.received and time.monotonic() < give_up:
                time.sleep(0.05)
        (request,) = receiver.received
    assert json.loads(request.body)["details"]["mark"] == "hard:50"
    assert verify_signature(
        created["secret"], request.headers["x-callwarden-signature"], request.body
    )
