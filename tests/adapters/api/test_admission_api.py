"""The admission endpoints over HTTP: decisions, events, bad input, rule policies."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send
from tests.world import World


def attempt(world: World, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "call_id": "a1b2c3@pbx.example",
        "tenant_id": world.tenants[0],
        "user_id": world.admins[0],
        "caller": "+442079460000",
        "destination": "+442079460123",
    }
    body.update(changes)
    return body


def decide(world: World, **changes: object) -> dict[str, object]:
    r = world.client.post(
        "/v1/admission/calls",
        json=attempt(world, **changes),
        headers=world.headers(world.operator_key),
    )
    assert r.status_code == 200, r.text
    result: dict[str, object] = r.json()
    return result


def test_an_ordinary_call_is_admitted_with_a_maximum_duration(world: World) -> None:
    d = decide(world)
    assert d["admit"] is True and d["sip_status"] == 200 and d["max_duration_s"] == 14_400


def test_a_premium_destination_is_refused_with_403_and_frd_1(world: World) -> None:
    d = decide(world, destination="+449098765432")
    assert (d["admit"], d["sip_status"], d["clause_ids"]) == (False, 403, ["FRD-1"])


def test_the_tenant_is_found_by_its_trunk_address(world: World) -> None:
    d = decide(
        world,
        tenant_id=None,
        source_ip="192.0.2.2",
        user_id=world.admins[1],
        caller="+48123456789",
        destination="+48221234567",
    )
    assert d["admit"] is True


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"call_id": ""}, "body.call_id"),
        ({"destination": 12345}, "body.destination"),
        ({"direction": "sideways"}, "body.direction"),
        ({"tenant_id": "acme"}, "body.tenant_id"),
        ({"tenant_id": None}, "body"),
        ({"at": "yesterday"}, "body.at"),
        ({"at": 1e300}, "body.at"),
        ({"source_ip": "not an ip"}, "body.source_ip"),
        ({"surprise": 1}, "body.surprise"),
    ],
)
def test_a_malformed_attempt_is_a_422_naming_the_field(
    world: World, changes: dict[str, object], field: str
) -> None:
    r = world.client.post(
        "/v1/admission/calls",
        json=attempt(world, **changes),
        headers=world.headers(world.operator_key),
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field


@pytest.mark.parametrize(
    "destination", ["", "   ", "\u0000", "+", "+00000000000000000000", "9" * 128, "tel:abc", "☎"]
)
def test_absurd_destinations_are_refused_never_a_5xx(world: World, destination: str) -> None:
    d = decide(world, destination=destination)
    assert d["admit"] is False and d["sip_status"] == 484 and d["clause_ids"] == ["FRD-1"]


def test_an_unknown_tenant_is_refused_but_its_emergency_call_admitted(world: World) -> None:
    assert decide(world, tenant_id="tn_0000000000000000")["clause_ids"] == ["ACC-1"]
    d = decide(world, tenant_id="tn_0000000000000000", destination="112")
    assert d["admit"] is True and d["emergency"] is True


def test_call_events_release_leases_and_repeat_harmlessly(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    tid = world.tenants[0]
    assert decide(world)["admit"]
    leases = c.get(f"/v1/admission/tenants/{tid}/leases", headers=op).json()
    assert leases["calls"] == ["a1b2c3@pbx.example"]
    url = "/v1/admission/calls/a1b2c3@pbx.example/events"
    answered = c.post(url, json={"event": "answered", "tenant_id": tid}, headers=op).json()
    assert answered["changed"] is True
    ended = c.post(url, json={"event": "ended", "tenant_id": tid, "duration_s": 42}, headers=op)
    assert ended.json()["changed"] is True
    again = c.post(url, json={"event": "ended", "tenant_id": tid}, headers=op)
    assert again.status_code == 200 and again.json()["changed"] is False
    assert c.get(f"/v1/admission/tenants/{tid}/leases", headers=op).json()["calls"] == []


def test_a_tenant_key_may_not_ask_for_admission(world: World) -> None:
    r = world.client.post(
        "/v1/admission/calls", json=attempt(world), headers=world.headers(world.admin_keys[0])
    )
    assert r.status_code == 403


def test_a_rule_policy_set_over_http_is_audited_and_applied(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    tid = world.tenants[0]
    r = c.put(f"/v1/tenants/{tid}/rules/destination_type", json={"mode": "observe"}, headers=op)
    assert r.status_code == 200 and r.json()["mode"] == "observe"
    d = decide(world, destination="+449098765432")
    assert d["admit"] is True and d["observed"][0]["rule"] == "destination_type"
    audit = c.get(f"/v1/tenants/{tid}/audit?action=rule_policy.set", headers=op).json()
    assert audit["items"][0]["details"]["mode"] == "observe"
    assert c.delete(f"/v1/tenants/{tid}/rules/destination_type", headers=op).status_code == 204
    assert decide(world, destination="+449098765432")["admit"] is False


def test_an_unknown_rule_is_a_422_listing_the_known_ones(world: World) -> None:
    r = world.client.put(
        f"/v1/tenants/{world.tenants[0]}/rules/no_such_rule",
        json={"mode": "observe"},
        headers=world.headers(world.operator_key),
    )
    assert r.status_code == 422 and "caller_id" in r.json()["error"]["message"]


def test_the_high_risk_list_is_replaced_and_applied_at_once(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    body = {"prefixes": [{"prefix": "44207946012", "label": "IRSF range"}, {"prefix": "882"}]}
    assert c.put("/v1/high-risk-prefixes", json=body, headers=op).json() == {"count": 2}
    d = decide(world)
    assert d["admit"] is False and "IRSF range" in d["reason"]
    dup = {"prefixes": [{"prefix": "44"}, {"prefix": "44"}]}
    r = c.put("/v1/high-risk-prefixes", json=dup, headers=op)
    assert r.status_code == 422 and "44" in r.json()["error"]["message"]


def test_the_rule_catalogue_lists_rules_with_their_clauses(world: World) -> None:
    rules = world.client.get(
        "/v1/admission/rules", headers=world.headers(world.operator_key)
    ).json()
    assert [r["id"] for r in rules][:2] == ["tenant_status", "user_status"]
    assert {"id": "concurrent_calls", "clause_ids": ["LIM-2"]}.items() <= rules[9].items()


def test_recent_decisions_and_metrics_show_what_was_decided(world: World) -> None:
    decide(world, destination="+449098765432")
    decide(world, call_id="second")
    op = world.headers(world.operator_key)
    recent = world.client.get("/v1/admission/recent?limit=2", headers=op).json()
    assert [r["call_id"] for r in recent] == ["second", "a1b2c3@pbx.example"]
    assert recent[1]["decision"]["refused_by"] == "destination_type"
    metrics = world.client.get("/metrics").text
    assert (
        'callwarden_admission_decisions_total{outcome="refused",rule="destination_type"}' in metrics
    )


def test_the_hot_path_is_served_ahead_of_the_framework_and_still_documented(
    world: World,
) -> None:
    from callwarden.adapters.api import hot_path
    from callwarden.adapters.api.routes import admission

    served: list[str] = []
    original = hot_path.serve

    async def spy(*args: object) -> None:
        served.append("hot path")
        await original(*args)  # type: ignore[arg-type]

    scope = {"type": "http", "method": "POST", "path": "/v1/admission/calls"}
    assert hot_path.handler_for(scope) == (admission._serve_attempt, "")
    events = {**scope, "path": "/v1/admission/calls/c-1@pbx/events"}
    assert hot_path.handler_for(events) == (admission._serve_event, "c-1@pbx")
    assert hot_path.handler_for({**scope, "method": "GET"}) is None
    assert hot_path.handler_for({**scope, "path": "/v1/admission/calls/a/b/events"}) is None
    hot_path.serve = spy  # type: ignore[assignment]
    try:
        assert decide(world)["admit"] is True
        assert world.client.get("/healthz").status_code == 200
    finally:
        hot_path.serve = original  # type: ignore[assignment]
    assert served == ["hot path"]
    spec = world.client.get("/openapi.json").json()
    assert "/v1/admission/calls" in spec["paths"]
    assert "/v1/admission/calls/{call_id}/events" in spec["paths"]


def _through_the_framework(world: World) -> TestClient:
    """A client of the same app that skips the hot path: the documented path operations."""
    from fastapi import FastAPI

    app = world.client.app
    assert isinstance(app, FastAPI)

    async def framework_only(scope: Scope, receive: Receive, send: Send) -> None:
        await FastAPI.__call__(app, scope, receive, send)

    return TestClient(framework_only, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "body",
    [
        {"destination": "+442079460123"},
        {"destination": "+449098765432"},
        {"destination": "112"},
        {"destination": "not a number"},
        {"destination": 12345},
        {"call_id": ""},
        {"tenant_id": None},
        {"at": "yesterday"},
    ],
)
def test_the_hot_path_answers_exactly_as_the_documented_path_operation(
    world: World, body: dict[str, object]
) -> None:
    framework = _through_the_framework(world)
    key = world.headers(world.operator_key)
    answers = []
    for n, client in enumerate((world.client, framework)):
        r = client.post(
            "/v1/admission/calls",
            json=attempt(world, **{"call_id": f"same-{n}", **body}),
            headers=key,
        )
        answers.append((r.status_code, r.headers["content-type"], r.json()))
    assert answers[0] == answers[1]


def test_the_hot_path_answers_errors_in_the_one_shape(world: World) -> None:
    no_key = world.client.post("/v1/admission/calls", json=attempt(world))
    assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "unauthorized"
    assert no_key.headers["www-authenticate"] == "Bearer"
    bad_key = world.client.post(
        "/v1/admission/calls", json=attempt(world), headers=world.headers("cw_nope")
    )
    assert bad_key.status_code == 401
    not_json = world.client.post(
        "/v1/admission/calls", content=b"{", headers=world.headers(world.operator_key)
    )
    assert not_json.status_code == 422 and not_json.json()["error"]["field"] == "body"
    huge = world.client.post(
        "/v1/admission/calls",
        json=attempt(world, caller="x" * 20_000),
        headers=world.headers(world.operator_key),
    )
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"


def test_a_body_sent_in_chunks_is_read_whole(world: World) -> None:
    import orjson

    raw = orjson.dumps(attempt(world, call_id="chunked"))

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(raw), 7):
            yield raw[i : i + 7]

    r = world.client.post(
        "/v1/admission/calls", content=chunks(), headers=world.headers(world.operator_key)
    )
    assert r.status_code == 200 and r.json()["admit"] is True


def test_an_unexpected_failure_on_the_hot_path_is_a_500_in_the_one_shape(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callwarden.adapters.api.routes import admission

    async def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("the counters exploded")

    monkeypatch.setattr(admission, "_decision", broken)
    r = world.client.post(
        "/v1/admission/calls", json=attempt(world), headers=world.headers(world.operator_key)
    )
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert "exploded" not in r.text


def test_a_control_character_in_an_event_call_id_is_a_422(world: World) -> None:
    r = world.client.post(
        "/v1/admission/calls/a%01b/events",
        json={"event": "ended", "tenant_id": world.tenants[0]},
        headers=world.headers(world.operator_key),
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "path.call_id"


def test_the_hot_path_answer_has_exactly_the_documented_shape(world: World) -> None:
    from callwarden.adapters.api.routes.admission import DecisionOut

    for destination in ("+442079460123", "+449098765432", "112"):
        body = decide(world, destination=destination, call_id=f"shape-{destination}")
        assert DecisionOut.model_validate(body).model_dump() == body
