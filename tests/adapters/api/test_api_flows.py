"""The HTTP API: CRUD flows, pagination, filters, and errors that name the field."""

from __future__ import annotations

from tests.world import World


def test_an_operator_onboards_a_tenant_with_seats_users_and_numbers(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    tenant = c.post(
        "/v1/tenants",
        json={
            "name": "Nieuw BV",
            "country": "nl",
            "timezone": "Europe/Amsterdam",
            "plan_id": world.plan_id,
        },
        headers=op,
    )
    assert tenant.status_code == 201, tenant.text
    tid = tenant.json()["id"]
    assert tenant.json()["country"] == "NL"
    assert (
        c.post(f"/v1/tenants/{tid}/orders", json={"seat_limit": 1}, headers=op).status_code == 201
    )
    user = c.post(
        f"/v1/tenants/{tid}/users",
        json={"email": "Jan@Nieuw.example", "display_name": "Jan", "role": "agent"},
        headers=op,
    ).json()
    assert user["status"] == "invited" and user["email"] == "jan@nieuw.example"
    activated = c.post(f"/v1/tenants/{tid}/users/{user['id']}/activate", json={}, headers=op)
    assert activated.json()["status"] == "active"
    seats = c.get(f"/v1/tenants/{tid}/seats", headers=op).json()
    assert seats == {"limit": 1, "used": 1, "available": 0}
    number = c.post(f"/v1/tenants/{tid}/numbers", json={"e164": "+31201234567"}, headers=op)
    assert number.status_code == 201


def test_activation_past_the_seat_limit_is_a_409_citing_acc_3(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    tid = world.tenants[0]
    c.post(f"/v1/tenants/{tid}/users/{world.agents[0]}/activate", json={}, headers=op)
    ids = [
        c.post(
            f"/v1/tenants/{tid}/users",
            json={"email": f"x{i}@t.example", "display_name": "X"},
            headers=op,
        ).json()["id"]
        for i in range(2)
    ]
    assert (
        c.post(f"/v1/tenants/{tid}/users/{ids[0]}/activate", json={}, headers=op).status_code == 200
    )
    refused = c.post(f"/v1/tenants/{tid}/users/{ids[1]}/activate", json={}, headers=op)
    assert refused.status_code == 409
    assert refused.json()["error"]["clause_ids"] == ["ACC-3"]
    assert refused.json()["error"]["code"] == "policy_refusal"


def test_a_suspension_answers_with_its_reason_and_clauses(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    r = c.post(
        f"/v1/tenants/{world.tenants[1]}/suspend",
        json={"reason": "unpaid invoices", "clause_ids": ["GOV-2"]},
        headers=op,
    )
    assert r.status_code == 200
    assert r.json()["status"] == "suspended"
    assert r.json()["suspension"]["clause_ids"] == ["GOV-2"]
    audit = c.get(f"/v1/tenants/{world.tenants[1]}/audit?action=tenant.suspended", headers=op)
    assert audit.json()["items"][0]["reason"] == "unpaid invoices"


def test_lists_paginate_and_filter(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    first = c.get("/v1/tenants?limit=1", headers=op).json()
    assert (first["total"], len(first["items"]), first["next_offset"]) == (2, 1, 1)
    second = c.get("/v1/tenants?limit=1&offset=1", headers=op).json()
    assert second["next_offset"] is None and second["items"][0]["id"] != first["items"][0]["id"]
    assert c.get("/v1/tenants?country=PL", headers=op).json()["total"] == 1
    users = c.get(f"/v1/tenants/{world.tenants[0]}/users?role=tenant_admin", headers=op).json()
    assert [u["id"] for u in users["items"]] == [world.admins[0]]
    numbers = c.get(f"/v1/tenants/{world.tenants[1]}/numbers?prefix=48", headers=op).json()
    assert numbers["total"] == 1


def test_a_malformed_body_is_a_422_naming_the_field(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    r = c.post(
        "/v1/tenants",
        json={
            "name": "X",
            "country": "Poland",
            "timezone": "Europe/Warsaw",
            "plan_id": world.plan_id,
        },
        headers=op,
    )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "body.country"
    r = c.post(f"/v1/tenants/{world.tenants[0]}/numbers", json={"e164": "+4400000000"}, headers=op)
    assert r.status_code == 422 and r.json()["error"]["field"] == "e164"
    r = c.post(
        "/v1/tenants", content=b"{not json", headers={**op, "content-type": "application/json"}
    )
    assert r.status_code == 422


def test_control_characters_and_unknown_fields_are_refused(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    r = c.patch(f"/v1/tenants/{world.tenants[0]}", json={"name": "a\u0000b"}, headers=op)
    assert r.status_code == 422 and r.json()["error"]["field"] == "body.name"
    r = c.patch(f"/v1/tenants/{world.tenants[0]}", json={"nmae": "typo"}, headers=op)
    assert r.status_code == 422 and r.json()["error"]["field"] == "body.nmae"


def test_a_missing_or_unknown_key_is_a_401(world: World) -> None:
    c = world.client
    assert c.get("/v1/tenants").status_code == 401
    r = c.get("/v1/tenants", headers=world.headers("cw_nope_nope"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    assert c.get("/v1/tenants", headers={"X-API-Key": world.operator_key}).status_code == 200


def test_a_revoked_key_stops_working_at_once(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    tid, uid = world.tenants[0], world.admins[0]
    issued = c.post(f"/v1/tenants/{tid}/users/{uid}/api-keys", json={"name": "ci"}, headers=op)
    secret, key_id = issued.json()["secret"], issued.json()["id"]
    assert c.get(f"/v1/tenants/{tid}", headers=world.headers(secret)).status_code == 200
    assert (
        c.delete(f"/v1/tenants/{tid}/users/{uid}/api-keys/{key_id}", headers=op).status_code == 200
    )
    assert c.get(f"/v1/tenants/{tid}", headers=world.headers(secret)).status_code == 401


def test_roles_limit_what_a_tenant_key_may_do(world: World) -> None:
    c, admin = world.client, world.headers(world.admin_keys[0])
    tid = world.tenants[0]
    assert c.get("/v1/plans", headers=admin).status_code == 403
    assert c.get("/v1/audit", headers=admin).status_code == 403
    r = c.post(
        f"/v1/tenants/{tid}/suspend", json={"reason": "x", "clause_ids": ["GOV-2"]}, headers=admin
    )
    assert r.status_code == 403
    listed = c.get("/v1/tenants", headers=admin).json()
    assert [t["id"] for t in listed["items"]] == [tid]
    assert c.get(f"/v1/tenants/{tid}/users", headers=admin).status_code == 200


def test_health_ready_and_metrics_answer(world: World) -> None:
    c = world.client
    assert c.get("/healthz").json() == {"status": "ok"}
    ready = c.get("/readyz").json()
    assert ready["ready"] is True and ready["services"]["database"] == "reachable"
    assert "python_info" in c.get("/metrics").text


def test_the_openapi_document_is_published(world: World) -> None:
    spec = world.client.get("/openapi.json").json()
    assert "/v1/tenants/{tenant_id}/users/{user_id}/activate" in spec["paths"]
    assert spec["components"]["schemas"]["ErrorBody"]


def test_audit_verify_over_http_reports_an_intact_chain(world: World) -> None:
    r = world.client.get("/v1/audit/verify", headers=world.headers(world.operator_key)).json()
    assert r["intact"] is True and r["entries"] > 10


def test_a_query_parameter_given_twice_is_a_422(world: World) -> None:
    r = world.client.get(
        "/v1/tenants?country=PL&country=GB", headers=world.headers(world.operator_key)
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "query.country"
