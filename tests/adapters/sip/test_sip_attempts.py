"""Reading the call attempt out of an INVITE."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError
from tests.adapters.sip.sipkit import request

from callwarden.adapters.sip.answers import RefusalStatus
from callwarden.adapters.sip.attempts import (
    TrustedProxies,
    call_attempt,
    normalise_address,
)
from callwarden.adapters.sip.handler import RedirectConfig
from callwarden.adapters.sip.incoming import check_request
from callwarden.adapters.sip.message import ParseError, Request, parse_message
from callwarden.core.admission.attempt import CallAttempt, Direction
from callwarden.settings import Settings

LOOPBACK_ONLY = TrustedProxies((ipaddress.ip_network("127.0.0.0/8"),))
TENANT = "tn_0123456789abcdef"


def attempt(data: bytes, source: str = "127.0.0.1") -> CallAttempt:
    message = parse_message(data)
    assert isinstance(message, Request)
    return call_attempt(check_request(message), source, LOOPBACK_ONLY, at=1_800_000_000.0)


def test_an_invite_gives_destination_caller_call_id_and_source() -> None:
    a = attempt(request("INVITE", call_id="abc@pbx"), source="192.0.2.1")
    assert a == CallAttempt(
        call_id="abc@pbx",
        destination="+442079460123",
        direction=Direction.OUTBOUND,
        at=1_800_000_000.0,
        caller="+442079460000",
        source_ip="192.0.2.1",
    )


def test_the_destination_comes_from_a_tel_request_uri_too() -> None:
    assert attempt(request("INVITE", "tel:+442079460124;phone-context=x")).destination == (
        "+442079460124"
    )


def test_a_request_uri_without_a_user_part_has_an_empty_destination() -> None:
    assert attempt(request("INVITE", "sip:gw.example")).destination == ""


def test_p_asserted_identity_wins_over_remote_party_id_and_from() -> None:
    headers = {
        "P-Asserted-Identity": '"Desk" <sip:+442079460001@pbx>, <tel:+442079460002>',
        "Remote-Party-ID": "<sip:+442079460003@pbx>;party=calling",
    }
    assert attempt(request("INVITE", headers=headers)).caller == "+442079460001"


def test_remote_party_id_wins_over_from() -> None:
    headers = {"Remote-Party-ID": "<sip:+442079460003@pbx>;party=calling;screen=yes"}
    assert attempt(request("INVITE", headers=headers)).caller == "+442079460003"


@pytest.mark.parametrize(
    ("from_uri", "headers"),
    [
        ("sip:anonymous@anonymous.invalid", {}),
        ("sip:Restricted@pbx", {}),
        ("sip:+442079460000@pbx", {"Privacy": "id"}),
        ("sip:+442079460000@pbx", {"Privacy": "header; id"}),
        ("sip:+442079460000@pbx", {"Remote-Party-ID": "<sip:+442079460003@pbx>;privacy=full"}),
        ("sip:+442079460000@pbx", {"P-Asserted-Identity": "<sip:anonymous@pbx>"}),
    ],
)
def test_a_withheld_caller_is_none(from_uri: str, headers: dict[str, str]) -> None:
    assert attempt(request("INVITE", from_uri=from_uri, headers=headers)).caller is None


def test_direction_tenant_and_user_come_from_callwarden_headers() -> None:
    headers = {
        "X-Callwarden-Direction": "Inbound",
        "X-Callwarden-Tenant": TENANT,
        "X-Callwarden-User": "us_00000000000000ff",
    }
    a = attempt(request("INVITE", headers=headers))
    assert (a.direction, a.tenant_id, a.user_id) == (
        Direction.INBOUND,
        TENANT,
        "us_00000000000000ff",
    )


def test_a_trusted_proxy_may_name_the_source_address() -> None:
    headers = {"X-Callwarden-Source-IP": "192.0.2.1"}
    assert attempt(request("INVITE", headers=headers), source="127.0.0.1").source_ip == "192.0.2.1"


def test_callwarden_headers_from_anyone_but_a_trusted_proxy_are_ignored() -> None:
    headers = {
        "X-Callwarden-Tenant": TENANT,
        "X-Callwarden-User": "us_00000000000000ff",
        "X-Callwarden-Direction": "inbound",
        "X-Callwarden-Source-IP": "192.0.2.1",
    }
    a = attempt(request("INVITE", headers=headers), source="198.51.100.7")
    assert (a.tenant_id, a.user_id, a.direction, a.source_ip) == (
        None,
        None,
        Direction.OUTBOUND,
        "198.51.100.7",
    )


def test_an_unusable_callwarden_header_from_anyone_else_is_ignored_not_refused() -> None:
    headers = {"X-Callwarden-Tenant": "tenant-one", "X-Callwarden-Direction": "sideways"}
    a = attempt(request("INVITE", headers=headers), source="198.51.100.7")
    assert a.tenant_id is None and a.direction is Direction.OUTBOUND


@pytest.mark.parametrize(
    ("headers", "named"),
    [
        ({"X-Callwarden-Tenant": "tenant-one"}, "X-Callwarden-Tenant"),
        ({"X-Callwarden-User": "us_XYZ"}, "X-Callwarden-User"),
        ({"X-Callwarden-Direction": "sideways"}, "X-Callwarden-Direction"),
        ({"X-Callwarden-Source-IP": "not-an-address"}, "X-Callwarden-Source-IP"),
        ({"P-Asserted-Identity": "<sip:+4420"}, "P-Asserted-Identity"),
    ],
)
def test_an_unusable_header_is_a_400_naming_it(headers: dict[str, str], named: str) -> None:
    with pytest.raises(ParseError, match=named) as exc:
        attempt(request("INVITE", headers=headers))
    assert exc.value.status == 400 and exc.value.request is not None


def test_over_long_values_are_refused_like_the_http_api_refuses_them() -> None:
    with pytest.raises(ParseError, match="longer than 128"):
        attempt(request("INVITE", f"sip:{'1' * 129}@gw"))
    with pytest.raises(ParseError, match="Call-ID is longer than 256"):
        attempt(request("INVITE", call_id="c" * 257))


def test_ipv4_mapped_source_addresses_read_as_ipv4() -> None:
    assert normalise_address("::ffff:192.0.2.1") == "192.0.2.1"
    assert normalise_address("2001:DB8::1") == "2001:db8::1"


def test_the_settings_give_the_trusted_proxies_and_the_refusal_status(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CALLWARDEN_CONFIG", raising=False)
    monkeypatch.setenv("CALLWARDEN_SIP_TRUSTED_PROXIES", '["10.0.0.5/32", "2001:db8::/32"]')
    monkeypatch.setenv("CALLWARDEN_SIP_REFUSAL_STATUS", "603")
    config = RedirectConfig.from_settings(Settings())
    assert config.refusal_status is RefusalStatus.DECLINE
    assert config.trusted_proxies.trusts("10.0.0.5") and config.trusted_proxies.trusts(
        "2001:db8::9"
    )
    assert not config.trusted_proxies.trusts("127.0.0.1")


def test_by_default_only_loopback_is_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLWARDEN_CONFIG", raising=False)
    config = RedirectConfig.from_settings(Settings())
    assert config.trusted_proxies.trusts("127.0.0.1") and config.trusted_proxies.trusts("::1")
    assert not config.trusted_proxies.trusts("192.0.2.1")
    assert config.refusal_status is RefusalStatus.DECISION


@pytest.mark.parametrize(
    ("key", "value"),
    [("SIP_TRUSTED_PROXIES", '["10.0.0.300/32"]'), ("SIP_REFUSAL_STATUS", "486")],
)
def test_a_bad_sip_setting_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    monkeypatch.delenv("CALLWARDEN_CONFIG", raising=False)
    monkeypatch.setenv(f"CALLWARDEN_{key}", value)
    with pytest.raises(ValidationError, match=key.lower()):
        Settings()
