"""Surveillance configuration and throttles over HTTP: operators list the detectors, set
detector policies per default, plan and tenant and the action policy (audited with before and
after); a malformed policy is a 422 naming the field; tenant users are refused with 403; a
policy set through the API is in force on the next record, and a throttle it triggers refuses
the tenant's next attempts past the tightened rate until an operator lifts it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from tests.world import World, premium_burst

from callwarden.core.admission.attempt import CallAttempt, Direction
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import AuditQuery, PageRequest


def audit_of(world: World, action: str) -> list[Any]:
    return world.platform.audit.list(SYSTEM, AuditQuery(action=action), PageRequest(limit=50)).items


def test_the_detectors_are_listed_with_clauses_and_parameter_defaults(world: World) -> None:
    answer = world.client.get(
        "/v1/surveillance/detectors", headers=world.headers(world.operator_key)
    )
    assert answer.status_code == 200
    detectors = {d["id"]: d for d in answer.json()}
    assert {"irsf", "wangiri", "robocall", "fair_use", "caller_rotation"} <= set(detectors)
    irsf = detectors["irsf"]
    assert irsf["clause_ids"] == ["FRD-1", "FRD-2"] and irsf["kinds"] == ["call"]
    params = {p["name"]: p for p in irsf["params"]}
    assert params["fast_score"] == {"name": "fast_score", "type": "float", "default": 3.0}
    assert params["learning_calls"]["type"] == "int"
    assert irsf["default_policy"] is None


def test_a_tenant_policy_is_set_read_and_dropped_with_audit_entries(world: World) -> None:
    headers = world.headers(world.operator_key)
    url = f"/v1/tenants/{world.tenants[0]}/detectors/irsf"
    body = {
        "mode": "enforce",
        "params": {"fast_score": 4.5, "learning_calls": 10},
        "allow_users": [world.agents[0]],
        "allow_numbers": ["+442079460000"],
        "allow_destinations": ["44909"],
    }
    put = world.client.put(url, json=body, headers=headers)
    assert put.status_code == 200, put.text
    stored = put.json()
    assert stored["mode"] == "enforce" and stored["params"]["fast_score"] == 4.5
    assert stored["params"]["slow_score"] == 15.0  # fields not given take their defaults
    read = world.client.get(f"/v1/tenants/{world.tenants[0]}/detectors", headers=headers)
    assert read.json() == {"irsf": stored}
    admin_view = world.client.get(
        f"/v1/tenants/{world.tenants[0]}/detectors", headers=world.headers(world.admin_keys[0])
    )
    assert admin_view.status_code == 200 and admin_view.json() == {"irsf": stored}
    (entry,) = audit_of(world, "detector_policy.set")
    assert entry.tenant_id == world.tenants[0] and entry.actor != "system"
    assert entry.details["before"] is None and entry.details["after"]["mode"] == "enforce"
    assert entry.details["after"]["params"]["fast_score"] == "4.5"
    assert entry.clause_ids == ("FRD-1", "FRD-2", "GOV-7")
    again = world.client.put(url, json={"mode": "off"}, headers=headers)
    assert again.status_code == 200
    second = audit_of(world, "detector_policy.set")[0]
    assert (
        second.details["before"]["mode"] == "enforce" and second.details["after"]["mode"] == "off"
    )
    assert world.client.delete(url, headers=headers).status_code == 204
    assert world.client.delete(url, headers=headers).status_code == 404
    assert (
        world.client.get(f"/v1/tenants/{world.tenants[0]}/detectors", headers=headers).json() == {}
    )
    assert audit_of(world, "detector_policy.deleted")[0].details["before"]["mode"] == "off"


def test_plan_and_default_policies_are_set_and_shown(world: World) -> None:
    headers = world.headers(world.operator_key)
    plan = world.client.put(
        f"/v1/plans/{world.plan_id}/detectors/robocall",
        json={"mode": "enforce", "params": {"min_attempts": 500}},
        headers=headers,
    )
    assert plan.status_code == 200 and plan.json()["params"]["min_attempts"] == 500
    listed = world.client.get(f"/v1/plans/{world.plan_id}/detectors", headers=headers).json()
    assert list(listed) == ["robocall"]
    default = world.client.put(
        "/v1/surveillance/detectors/wangiri", json={"mode": "enforce"}, headers=headers
    )
    assert default.status_code == 200 and default.json()["params"] is None
    detectors = world.client.get("/v1/surveillance/detectors", headers=headers).json()
    shown = {d["id"]: d["default_policy"] for d in detectors}
    assert shown["wangiri"]["mode"] == "enforce" and shown["irsf"] is None
    assert (
        world.client.delete("/v1/surveillance/detectors/wangiri", headers=headers).status_code
        == 204
    )


def test_malformed_policies_are_a_422_naming_the_field(world: World) -> None:
    headers = world.headers(world.operator_key)
    url = f"/v1/tenants/{world.tenants[0]}/detectors/irsf"
    cases: list[tuple[str, dict[str, Any], str]] = [
        (url, {"params": {"bogus": 1}}, "params.bogus"),
        (url, {"params": {"fast_score": -2}}, "params.fast_score"),
        (url, {"params": {"learning_calls": 2.5}}, "params.learning_calls"),
        (url, {"params": {"unrated_weight": True}}, "params.unrated_weight"),
        (url, {"mode": "sometimes"}, "body.mode"),
        (url, {"allow_destinations": ["+44"]}, "body.allow_destinations.0"),
        (url, {"allow_users": ["bob"]}, "body.allow_users.0"),
        (url, {"colour": "red"}, "body.colour"),
        (f"/v1/tenants/{world.tenants[0]}/detectors/nope", {}, "detector"),
        (f"/v1/tenants/{world.tenants[0]}/detectors/Bad-Id", {}, "path.detector"),
    ]
    for path, body, field in cases:
        answer = world.client.put(path, json=body, headers=headers)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["field"] == field, (body, answer.json())
    missing = world.client.put(
        "/v1/plans/pl_0123456789abcdef/detectors/irsf", json={}, headers=headers
    )
    assert missing.status_code == 404
    assert audit_of(world, "detector_policy.set") == []


def test_tenant_users_may_not_change_the_configuration(world: World) -> None:
    headers = world.headers(world.admin_keys[0])
    own = f"/v1/tenants/{world.tenants[0]}/detectors/irsf"
    refused = [
        world.client.put(own, json={"mode": "off"}, headers=headers),
        world.client.put(own, json={"params": {"bogus": 1}}, headers=headers),
        world.client.delete(own, headers=headers),
        world.client.get(f"/v1/plans/{world.plan_id}/detectors", headers=headers),
        world.client.put(f"/v1/plans/{world.plan_id}/detectors/irsf", json={}, headers=headers),
        world.client.get("/v1/surveillance/detectors", headers=headers),
        world.client.put("/v1/surveillance/detectors/irsf", json={}, headers=headers),
        world.client.get("/v1/surveillance/action-policy", headers=headers),
        world.client.put("/v1/surveillance/action-policy", json={}, headers=headers),
        world.client.delete("/v1/surveillance/action-policy", headers=headers),
        world.client.post(
            f"/v1/tenants/{world.tenants[0]}/throttles",
            json={"rates": {"fraction": 0.5}, "reason": "mine"},
            headers=headers,
        ),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert audit_of(world, "detector_policy.set") == []


def test_the_action_policy_is_read_replaced_and_reset(world: World) -> None:
    headers = world.headers(world.operator_key)
    default = world.client.get("/v1/surveillance/action-policy", headers=headers).json()
    assert default == {
        "threshold": "high",
        "by_severity": {},
        "expire_after_s": {},
        "throttle": {"fraction": 0.1, "attempts_per_second": None, "attempts_per_minute": None},
    }
    body = {
        "threshold": "medium",
        "by_severity": {"critical": "suspend_tenant", "high": "throttle"},
        "expire_after_s": {"throttle": 3600},
        "throttle": {"attempts_per_second": 1},
    }
    put = world.client.put("/v1/surveillance/action-policy", json=body, headers=headers)
    assert put.status_code == 200, put.text
    assert put.json()["throttle"] == {
        "fraction": None,
        "attempts_per_second": 1,
        "attempts_per_minute": None,
    }
    assert world.client.get("/v1/surveillance/action-policy", headers=headers).json() == put.json()
    (entry,) = audit_of(world, "action_policy.set")
    assert entry.details["before"]["threshold"] == "high"
    assert entry.details["after"]["by_severity"] == {
        "critical": "suspend_tenant",
        "high": "throttle",
    }
    for bad, field in [
        ({"threshold": "severe"}, "body.threshold"),
        ({"by_severity": {"high": "explode"}}, "body.by_severity.high"),
        ({"expire_after_s": {"throttle": 0}}, "body.expire_after_s.throttle"),
        ({"throttle": {"fraction": 1.5}}, "body.throttle.fraction"),
        ({"throttle": {}}, "throttle.fraction"),
    ]:
        answer = world.client.put("/v1/surveillance/action-policy", json=bad, headers=headers)
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["error"]["field"] == field, (bad, answer.json())
    assert world.client.delete("/v1/surveillance/action-policy", headers=headers).status_code == 204
    assert world.client.get("/v1/surveillance/action-policy", headers=headers).json() == default


def attempt(world: World, n: int, at: float) -> CallAttempt:
    return CallAttempt(
        call_id=f"api-{n}",
        destination=f"+44207946{n:04d}",
        direction=Direction.OUTBOUND,
        at=at,
        tenant_id=world.tenants[0],
        caller="+442079460000",
    )


def test_an_api_configured_throttle_action_holds_admission_until_lifted(world: World) -> None:
    headers = world.headers(world.operator_key)
    assert (
        world.client.put(
            "/v1/surveillance/detectors/irsf", json={"mode": "enforce"}, headers=headers
        ).status_code
        == 200
    )
    policy = {"by_severity": {"high": "throttle"}, "throttle": {"attempts_per_second": 1}}
    assert (
        world.client.put("/v1/surveillance/action-policy", json=policy, headers=headers).status_code
        == 200
    )
    (case,) = world.platform.surveillance.process(premium_burst(world, 0, 12))
    assert [a.kind.value for a in case.actions] == ["throttle"]
    throttles = world.client.get(
        f"/v1/tenants/{world.tenants[0]}/throttles", headers=world.headers(world.admin_keys[0])
    )
    assert throttles.status_code == 200  # the tenant sees the throttle on itself
    assert throttles.json()["total"] == 1
    (throttle,) = throttles.json()["items"]
    assert throttle["in_force"] and throttle["user_id"] is None
    assert throttle["rates"]["attempts_per_second"] == 1 and "FRD-3" in throttle["clause_ids"]
    now = datetime.now(UTC).timestamp()

    async def two(first: int) -> list[bool]:
        admission = world.platform.admission
        return [(await admission.decide(attempt(world, first + i, now))).admit for i in (0, 1)]

    assert anyio.run(two, 0) == [True, False]
    lifted = world.client.post(
        f"/v1/tenants/{world.tenants[0]}/throttles/{throttle['id']}/lift",
        json={"reason": "campaign confirmed"},
        headers=headers,
    )
    assert lifted.status_code == 200 and lifted.json()["id"] == throttle["id"]
    assert anyio.run(two, 10) == [True, True]
    entry = audit_of(world, "throttle.lifted")[0]
    assert (
        entry.reason == "campaign confirmed" and entry.details["before"]["attempts_per_second"] == 1
    )
    again = world.client.post(
        f"/v1/tenants/{world.tenants[0]}/throttles/{throttle['id']}/lift",
        json={"reason": "twice"},
        headers=headers,
    )
    assert again.status_code == 404


def test_an_operator_throttles_a_user_and_bad_throttles_are_refused(world: World) -> None:
    headers = world.headers(world.operator_key)
    url = f"/v1/tenants/{world.tenants[0]}/throttles"
    expires = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    made = world.client.post(
        url,
        json={
            "user_id": world.agents[0],
            "rates": {"fraction": 0.5, "attempts_per_minute": 20},
            "reason": "flooding",
            "expires_at": expires,
        },
        headers=headers,
    )
    assert made.status_code == 201, made.text
    shown = world.client.get(f"{url}/{made.json()['id']}", headers=headers).json()
    assert shown["user_id"] == world.agents[0] and shown["clause_ids"] == ["LIM-5", "FRD-3"]
    assert shown["expires_at"] is not None and shown["in_force"]
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for bad, status, field in [
        ({"rates": {}, "reason": "x"}, 422, "rates.fraction"),
        ({"rates": {"fraction": 0}, "reason": "x"}, 422, "body.rates.fraction"),
        (
            {"rates": {"attempts_per_second": 0}, "reason": "x"},
            422,
            "body.rates.attempts_per_second",
        ),
        ({"rates": {"fraction": 0.5}, "reason": "x", "expires_at": past}, 422, "expires_at"),
        ({"rates": {"fraction": 0.5}, "reason": "x", "clause_ids": ["XYZ-9"]}, 422, "clause_ids"),
        (
            {"rates": {"fraction": 0.5}, "reason": "x", "user_id": "us_0123456789abcdef"},
            404,
            "user_id",
        ),
    ]:
        answer = world.client.post(url, json=bad, headers=headers)
        assert answer.status_code == status, (bad, answer.text)
        assert answer.json()["error"]["field"] == field, (bad, answer.json())
    assert len(audit_of(world, "throttle.applied")) == 1
