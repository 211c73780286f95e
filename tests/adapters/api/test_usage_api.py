"""The usage API: records in (one or a batch), the answer after commit, dead letters by HTTP."""

from __future__ import annotations

import json

import pytest
from tests.usage_world import SAMPLES, seed_tenants
from tests.world import World

from callwarden.platform import Platform

RECORDS = "/v1/usage/records"
LETTERS = "/v1/usage/dead-letters"


def _call(**fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "kind": "call",
        "call_id": "api-1",
        "direction": "outbound",
        "callee": "+442079460123",
        "started_at": "2026-03-12T09:15:00Z",
        "answered_at": "2026-03-12T09:15:05Z",
        "ended_at": "2026-03-12T09:16:05Z",
        "duration_s": 60,
        "disposition": "answered",
    }
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


def _post(world: World, body: bytes | str, fmt: str = "callwarden-json", key: str | None = None):  # type: ignore[no-untyped-def]
    content = body.encode() if isinstance(body, str) else body
    return world.client.post(
        RECORDS,
        params={"format": fmt},
        content=content,
        headers=world.headers(key or world.operator_key),
    )


def test_one_record_is_stored_and_answered_with_200(world: World) -> None:
    response = _post(world, json.dumps(_call(tenant_id=world.tenants[0])))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "stored": 1,
        "duplicates": 0,
        "dead_lettered": 0,
        "dead_letter_ids": [],
    }


def test_sending_the_same_batch_again_stores_nothing_twice(world: World) -> None:
    batch = json.dumps([_call(call_id=f"again-{i}", tenant_id=world.tenants[0]) for i in range(3)])
    assert _post(world, batch).json()["stored"] == 3
    again = _post(world, batch).json()
    assert (again["stored"], again["duplicates"]) == (0, 3)


def test_json_lines_and_csv_bodies_are_accepted(world: World) -> None:
    lines = "\n".join(
        json.dumps(_call(call_id=f"jl-{i}", tenant_id=world.tenants[0])) for i in range(2)
    )
    assert _post(world, lines).json()["stored"] == 2
    csv_body = (
        "call_id,tenant_id,direction,callee,started_at,disposition\n"
        f"csv-1,{world.tenants[1]},outbound,+48221234567,2026-03-12T09:00:00Z,busy\n"
    )
    response = _post(world, csv_body, "callwarden-csv")
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1


def test_a_file_naming_unknown_tenants_is_422_listing_each_dead_letter(world: World) -> None:
    body = (SAMPLES / "asterisk" / "Master.csv").read_bytes()
    response = _post(world, body, "asterisk-csv")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unreadable_usage"
    assert len(error["errors"]) == len(body.splitlines())
    assert all("dead letter dl_" in e["message"] for e in error["errors"])


def test_a_sample_asterisk_file_is_stored_once_its_tenants_exist(world: World) -> None:
    seed_tenants(world.platform)
    body = (SAMPLES / "asterisk" / "Master.csv").read_bytes()
    response = _post(world, body, "asterisk-csv")
    assert response.status_code in (200, 207), response.text
    out = response.json()
    assert out["stored"] > 0
    assert out["stored"] + out["dead_lettered"] >= len(body.splitlines())


def test_a_batch_with_bad_units_is_answered_207_with_their_ids(world: World) -> None:
    good = _call(call_id="g1", tenant_id=world.tenants[0])
    bad = _call(call_id="b1", callee=None)
    response = _post(world, json.dumps([good, bad]))
    assert response.status_code == 207
    out = response.json()
    assert (out["stored"], out["dead_lettered"]) == (1, 1)
    (letter_id,) = out["dead_letter_ids"]
    letter = world.client.get(f"{LETTERS}/{letter_id}", headers=world.headers(world.operator_key))
    assert letter.json()["position"] == "line 1 item 2"
    assert json.loads(letter.json()["raw_text"])["call_id"] == "b1"


def test_a_body_of_which_nothing_can_be_read_is_422_and_still_kept(world: World) -> None:
    response = _post(world, "this is not a CDR")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unreadable_usage" and error["field"] == "body"
    listed = world.client.get(LETTERS, headers=world.headers(world.operator_key)).json()
    assert listed["total"] == 1
    assert listed["items"][0]["raw_text"] == "this is not a CDR"


def test_a_body_that_is_not_utf8_is_422_and_kept_whole(world: World) -> None:
    response = _post(world, b'{"call_id": "caf\xe9"}')
    assert response.status_code == 422
    assert "UTF-8" in response.json()["error"]["message"]
    listed = world.client.get(LETTERS, headers=world.headers(world.operator_key)).json()
    assert listed["items"][0]["whole_body"] is True


def test_an_empty_body_is_422(world: World) -> None:
    response = _post(world, b"")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "body"


def test_an_unknown_format_is_422_naming_it(world: World) -> None:
    response = _post(world, json.dumps(_call()), "cisco-cdr")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "query.format"


def test_a_body_over_the_limit_is_413(api_platform: Platform, world: World) -> None:
    api_platform.settings.usage_max_body_bytes = 2048
    response = _post(world, json.dumps([_call(call_id=f"big-{i}") for i in range(50)]))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_tenant_key_may_not_submit_another_tenants_usage(world: World) -> None:
    own, other = world.tenants
    response = _post(
        world,
        json.dumps([_call(call_id="t-own"), _call(call_id="t-other", tenant_id=other)]),
        key=world.admin_keys[0],
    )
    assert response.status_code == 207
    letter_id = response.json()["dead_letter_ids"][0]
    mine = world.client.get(f"{LETTERS}/{letter_id}", headers=world.headers(world.admin_keys[0]))
    assert "another tenant" in mine.json()["reason"]
    theirs = world.client.get(f"{LETTERS}/{letter_id}", headers=world.headers(world.admin_keys[1]))
    assert theirs.status_code == 404
    usage = world.client.get(
        f"/v1/tenants/{own}/usage",
        params={"since": "2026-03-01T00:00:00Z", "until": "2026-04-01T00:00:00Z"},
        headers=world.headers(world.admin_keys[0]),
    ).json()
    assert [r["call_id"] for r in usage["items"]] == ["t-own"]


