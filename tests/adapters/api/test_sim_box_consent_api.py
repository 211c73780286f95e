"""The API for a tenant's written SIM-box consent (FRD-6): operators put it on record and take it
off; tenant admins can read it but not give it to themselves."""

from __future__ import annotations

from tests.world import World


def test_an_operator_puts_a_consent_on_record_and_the_tenant_shows_it(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    tid = world.tenants[0]
    put = c.put(
        f"/v1/tenants/{tid}/sim-box-consent",
        json={"reference": "Annex 4 to contract 2026-117, signed 2026-11-02"},
        headers=op,
    )
    assert put.status_code == 200, put.text
    consent = put.json()["sim_box_consent"]
    assert consent["reference"] == "Annex 4 to contract 2026-117, signed 2026-11-02"
    assert consent["by"] and consent["at"]
    seen = c.get(f"/v1/tenants/{tid}", headers=world.headers(world.admin_keys[0])).json()
    assert seen["sim_box_consent"] == consent


def test_a_tenant_without_a_consent_shows_null(world: World) -> None:
    tenant = world.client.get(
        f"/v1/tenants/{world.tenants[1]}", headers=world.headers(world.operator_key)
    ).json()
    assert tenant["sim_box_consent"] is None


def test_a_tenant_admin_cannot_record_a_consent_for_its_own_tenant(world: World) -> None:
    answer = world.client.put(
        f"/v1/tenants/{world.tenants[0]}/sim-box-consent",
        json={"reference": "we promise"},
        headers=world.headers(world.admin_keys[0]),
    )
    assert answer.status_code == 403, answer.text


def test_an_empty_reference_is_a_422_naming_the_field(world: World) -> None:
    answer = world.client.put(
        f"/v1/tenants/{world.tenants[0]}/sim-box-consent",
        json={"reference": ""},
        headers=world.headers(world.operator_key),
    )
    assert answer.status_code == 422
    assert "reference" in answer.text


def test_a_withdrawn_consent_is_gone_and_withdrawing_again_is_a_404(world: World) -> None:
    c, op = world.client, world.headers(world.operator_key)
    tid = world.tenants[0]
    c.put(f"/v1/tenants/{tid}/sim-box-consent", json={"reference": "Annex 4"}, headers=op)
    url = f"/v1/tenants/{tid}/sim-box-consent/withdraw"
    withdrawn = c.post(url, json={"reason": "the tenant ended its gateway contract"}, headers=op)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["sim_box_consent"] is None
    again = c.post(url, json={"reason": "twice"}, headers=op)
    assert again.status_code == 404
    assert "no SIM-box consent" in again.text
