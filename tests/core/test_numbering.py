"""Destination classification: emergency numbers, number types, validity, and the fast path.

The fast path reads digit strings without ``phonenumbers.parse``; these tests hold it to the
same answers as the full parse (a plan built with ``fast_path=False``) and as ``phonenumbers``
itself on a corpus built from its example numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
from concurrent.futures import ThreadPoolExecutor

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import (
    NumberParseException,
    PhoneMetadata,
    PhoneNumberFormat,
    PhoneNumberType,
    shortnumberinfo,
)
from phonenumbers.phonenumber import CountryCodeSource

from callwarden.core.numbering import (
    MAX_INPUT_LENGTH,
    Destination,
    NumberingPlan,
    NumberType,
    _expand_finite,
    default_numbering_plan,
)


@functools.cache
def plan() -> NumberingPlan:
    """The plan as production uses it: fast path and cache."""
    return NumberingPlan()


@functools.cache
def uncached() -> NumberingPlan:
    """The fast path without a cache, so every call really classifies."""
    return NumberingPlan(cache_size=0)


@functools.cache
def reference() -> NumberingPlan:
    """Every string through phonenumbers.parse: what the fast path must agree with."""
    return NumberingPlan(fast_path=False, cache_size=0)


# -- phonenumbers' own answer, written independently of the module under test ----------------

_PN_TYPES = {
    PhoneNumberType.FIXED_LINE: NumberType.FIXED_LINE,
    PhoneNumberType.MOBILE: NumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: NumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.TOLL_FREE: NumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE: NumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST: NumberType.SHARED_COST,
    PhoneNumberType.VOIP: NumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER: NumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER: NumberType.PAGER,
    PhoneNumberType.UAN: NumberType.UAN,
    PhoneNumberType.VOICEMAIL: NumberType.VOICEMAIL,
}


def phonenumbers_answer(raw: str, region: str) -> tuple[NumberType, bool]:
    """(number type, valid) as phonenumbers' public API gives them, with our type names."""
    if shortnumberinfo.is_emergency_number(raw, region):
        return NumberType.EMERGENCY, True
    try:
        number = phonenumbers.parse(raw, region, keep_raw_input=True)
    except NumberParseException:
        return NumberType.UNKNOWN, False
    if phonenumbers.is_valid_number(number):
        digits = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        if digits.startswith(("+870", "+881", "+88216")):
            return NumberType.SATELLITE, True
        if number.country_code in (878, 882, 883, 888):
            return NumberType.INTERNATIONAL_NETWORK, True
        return _PN_TYPES[phonenumbers.number_type(number)], True
    if number.country_code_source == CountryCodeSource.FROM_DEFAULT_COUNTRY and (
        shortnumberinfo.is_valid_short_number_for_region(number, region)
    ):
        cost = shortnumberinfo.expected_cost_for_region(number, region)
        premium = cost == shortnumberinfo.ShortNumberCost.PREMIUM_RATE
        return (NumberType.PREMIUM_RATE if premium else NumberType.SHORT_CODE), True
    return NumberType.UNKNOWN, False


@functools.cache
def example_numbers() -> tuple[phonenumbers.PhoneNumber, ...]:
    """One example number per region and type that phonenumbers has one for."""
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for pn_type in PhoneNumberType.values():
            number = phonenumbers.example_number_for_type(region, pn_type)
            if number is not None:
                numbers.append(number)
    for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        meta = PhoneMetadata.metadata_for_nongeo_region(cc)
        assert meta is not None
        for attr in ("mobile", "voip", "toll_free", "premium_rate", "shared_cost", "uan"):
            desc = getattr(meta, attr)
            if desc is not None and desc.example_number:
                numbers.append(phonenumbers.parse(f"+{cc}{desc.example_number}"))
    return tuple(numbers)


@functools.cache
def corpus() -> tuple[tuple[str, str], ...]:
    """(dial string, home region): every example number in several dialling forms, numbers
    one digit short or long, emergency and short-code examples, and junk."""
    items: list[tuple[str, str]] = []
    for number in example_numbers():
        region = phonenumbers.region_code_for_number(number) or "US"
        home = region if region != "001" else "DE"
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        items += [
            (e164, "US"),
            (phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL), "JP"),
            (phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL), home),
            ("00" + e164[1:], "GB"),
            ("011" + e164[1:], "US"),
            (e164[:-1], "FR"),
            (e164 + "7", "BR"),
        ]
    for region in sorted(phonenumbers.SUPPORTED_SHORT_REGIONS):
        meta = PhoneMetadata.short_metadata_for_region(region)
        assert meta is not None
        for desc in (meta.emergency, meta.short_code, meta.premium_rate, meta.toll_free):
            if desc is not None and desc.example_number:
                items.append((desc.example_number, region))
                items.append(("+" + desc.example_number, region))
    junk = ["", " ", "+", "++44", "0", "00", "abc", "+999 123", "1-800-FLOWERS", "tel:+44207"]
    items += [(raw, "GB") for raw in junk]
    return tuple(items)


