"""The rate deck API: decks created, CSV uploaded (refused or skipped), looked up, assigned."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.world import World

from callwarden.adapters.api.routes import rate_decks as routes
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import PageRequest

DECK = (
    "prefix,description,rate,connection fee,increments,effective date,currency\n"
    "44,United Kingdom,0.0120,0,60/60,2024-01-01,EUR\n"
    "447,United Kingdom - Mobile,0.0850,0.01,30/6,2024-01-01,EUR\n"
    "447,United Kingdom - Mobile,0.0900,0.01,30/6,2025-01-01,EUR\n"
    "33,France,0.0100,0,1/1,2024-01-01,EUR\n"
)
BAD = (
    "prefix,description,rate,connection fee,increments,effective date,currency\n"
    "44,United Kingdom,0.0120,0,60/60,2024-01-01,EUR\n"
    "0044,United Kingdom again,0.0120,0,60/60,2024-01-01,EUR\n"
    "49,Germany,-1,0,60/60,2024-01-01,EUR\n"
    "33,France,0.0100,0,1/1,2024-01-01,EUR\n"
)
CSV = {"Content-Type": "text/csv"}


def _deck(world: World, name: str = "Carrier A", currency: str = "EUR") -> str:
    created = world.client.post(
        "/v1/rate-decks",
        json={"name": name, "currency": currency},
        headers=world.headers(world.operator_key),
    )
    assert created.status_code == 201, created.text
    deck_id: str = created.json()["id"]
    return deck_id


def _upload(world: World, deck_id: str, body: str | bytes, query: str = "") -> object:
    return world.client.post(
        f"/v1/rate-decks/{deck_id}/rates{query}",
        content=body,
        headers={**world.headers(world.operator_key), **CSV},
    )


def test_a_deck_is_created_uploaded_and_listed_with_its_figures(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    deck_id = _deck(world)
    uploaded = c.post(f"/v1/rate-decks/{deck_id}/rates", content=DECK, headers={**op, **CSV})
    assert uploaded.status_code == 200, uploaded.text
    body = uploaded.json()
    assert (body["rows_read"], body["rates_imported"], body["bad_row_count"]) == (4, 4, 0)
    deck = c.get(f"/v1/rate-decks/{deck_id}", headers=op).json()
    assert deck["rate_count"] == 4 and deck["currency"] == "EUR"
    assert deck["effective_dates"] == ["2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z"]
    listed = c.get("/v1/rate-decks", headers=op).json()
    assert [d["name"] for d in listed["items"]] == ["Carrier A"] and listed["total"] == 1


def test_a_refused_upload_is_a_422_naming_every_bad_line_and_stores_nothing(
    world: World,
) -> None:
    c, op = world.client, world.headers(world.operator_key)
    deck_id = _deck(world)
    refused = c.post(f"/v1/rate-decks/{deck_id}/rates", content=BAD, headers={**op, **CSV})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_input" and error["field"] == "body"
    assert [e["field"] for e in error["errors"]] == ["line 3", "line 4"]
    assert "0044" in error["errors"][0]["message"]
    assert "negative" in error["errors"][1]["message"]
    assert c.get(f"/v1/rate-decks/{deck_id}", headers=op).json()["rate_count"] == 0


def test_a_skipping_upload_stores_the_good_rows_and_lists_the_bad(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    deck_id = _deck(world)
    answer = c.post(
        f"/v1/rate-decks/{deck_id}/rates?on_error=skip", content=BAD, headers={**op, **CSV}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["rates_imported"], body["bad_row_count"]) == (2, 2)
    assert [b["line"] for b in body["bad_rows"]] == [3, 4]
    assert body["deck"]["rate_count"] == 2


def test_replace_mode_drops_the_rates_the_upload_does_not_repeat(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    deck_id = _deck(world)
    c.post(f"/v1/rate-decks/{deck_id}/rates", content=DECK, headers={**op, **CSV})
    only_france = DECK.splitlines()[0] + "\n" + DECK.splitlines()[4] + "\n"
    answer = c.post(
        f"/v1/rate-decks/{deck_id}/rates?mode=replace", content=only_france, headers={**op, **CSV}
    )
    assert answer.json()["deck"]["rate_count"] == 1
    missing = c.get(f"/v1/rate-decks/{deck_id}/rate?number=%2B442079460000", headers=op)
    assert missing.status_code == 404


def test_the_rate_of_a_number_follows_the_longest_prefix_and_the_date(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    deck_id = _deck(world)
    c.post(f"/v1/rate-decks/{deck_id}/rates", content=DECK, headers={**op, **CSV})
    url = f"/v1/rate-decks/{deck_id}/rate"
    mobile_2024 = c.get(url, params={"number": "+447700900123", "at": "2024-06-01T00:00:00Z"})
    assert mobile_2024.status_code == 401
    mobile_2024 = c.get(
        url, params={"number": "+447700900123", "at": "2024-06-01T00:00:00Z"}, headers=op
    )
    rate = mobile_2024.json()
    assert (rate["prefix"], rate["rate_per_minute"], rate["connection_fee"]) == (
        "447",
        "0.085",
        "0.01",
    )
    assert (rate["initial_s"], rate["subsequent_s"]) == (30, 6)
    later = c.get(url, params={"number": "447700900123", "at": "2025-06-01T00:00:00Z"}, headers=op)
    assert later.json()["rate_per_minute"] == "0.09"
    fixed = c.get(f"{url}?number=+442079460000", headers=op)  # a bare '+' arrives as a space
    assert fixed.status_code == 200 and fixed.json()["prefix"] == "44"
    assert fixed.json()["number"] == "+442079460000"


def test_a_number_no_prefix_matches_is_a_404_naming_the_number(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    deck_id = _deck(world)
    c.post(f"/v1/rate-decks/{deck_id}/rates", content=DECK, headers={**op, **CSV})
    answer = c.get(f"/v1/rate-decks/{deck_id}/rate?number=%2B12125550100", headers=op)
    assert answer.status_code == 404 and answer.json()["error"]["field"] == "number"
    malformed = c.get(f"/v1/rate-decks/{deck_id}/rate?number=abc", headers=op)
    assert malformed.status_code == 422


def test_decks_are_assigned_to_plans_and_tenants_and_unassigned(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    deck_id = _deck(world)
    plan_url = f"/v1/plans/{world.plan_id}/rate-deck"
    tenant_url = f"/v1/tenants/{world.tenants[0]}/rate-deck"
    assert c.get(plan_url, headers=op).status_code == 404
    put = c.put(plan_url, json={"deck_id": deck_id}, headers=op)
    assert put.status_code == 200, put.text
    assert put.json()["scope"] == "plan" and put.json()["deck_id"] == deck_id
    assert c.put(tenant_url, json={"deck_id": deck_id}, headers=op).status_code == 200
    assert c.get(tenant_url, headers=op).json()["scope_id"] == world.tenants[0]
    assert c.delete(tenant_url, headers=op).status_code == 204
    assert c.get(tenant_url, headers=op).status_code == 404
    assert c.delete(tenant_url, headers=op).status_code == 404
    unknown = c.put(plan_url, json={"deck_id": "rd_0000000000000000"}, headers=op)
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "deck_id"


def test_a_deck_in_another_currency_than_the_plan_is_not_assigned(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    deck_id = _deck(world, "Dollars", "USD")
    answer = c.put(f"/v1/plans/{world.plan_id}/rate-deck", json={"deck_id": deck_id}, headers=op)
    assert answer.status_code == 422 and "USD" in answer.json()["error"]["message"]


def test_tenant_keys_may_neither_read_nor_change_decks(world: World) -> None:
    c, admin = world.client, world.headers(world.admin_keys[0])
    deck_id = _deck(world)
    assert c.get("/v1/rate-decks", headers=admin).status_code == 403
    assert (
        c.post("/v1/rate-decks", json={"name": "X", "currency": "EUR"}, headers=admin).status_code
        == 403
    )
    assert (
        c.post(
            f"/v1/rate-decks/{deck_id}/rates", content=DECK, headers={**admin, **CSV}
        ).status_code
        == 403
    )
    own = c.put(
        f"/v1/tenants/{world.tenants[0]}/rate-deck", json={"deck_id": deck_id}, headers=admin
    )
    assert own.status_code == 403


def test_an_upload_that_is_not_csv_is_a_415(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    deck_id = _deck(world)
    as_json = c.post(f"/v1/rate-decks/{deck_id}/rates", json={"rows": []}, headers=op)
    assert as_json.status_code == 415
    url = f"/v1/rate-decks/{deck_id}/rates"
    latin1 = {**op, "Content-Type": "text/csv; header=present; charset=iso-8859-1"}
    assert c.post(url, content=DECK, headers=latin1).status_code == 415
    utf8 = {**op, "Content-Type": 'Text/CSV; header=present; charset="UTF-8"'}
    assert c.post(url, content=DECK, headers=utf8).status_code == 200


def test_an_upload_past_the_maximum_is_a_413(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes, "MAX_UPLOAD_BYTES", 100)
    deck_id = _deck(world)
    answer = world.client.post(
        f"/v1/rate-decks/{deck_id}/rates",
        content=DECK,
        headers={**world.headers(world.operator_key), **CSV},
    )
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "payload_too_large"


def test_an_upload_that_is_not_utf8_or_is_binary_is_a_422(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    deck_id = _deck(world)
    latin1 = DECK.replace("France", "Fran\u00e7e").encode("latin-1")
    answer = c.post(f"/v1/rate-decks/{deck_id}/rates", content=latin1, headers={**op, **CSV})
    assert answer.status_code == 422 and "UTF-8" in answer.json()["error"]["message"]
    binary = DECK.replace("France", "Fr\x00nce")
    answer = c.post(f"/v1/rate-decks/{deck_id}/rates", content=binary, headers={**op, **CSV})
    assert answer.status_code == 422 and "line 5" in answer.json()["error"]["message"]


def test_a_currency_that_is_not_the_decks_is_refused(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    deck_id = _deck(world)
    answer = c.post(
        f"/v1/rate-decks/{deck_id}/rates?currency=USD", content=DECK, headers={**op, **CSV}
    )
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "currency"
    duplicate = c.post("/v1/rate-decks", json={"name": "Carrier A", "currency": "EUR"}, headers=op)
    assert duplicate.status_code == 409


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.lists(
                st.sampled_from(
                    ["44", "+1", "0.01", "-1", "60/60", "2024-01-01", "EUR", "USD", '"a,b"', ""]
                )
                | st.text(max_size=8),
                max_size=9,
            ),
            max_size=6,
        ).map(
            lambda rows: (
                "prefix,description,rate,connection fee,increments,effective date,currency\n"
                + "\n".join(",".join(r) for r in rows)
            ).encode("utf-8", "surrogatepass")
        ),
    ),
    on_error=st.sampled_from(["refuse", "skip"]),
    mode=st.sampled_from(["merge", "replace"]),
)
def test_no_upload_makes_the_server_fail(
    world: World, body: bytes, on_error: str, mode: str
) -> None:
    decks = world.platform.rating.list_decks(SYSTEM, PageRequest()).items
    target = decks[0].id if decks else _deck(world)
    answer = world.client.post(
        f"/v1/rate-decks/{target}/rates?on_error={on_error}&mode={mode}",
        content=body,
        headers={**world.headers(world.operator_key), **CSV},
    )
    assert answer.status_code in (200, 422), answer.text
    assert "error" in answer.json() or answer.json()["rates_imported"] > 0


def test_effective_dates_beyond_the_calendar_are_shown_not_failed_on(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    deck_id = _deck(world)
    far = (
        "prefix,rate,increments,effective date\n"
        "44,0.01,60/60,0001-01-01T00:00:00+05:00\n"
        "33,0.01,60/60,9999-12-31T23:00:00-05:00\n"
    )
    assert c.post(f"/v1/rate-decks/{deck_id}/rates", content=far, headers={**op, **CSV}).is_success
    deck = c.get(f"/v1/rate-decks/{deck_id}", headers=op)
    assert deck.status_code == 200
    assert deck.json()["effective_dates"][0].startswith("0001-01-01")
    assert deck.json()["effective_dates"][-1].startswith("9999-12-31")
    rate = c.get(f"/v1/rate-decks/{deck_id}/rate?number=%2B4420", headers=op)
    assert rate.json()["effective_from"].startswith("0001-01-01")
