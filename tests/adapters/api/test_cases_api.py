"""/v1/cases over HTTP: operators list, filter and work cases and revert their actions; a
tenant's admin reads only its own tenant's cases; bad requests are 4xx naming the problem."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient
from tests.world import World, premium_burst

from callwarden.adapters.api.app import create_app
from callwarden.core.admission.policy import RuleMode
from callwarden.core.cases import ActionPolicy
from callwarden.core.detectors import DetectorConfig, DetectorPolicy, Severity, SuggestedAction
from callwarden.core.model import TenantStatus
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import AuditQuery, PageRequest


def open_cases(world: World, enforce: bool = False) -> list[str]:
    """One IRSF case per tenant (tenant 0 suspended automatically when ``enforce``)."""
    engine = world.platform.surveillance
    if enforce:
        engine.configure(
            DetectorConfig(defaults={"irsf": DetectorPolicy(mode=RuleMode.ENFORCE)}),
            ActionPolicy(by_severity={Severity.HIGH: SuggestedAction.SUSPEND_TENANT}),
        )
    ids = []
    for tenant in (0, 1):
        (case,) = engine.process(premium_burst(world, tenant, 12))
        ids.append(case.id)
    return ids


def test_the_operator_lists_every_case_and_filters_them(world: World) -> None:
    ids = open_cases(world)
    headers = world.headers(world.operator_key)
    listed = world.client.get("/v1/cases", headers=headers).json()
    assert listed["total"] == 2 and {c["id"] for c in listed["items"]} == set(ids)
    by_tenant = world.client.get(
        "/v1/cases", params={"tenant_id": world.tenants[1]}, headers=headers
    ).json()
    assert [c["id"] for c in by_tenant["items"]] == [ids[1]]
    assert (
        world.client.get("/v1/cases", params={"detector": "wangiri"}, headers=headers).json()[
            "total"
        ]
        == 0
    )
    case = world.client.get(f"/v1/cases/{ids[0]}", headers=headers).json()
    assert case["detector"] == "irsf" and case["clause_ids"] == ["FRD-1", "FRD-2"]
    assert case["evidence"]["statistic"] == "cost_weighted_score"
    assert case["evidence"]["threshold"] == 3.0 and len(case["evidence"]["call_ids"]) == 12


def test_a_tenant_admin_reads_only_its_own_tenant_cases(world: World) -> None:
    ids = open_cases(world)
    headers = world.headers(world.admin_keys[0])
    listed = world.client.get("/v1/cases", headers=headers).json()
    assert [c["id"] for c in listed["items"]] == [ids[0]]
    own = world.client.get(f"/v1/tenants/{world.tenants[0]}/cases", headers=headers)
    assert own.status_code == 200 and own.json()["total"] == 1
    assert world.client.get(f"/v1/cases/{ids[1]}", headers=headers).status_code == 404
    other = world.client.get(f"/v1/tenants/{world.tenants[1]}/cases", headers=headers)
    assert other.status_code == 403
    refused = world.client.post(
        f"/v1/cases/{ids[0]}/acknowledge", json={"note": "mine"}, headers=headers
    )
    assert refused.status_code == 403


def test_an_operator_moves_a_case_through_its_review_with_notes_audited(world: World) -> None:
    case_id = open_cases(world)[0]
    headers = world.headers(world.operator_key)
    acked = world.client.post(
        f"/v1/cases/{case_id}/acknowledge", json={"note": "calling the customer"}, headers=headers
    )
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"
    done = world.client.post(
        f"/v1/cases/{case_id}/false-positive", json={"note": "test calls"}, headers=headers
    )
    assert done.json()["status"] == "false_positive" and done.json()["note"] == "test calls"
    again = world.client.post(
        f"/v1/cases/{case_id}/resolve", json={"note": "again"}, headers=headers
    )
    assert again.status_code == 409 and "false_positive" in again.json()["error"]["message"]
    entries = world.platform.audit.list(
        SYSTEM, AuditQuery(subject_id=case_id), PageRequest(limit=50)
    ).items
    assert {"case.acknowledged", "case.false_positive"} <= {e.action for e in entries}
    assert all("FRD-3" in e.clause_ids for e in entries)


def test_an_operator_reverts_an_automatic_suspension(world: World) -> None:
    case_id = open_cases(world, enforce=True)[0]
    gov = world.platform.governance
    assert gov.get_tenant(SYSTEM, world.tenants[0]).status is TenantStatus.SUSPENDED
    headers = world.headers(world.operator_key)
    action = world.client.get(f"/v1/cases/{case_id}", headers=headers).json()["actions"][0]
    assert action["kind"] == "suspend_tenant" and action["status"] == "applied"
    reverted = world.client.post(
        f"/v1/cases/{case_id}/actions/{action['id']}/revert",
        json={"note": "customer called back"},
        headers=headers,
    )
    assert reverted.status_code == 200
    assert reverted.json()["actions"][0]["status"] == "reverted"
    assert gov.get_tenant(SYSTEM, world.tenants[0]).status is TenantStatus.ACTIVE
    twice = world.client.post(
        f"/v1/cases/{case_id}/actions/{action['id']}/revert", json={"note": "x"}, headers=headers
    )
    assert twice.status_code == 409


def test_bad_case_requests_are_refused_with_a_4xx_naming_the_problem(world: World) -> None:
    case_id = open_cases(world)[0]
    headers = world.headers(world.operator_key)
    no_note = world.client.post(f"/v1/cases/{case_id}/acknowledge", json={}, headers=headers)
    assert no_note.status_code == 422 and "note" in no_note.text
    unknown = world.client.get("/v1/cases/cs_0123456789abcdef", headers=headers)
    assert unknown.status_code == 404 and "cs_0123456789abcdef" in unknown.text
    bad_status = world.client.get("/v1/cases", params={"status": "closed"}, headers=headers)
    assert bad_status.status_code == 422
    bad_action = world.client.post(
        f"/v1/cases/{case_id}/actions/ca_0123456789abcdef/revert",
        json={"note": "x"},
        headers=headers,
    )
    assert bad_action.status_code == 404 and "ca_0123456789abcdef" in bad_action.text


def test_the_serving_app_runs_surveillance_over_usage_posted_to_it(world: World) -> None:
    """The app's lifespan starts surveillance in process: usage posted over HTTP becomes a case
    readable over HTTP, with no other wiring."""
    body = json.dumps(
        [
            {
                "kind": "call",
                "call_id": r.call_id,
                "tenant_id": r.tenant_id,
                "user_id": r.user_id,
                "direction": "outbound",
                "callee": r.callee,
                "started_at": r.started_at.isoformat(),
                "ended_at": r.ended_at.isoformat() if r.ended_at else None,
                "disposition": "no_answer",
            }
            for r in premium_burst(world, 0, 12)
        ]
    )
    headers = world.headers(world.operator_key)
    with TestClient(create_app(world.platform)) as client:
        posted = client.post(
            "/v1/usage/records",
            params={"format": "callwarden-json"},
            content=body.encode(),
            headers=headers,
        )
        assert posted.status_code == 200 and posted.json()["stored"] == 12, posted.text
        deadline = time.monotonic() + 10
        listed = client.get("/v1/cases", headers=headers).json()
        while listed["total"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            listed = client.get("/v1/cases", headers=headers).json()
    (case,) = listed["items"]
    assert (case["detector"], case["tenant_id"]) == ("irsf", world.tenants[0])
    assert case["mode"] == "observe" and case["actions"] == []