# -- emergency numbers (CID-3) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region"), [("112", "GB"), ("999", "GB"), ("911", "US"), ("112", "US")]
)
def test_112_999_and_911_are_emergency_where_the_metadata_lists_them(raw: str, region: str) -> None:
    dest = plan().classify(raw, region)
    assert dest.is_emergency
    assert dest.valid
    assert dest.number_type is NumberType.EMERGENCY
    assert dest.region == region
    assert dest.e164 is None


def test_emergency_number_of_another_country_is_not_emergency_at_home() -> None:
    assert not plan().classify("999", "US").is_emergency


def test_also_regions_add_the_emergency_numbers_of_the_users_country() -> None:
    dest = plan().classify("999", "US", also_regions=("gb",))
    assert dest.is_emergency
    assert dest.region == "GB"
    assert dest.country_code == 44


def test_also_regions_do_not_change_how_national_numbers_are_read() -> None:
    dest = plan().classify("02079460018", "US", also_regions=("GB",))
    assert dest.country_code == 1
    assert not dest.valid


@pytest.mark.parametrize("raw", ["+1 911", "+1911", "001911", "+44 999", "+112"])
def test_emergency_number_written_with_a_country_code_is_not_emergency(raw: str) -> None:
    home = "GB" if "44" in raw or raw == "+112" else "US"
    assert not plan().classify(raw, home).is_emergency


@pytest.mark.parametrize("raw", ["1 1 2", "(112)", "1-1-2", " 112 ", "112\n", "\t999\r\n"])
def test_emergency_number_with_formatting_or_surrounding_blanks_is_emergency(raw: str) -> None:
    assert plan().classify(raw, "GB").is_emergency


def test_emergency_number_with_control_characters_inside_is_refused() -> None:
    dest = plan().classify("11\x002", "GB")
    assert not dest.is_emergency
    assert dest.reason == "contains control characters"


def test_every_regions_example_emergency_number_classifies_as_emergency() -> None:
    checked = 0
    failures = []
    for region in sorted(phonenumbers.SUPPORTED_SHORT_REGIONS):
        meta = PhoneMetadata.short_metadata_for_region(region)
        if meta is None or meta.emergency is None or not meta.emergency.example_number:
            continue
        dest = uncached().classify(meta.emergency.example_number, region)
        checked += 1
        if not (dest.is_emergency and dest.region == region):
            failures.append((region, meta.emergency.example_number, dest))
    assert failures == []
    assert checked >= 200
    assert plan().emergency_regions >= {"GB", "US", "DE", "FR", "PL", "NL", "IN", "AU", "BR"}


def test_emergency_number_lists_are_exactly_what_the_metadata_patterns_match() -> None:
    for region in sorted(phonenumbers.SUPPORTED_SHORT_REGIONS):
        meta = PhoneMetadata.short_metadata_for_region(region)
        if meta is None or meta.emergency is None or not meta.emergency.national_number_pattern:
            continue
        pattern = meta.emergency.national_number_pattern
        listed = _expand_finite(pattern)
        assert listed is not None, region
        compiled = re.compile(pattern)
        assert all(compiled.fullmatch(s) for s in listed), region
        for size in range(1, 4):
            for digits in map("".join, itertools.product("0123456789", repeat=size)):
                assert (digits in listed) == (compiled.fullmatch(digits) is not None), region


def test_pattern_expansion_gives_up_on_unbounded_or_unknown_syntax() -> None:
    assert _expand_finite("1\\d*") is None
    assert _expand_finite("1\\d{2,}") is None
    assert _expand_finite("[^1]2") is None
    assert _expand_finite("(?=1)1") is None
    assert _expand_finite("\\d{6}") is None  # a million strings: too many to list
    assert _expand_finite("11[02]|9(?:11?|2)") == frozenset({"110", "112", "91", "911", "92"})


# -- number types and regions -----------------------------------------------------------------


def test_e164_number_is_valid_with_its_region_and_type() -> None:
    dest = plan().classify("+442079460018", "US")
    assert dest == Destination(
        "+442079460018", "+442079460018", 44, "GB", NumberType.FIXED_LINE, False, True, None
    )


def test_national_number_is_read_in_the_home_regions_conventions() -> None:
    dest = plan().classify("020 7946 0018", "GB")
    assert dest.e164 == "+442079460018"
    assert dest.valid


