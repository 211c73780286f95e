"""Input checks name the field and what is wrong."""

from __future__ import annotations

import pytest

from callwarden.core import validation as v
from callwarden.core.errors import InvalidInput


def test_country_codes_are_upper_cased() -> None:
    assert v.check_country("pl") == "PL"


@pytest.mark.parametrize("bad", ["ZZ", "", "POL", "1"])
def test_unknown_countries_are_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        v.check_country(bad)
    assert exc.value.field == "country"


def test_time_zones_must_be_iana_names() -> None:
    assert v.check_timezone("Europe/Warsaw") == "Europe/Warsaw"
    with pytest.raises(InvalidInput, match="IANA"):
        v.check_timezone("CET+5")


def test_e164_numbers_must_be_valid_in_their_plan() -> None:
    assert v.check_e164("+44 20 7946 0000") == "+442079460000"
    with pytest.raises(InvalidInput, match=r"E\.164"):
        v.check_e164("020 7946 0000")
    with pytest.raises(InvalidInput, match="not a valid number"):
        v.check_e164("+4400000000")


def test_text_with_control_characters_is_refused() -> None:
    with pytest.raises(InvalidInput, match="control characters"):
        v.check_text("abc\x00def", "name")


def test_source_addresses_are_normalised_networks() -> None:
    assert v.check_source_address("192.0.2.10") == "192.0.2.10/32"
    assert v.check_source_address("2001:db8::/32") == "2001:db8::/32"
    with pytest.raises(InvalidInput, match="not an IP"):
        v.check_source_address("192.0.2.10/24")


def test_clause_ids_must_exist_in_the_catalogue() -> None:
    assert v.check_clause_ids(["FRD-3", "FRD-3", "GOV-2"]) == ("FRD-3", "GOV-2")
    with pytest.raises(InvalidInput, match="XYZ-9"):
        v.check_clause_ids(["XYZ-9"])
    with pytest.raises(InvalidInput, match="at least one"):
        v.check_clause_ids([])