def test_a_tenant_lists_only_its_own_dead_letters(world: World) -> None:
    _post(world, json.dumps(_call(callee=None)), key=world.admin_keys[0])
    _post(world, json.dumps(_call(call_id="op", callee=None)))
    mine = world.client.get(LETTERS, headers=world.headers(world.admin_keys[0])).json()
    theirs = world.client.get(LETTERS, headers=world.headers(world.admin_keys[1])).json()
    everyone = world.client.get(LETTERS, headers=world.headers(world.operator_key)).json()
    assert (mine["total"], theirs["total"], everyone["total"]) == (1, 0, 2)


def test_a_dead_letter_is_fixed_replayed_and_then_stored(world: World) -> None:
    op = world.headers(world.operator_key)
    bad = _call(call_id="fixme", callee=None, tenant_id=world.tenants[0])
    letter_id = _post(world, json.dumps(bad)).json()["error"]["errors"][0]["message"].split()[-1]
    letter_id = letter_id.rstrip(")")
    fixed = json.dumps(_call(call_id="fixme", tenant_id=world.tenants[0]))
    put = world.client.put(f"{LETTERS}/{letter_id}", json={"raw_text": fixed}, headers=op)
    assert put.status_code == 200 and put.json()["raw_text"] == fixed
    replay = world.client.post(f"{LETTERS}/{letter_id}/replay", headers=op)
    assert replay.status_code == 200, replay.text
    assert replay.json()["dead_letter"]["status"] == "replayed"
    assert replay.json()["result"]["stored"] == 1
    again = world.client.post(f"{LETTERS}/{letter_id}/replay", headers=op)
    assert again.status_code == 409


def test_replaying_every_open_letter_reports_which_stay_open(world: World) -> None:
    op = world.headers(world.operator_key)
    _post(world, json.dumps(_call(call_id="r1", tenant_id="tn_0000000000000000")))
    _post(world, "still not a CDR")
    out = world.client.post(f"{LETTERS}/replay", headers=op).json()
    assert (out["attempted"], out["replayed"], len(out["still_open_ids"])) == (2, 0, 2)


def test_a_discarded_letter_needs_a_reason_and_is_not_replayed(world: World) -> None:
    op = world.headers(world.operator_key)
    _post(world, "noise")
    letter_id = world.client.get(LETTERS, headers=op).json()["items"][0]["id"]
    no_reason = world.client.post(f"{LETTERS}/{letter_id}/discard", json={}, headers=op)
    assert no_reason.status_code == 422
    done = world.client.post(
        f"{LETTERS}/{letter_id}/discard", json={"reason": "probe traffic"}, headers=op
    )
    assert done.json()["status"] == "discarded"
    listed = world.client.get(LETTERS, params={"status": "open"}, headers=op).json()
    assert listed["total"] == 0


def test_an_agent_may_neither_send_usage_nor_read_dead_letters(world: World) -> None:
    from callwarden.services.governance import SYSTEM

    world.platform.governance.activate_user(SYSTEM, world.tenants[0], world.agents[0])
    agent_key = world.platform.access.issue(
        SYSTEM, world.tenants[0], world.agents[0], "agent"
    ).secret
    assert _post(world, json.dumps(_call()), key=agent_key).status_code == 403
    assert world.client.get(LETTERS, headers=world.headers(agent_key)).status_code == 403


def test_a_tenant_month_is_listed_and_summarised(world: World) -> None:
    tenant = world.tenants[0]
    batch = [
        _call(call_id="m1", tenant_id=tenant, cost_minor=25, currency="EUR"),
        _call(
            call_id="m2",
            tenant_id=tenant,
            started_at="2026-02-28T23:59:59Z",
            answered_at=None,
            ended_at=None,
            duration_s=0,
            disposition="no_answer",
        ),
    ]
    assert _post(world, json.dumps(batch)).status_code == 200
    march = {"since": "2026-03-01T00:00:00Z", "until": "2026-04-01T00:00:00+00:00"}
    op = world.headers(world.operator_key)
    listed = world.client.get(f"/v1/tenants/{tenant}/usage", params=march, headers=op).json()
    assert [r["call_id"] for r in listed["items"]] == ["m1"]
    summary = world.client.get(
        f"/v1/tenants/{tenant}/usage/summary", params=march, headers=op
    ).json()
    assert (summary["calls"], summary["billable_seconds"]) == (1, 60)
    assert summary["cost_minor"] == {"EUR": 25}


@pytest.mark.parametrize(
    "params",
    [{"since": "2026-03-01T00:00:00"}, {"since": "2026-13-01T00:00:00Z"}, {"since": "0.5"}],
    ids=["no-offset", "no-such-month", "a-number"],
)
def test_a_period_bound_must_be_a_date_and_time_with_an_offset(
    world: World, params: dict[str, str]
) -> None:
    response = world.client.get(
        f"/v1/tenants/{world.tenants[0]}/usage",
        params=params,
        headers=world.headers(world.operator_key),
    )
    assert response.status_code == 422


def test_until_before_since_is_422(world: World) -> None:
    response = world.client.get(
        f"/v1/tenants/{world.tenants[0]}/usage/summary",
        params={"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"},
        headers=world.headers(world.operator_key),
    )
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "until"