@pytest.mark.parametrize(("raw", "home"), [("00442079460018", "DE"), ("011442079460018", "US")])
def test_international_prefix_of_the_home_region_is_read_like_plus(raw: str, home: str) -> None:
    assert plan().classify(raw, home).e164 == "+442079460018"


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("+12684601234", "AG"),
        ("+14165550123", "CA"),
        ("+12015550123", "US"),
        ("+77012345678", "KZ"),
        ("+74951234567", "RU"),
        ("+447624123456", "IM"),
        ("+390669812345", "VA"),
    ],
)
def test_shared_country_code_is_resolved_to_the_right_region(raw: str, region: str) -> None:
    assert plan().classify(raw, "GB").region == region


def test_premium_rate_number_is_typed_premium_rate() -> None:
    assert plan().classify("09001234567", "GB").number_type is NumberType.PREMIUM_RATE


@pytest.mark.parametrize(
    "raw", ["+870773111632", "+8816123456789", "+881612345678", "+88216123456"]
)
def test_satellite_services_are_typed_satellite(raw: str) -> None:
    dest = plan().classify(raw, "GB")
    assert (dest.valid, dest.region, dest.number_type) == (True, "001", NumberType.SATELLITE)


@pytest.mark.parametrize("raw", ["+883510012345", "+8823421234", "+878101234567890"])
def test_international_network_codes_are_typed_international_network(raw: str) -> None:
    assert plan().classify(raw, "GB").number_type is NumberType.INTERNATIONAL_NETWORK


@pytest.mark.parametrize(
    ("raw", "ntype"),
    [
        ("+80012345678", NumberType.TOLL_FREE),
        ("+80812345678", NumberType.SHARED_COST),
        ("+979123456789", NumberType.PREMIUM_RATE),
    ],
)
def test_global_services_keep_their_tariff_type(raw: str, ntype: NumberType) -> None:
    assert plan().classify(raw, "GB").number_type is ntype


def test_valid_short_number_of_the_home_region_is_a_short_code() -> None:
    dest = plan().classify("118118", "GB")
    assert (dest.valid, dest.number_type, dest.region, dest.e164) == (
        True,
        NumberType.SHORT_CODE,
        "GB",
        None,
    )


@pytest.mark.parametrize(("raw", "region"), [("1000", "FR"), ("24280", "US"), ("1204", "BE")])
def test_premium_rate_short_code_is_typed_premium_rate(raw: str, region: str) -> None:
    dest = plan().classify(raw, region)
    assert (dest.valid, dest.number_type) == (True, NumberType.PREMIUM_RATE)


def test_short_code_written_with_a_plus_is_not_a_short_code() -> None:
    assert not plan().classify("+118118", "GB").valid


def test_home_region_is_case_insensitive() -> None:
    assert plan().classify("112", "gb").is_emergency
    assert plan().classify("02079460018", " gb ").valid


def test_vanity_letters_are_read_as_keypad_digits() -> None:
    assert plan().classify("1-800-FLOWERS", "US").e164 == "+18003569377"


# -- invalid input and its reasons ------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "home", "reason"),
    [
        ("", "GB", "empty"),
        ("   ", "GB", "empty"),
        ("12\x0034", "GB", "contains control characters"),
        ("12\u202e34", "GB", "contains control characters"),
        ("1" * (MAX_INPUT_LENGTH + 1), "GB", "too long: 129 characters, at most 128"),
        ("hello", "GB", "not a phone number"),
        ("+999 1234567", "GB", "unknown country calling code"),
        ("0012", "GB", "too short after the international prefix"),
        ("+44 1234567890123456789", "GB", "too long to be a phone number"),
        ("+33 1234", "GB", "not a valid number for FR (+33)"),
        ("+44 20 7946 001", "GB", "not a valid number for any region of country code +44"),
        ("020 7946 001", "GB", "not a valid number or short code for GB (+44)"),
        ("+1 911", "US", "not a valid number for any region of country code +1"),
        ("+979 123", "GB", "not a valid number for the global service +979"),
    ],
)
def test_invalid_destination_says_what_is_wrong(raw: str, home: str, reason: str) -> None:
    dest = plan().classify(raw, home)
    assert not dest.valid
    assert not dest.is_emergency
    assert dest.number_type is NumberType.UNKNOWN
    assert dest.reason == reason


def test_national_number_with_an_unknown_home_region_is_refused_with_the_reason() -> None:
    dest = plan().classify("02079460018", "XX")
    assert not dest.valid
    assert dest.reason is not None
    assert "home region 'XX' is unknown" in dest.reason
    assert plan().classify("+442079460018", "XX").valid


def test_invalid_but_readable_number_keeps_its_e164_form() -> None:
    dest = plan().classify("+33 1234", "GB")
    assert (dest.e164, dest.country_code, dest.region) == ("+331234", 33, "FR")


# -- robustness ---------------------------------------------------------------------------------

_REGIONS = [*sorted(phonenumbers.SUPPORTED_REGIONS), "ZZ", "001", "", "gb", "xx"]


@given(
    st.one_of(
        st.text(max_size=40),
        st.text(alphabet="0123456789+", max_size=40),
        st.text(alphabet="0123456789+ -().#*x\x00\n\t\u0660\uff0b", max_size=40),
        st.text(min_size=MAX_INPUT_LENGTH - 2, max_size=MAX_INPUT_LENGTH + 2),
        st.text(alphabet=st.characters(max_codepoint=0x9F), max_size=20),
    ),
    st.one_of(st.sampled_from(_REGIONS), st.text(max_size=4)),
    st.lists(st.one_of(st.sampled_from(_REGIONS), st.text(max_size=3)), max_size=2),
)
@settings(max_examples=400, deadline=None)
def test_classify_never_raises_and_always_explains_invalid_input(
    raw: str, home: str, also: list[str]
) -> None:
    for candidate in (plan(), reference()):
        dest = candidate.classify(raw, home, tuple(also))
        assert isinstance(dest.number_type, NumberType)
        assert dest.valid == (dest.reason is None)
        assert dest.is_emergency == (dest.number_type is NumberType.EMERGENCY)


def test_very_long_input_is_refused_without_being_cached() -> None:
    dest = plan().classify("+44" + "1" * 100_000, "GB")
    assert dest.reason is not None
    assert dest.reason.startswith("too long")


def test_unhashable_also_regions_do_not_break_classification() -> None:
    dest = plan().classify("999", "US", also_regions=["GB"])  # type: ignore[arg-type]
    assert dest.is_emergency


# -- the fast path agrees with the full parse, and with phonenumbers --------------------------

_DIGIT_STRINGS = st.builds(
    lambda prefix, digits: prefix + digits,
    st.sampled_from(["", "", "+", "00", "011", "0", "+0", "8", "810"]),
    st.text(alphabet="0123456789", max_size=19),
)


@functools.cache
def _e164_examples() -> tuple[str, ...]:
    return tuple(
        phonenumbers.format_number(n, PhoneNumberFormat.E164)[1:] for n in example_numbers()
    )


_NEAR_VALID = st.builds(
    lambda prefix, digits, cut, tail: prefix + digits[: len(digits) - cut] + tail,
    st.sampled_from(["+", "00", "011", ""]),
    st.deferred(lambda: st.sampled_from(_e164_examples())),
    st.integers(0, 2),
    st.text(alphabet="0123456789", max_size=2),
)


@given(
    st.one_of(_DIGIT_STRINGS, _NEAR_VALID, st.text(alphabet="0123456789 -.()+", max_size=24)),
    st.sampled_from(_REGIONS),
)
@settings(max_examples=600, deadline=None)
def test_fast_path_gives_the_same_answer_as_the_full_parse(raw: str, home: str) -> None:
    assert uncached().classify(raw, home) == reference().classify(raw, home)


def test_example_number_corpus_agrees_with_phonenumbers() -> None:
    disagreements = []
    items = corpus()
    for raw, home in items:
        dest = uncached().classify(raw, home)
        expected = phonenumbers_answer(raw, home)
        if (dest.number_type, dest.valid) != expected:
            disagreements.append((raw, home, dest, expected))
    assert disagreements[:10] == []
    assert len(items) > 10_000


def test_example_numbers_of_every_type_are_valid_in_e164_form() -> None:
    invalid = [
        e164
        for e164 in ("+" + digits for digits in _e164_examples())
        if not plan().classify(e164, "US").valid
    ]
    assert invalid == []


# -- cache and sharing --------------------------------------------------------------------------


def test_repeated_classification_is_served_from_the_cache() -> None:
    numbering = NumberingPlan(cache_size=16)
    first = numbering.classify("+442079460018", "GB")
    assert numbering.classify("+442079460018", "GB") is first


def test_plan_without_cache_gives_equal_answers() -> None:
    assert NumberingPlan(cache_size=0).classify("999", "GB") == plan().classify("999", "GB")


def test_destination_is_immutable() -> None:
    dest = plan().classify("999", "GB")
    with pytest.raises(dataclasses.FrozenInstanceError):
        dest.valid = False  # type: ignore[misc]


def test_default_plan_is_shared() -> None:
    assert default_numbering_plan() is default_numbering_plan()


def test_concurrent_classification_gives_the_same_answers_as_sequential() -> None:
    items = corpus()[:2000]
    shared = NumberingPlan(cache_size=512)
    expected = [uncached().classify(raw, home) for raw, home in items]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda item: shared.classify(*item), items * 2))
    assert results == expected * 2
