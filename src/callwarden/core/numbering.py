"""Destination numbering: what kind of number is this call attempt dialling?

Admission asks this for every call attempt, so classification is built for the hot path.
:class:`NumberingPlan` reads the numbering library's metadata (``phonenumbers``) once, compiles
every pattern it needs, and then classifies a dial string without a full parse whenever the
string is plain digits (optionally with a leading ``+`` and the separators ``space - . ( )``),
which covers E.164, international (``00``/``011``...), national and short-number dialling.
Anything else (letters, RFC 3966 ``tel:`` URIs, extensions, non-ASCII digits) goes through
``phonenumbers.parse``. Both paths give the same answers; the tests hold them to it. A bounded
LRU cache sits in front of both.

The answers serve clauses CID-3 (emergency numbers are always admitted, so they must be
recognised in every region), FRD-1 (premium-rate, shared-cost, satellite and international-network
destinations are fraud risks) and CID-1 (a presented caller ID must be a valid number that is
not premium-rate).

Semantics follow ``phonenumbers``:

* A number is an emergency number when the short-number metadata of the region it is dialled in
  says so (``shortnumberinfo.is_emergency_number``). Formatting is ignored (``"1 1 2"`` is 112),
  but a number written with a ``+`` (``"+1 911"``, ``"+44 999"``) is never an emergency number:
  emergency services are reached by dialling the national short form.
* Validity and number type are those of ``phonenumbers.is_valid_number`` and
  ``phonenumbers.number_type``, with the non-geographic satellite codes reported as
  ``satellite`` and the international-network codes as ``international_network``.
* A national-format input that is not a valid full number but is a valid short number of the
  home region (``shortnumberinfo.is_valid_short_number_for_region``) is a ``short_code``, or
  ``premium_rate`` when the short-number metadata puts it in the premium-rate cost category.

This module is part of the pure core: it does no I/O.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import phonenumbers
from phonenumbers import (
    NumberParseException,
    PhoneMetadata,
    PhoneNumberDesc,
    PhoneNumberType,
    shortnumberinfo,
)
from phonenumbers.phonenumber import CountryCodeSource

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "HIGH_RISK_TYPES",
    "INTERNATIONAL_NETWORK_COUNTRY_CODES",
    "MAX_INPUT_LENGTH",
    "SATELLITE_PREFIXES",
    "Destination",
    "NumberType",
    "NumberingPlan",
    "default_numbering_plan",
]


class NumberType(enum.StrEnum):
    """The kind of destination a number reaches.

    The values are those of ``phonenumbers.PhoneNumberType`` plus what admission also needs to
    tell apart: satellite services, international networks, emergency numbers and short codes.
    The string values are stable and safe to store or put in a policy document.
    """

    FIXED_LINE = "fixed_line"
    MOBILE = "mobile"
    FIXED_LINE_OR_MOBILE = "fixed_line_or_mobile"
    TOLL_FREE = "toll_free"
    PREMIUM_RATE = "premium_rate"
    SHARED_COST = "shared_cost"
    VOIP = "voip"
    PERSONAL_NUMBER = "personal_number"
    PAGER = "pager"
    UAN = "uan"
    VOICEMAIL = "voicemail"
    SATELLITE = "satellite"
    INTERNATIONAL_NETWORK = "international_network"
    EMERGENCY = "emergency"
    SHORT_CODE = "short_code"
    UNKNOWN = "unknown"


#: Number types that clause FRD-1 names as fraud risks (over-priced destinations).
HIGH_RISK_TYPES: Final[frozenset[NumberType]] = frozenset(
    {
        NumberType.PREMIUM_RATE,
        NumberType.SHARED_COST,
        NumberType.SATELLITE,
        NumberType.INTERNATIONAL_NETWORK,
    }
)

#: E.164 digit prefixes of satellite services: +870 Inmarsat, +881 GMSS (Iridium 8816/8817,
#: Globalstar 8818/8819, ...), and Thuraya, which sits in the international-network code as
#: +882 16. ``phonenumbers`` types these ranges as mobile or VoIP.
SATELLITE_PREFIXES: Final[tuple[str, ...]] = ("870", "881", "88216")

#: Non-geographic codes of global networks and services without a tariff class of their own:
#: +878 Universal Personal Telecommunications, +882 and +883 international networks, +888
#: OCHA. The other non-geographic codes keep the type their metadata gives them: +800 toll-free,
#: +808 shared-cost, +979 premium-rate; +870 and +881 are satellite.
INTERNATIONAL_NETWORK_COUNTRY_CODES: Final[frozenset[int]] = frozenset({878, 882, 883, 888})

#: Longest dial string accepted, in characters, before any stripping. E.164 numbers have at
#: most 15 digits; the rest is room for formatting and an international prefix.
MAX_INPUT_LENGTH: Final[int] = 128

#: Default bound of the classification cache, in entries.
DEFAULT_CACHE_SIZE: Final[int] = 65_536

_NON_GEO_REGION: Final[str] = "001"
_MIN_NSN: Final[int] = 2
_MAX_NSN: Final[int] = 17

_TYPE_FROM_PHONENUMBERS: Final[dict[int, NumberType]] = {
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
    PhoneNumberType.UNKNOWN: NumberType.UNKNOWN,
}

# Types tested before fixed line and mobile, in phonenumbers' order (_number_type_helper).
_PRIORITY_TYPES: Final[tuple[tuple[str, NumberType], ...]] = (
    ("premium_rate", NumberType.PREMIUM_RATE),
    ("toll_free", NumberType.TOLL_FREE),
    ("shared_cost", NumberType.SHARED_COST),
    ("voip", NumberType.VOIP),
    ("personal_number", NumberType.PERSONAL_NUMBER),
    ("pager", NumberType.PAGER),
    ("uan", NumberType.UAN),
    ("voicemail", NumberType.VOICEMAIL),
)

_PARSE_ERROR_REASONS: Final[dict[int, str]] = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country calling code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "too short to be a phone number",
    NumberParseException.TOO_LONG: "too long to be a phone number",
}

# C0 and C1 controls, line and paragraph separators, bidirectional embedding/override/isolate.
_CONTROL_RE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Strings the fast path reads: ASCII digits, one optional leading '+', simple separators.
_FAST_RE: Final = re.compile(r"\+?[0-9 ().\-]*", re.ASCII)
_SEPARATORS: Final[dict[int, None]] = dict.fromkeys(map(ord, " ().-"))

# _test_number_length outcomes that matter here.
_LEN_POSSIBLE: Final = 0
_LEN_TOO_SHORT: Final = 1
_LEN_TOO_LONG: Final = 2
_LEN_INVALID: Final = 3
_LEN_LOCAL_ONLY: Final = 4

_FullMatch = Callable[[str], "re.Match[str] | None"]
# (possible lengths, empty meaning "any"; compiled fullmatch)
_Desc = tuple[frozenset[int], _FullMatch]


@dataclass(frozen=True, slots=True)
class Destination:
    """The classification of one dial string, as admission and surveillance use it.

    ``e164`` is the canonical ``+<country code><national number>`` form whenever the input could be
    read as a full number, even one that is not valid (check ``valid``); it is ``None`` for
    emergency numbers, short codes and unreadable input. ``region`` is the ISO 3166 alpha-2 code
    of the number's region, ``"001"`` for non-geographic (global) codes, or ``None`` when no
    region could be told. For emergency numbers and short codes, ``country_code`` and ``region``
    are those of the region where the number is one. ``reason`` says, in plain words, why an
    invalid destination is invalid, and is ``None`` for valid ones.
    """

    raw: str
    e164: str | None
    country_code: int | None
    region: str | None
    number_type: NumberType
    is_emergency: bool
    valid: bool
    reason: str | None = None


class _Region:
    """Compiled metadata of one region (or one non-geographic code) for full numbers."""

    __slots__ = (
        "cc",
        "cc_str",
        "fixed",
        "general",
        "general_fm",
        "id",
        "idd",
        "leading",
        "local_lengths",
        "mobile",
        "national_prefix",
        "possible_lengths",
        "priority",
        "priority_by_length",
        "same_mobile_and_fixed",
        "transform",
    )

    def __init__(self, meta: PhoneMetadata, cc: int) -> None:
        self.id: str = meta.id
        self.cc: int = cc
        self.cc_str: str = str(cc)
        general = meta.general_desc or PhoneNumberDesc()
        self.general: _Desc | None = _compile_desc(general)
        pattern = general.national_number_pattern
        self.general_fm: _FullMatch | None = re.compile(pattern).fullmatch if pattern else None
        self.possible_lengths: tuple[int, ...] = tuple(general.possible_length)
        self.local_lengths: frozenset[int] = frozenset(general.possible_length_local_only)
        self.priority: tuple[tuple[NumberType, frozenset[int], _FullMatch], ...] = tuple(
            (ntype, *desc)
            for attr, ntype in _PRIORITY_TYPES
            if (desc := _compile_desc(getattr(meta, attr))) is not None
        )
        self.priority_by_length: dict[int, _Combined] = _combine_priority(meta)
        self.fixed: _Desc | None = _compile_desc(meta.fixed_line)
        self.mobile: _Desc | None = _compile_desc(meta.mobile)
        self.same_mobile_and_fixed: bool = bool(meta.same_mobile_and_fixed_line_pattern)
        self.leading: re.Pattern[str] | None = (
            re.compile(meta.leading_digits) if meta.leading_digits is not None else None
        )
        self.idd: re.Pattern[str] | None = (
            re.compile(meta.international_prefix) if meta.international_prefix else None
        )
        self.national_prefix: re.Pattern[str] | None = (
            re.compile(meta.national_prefix_for_parsing)
            if meta.national_prefix_for_parsing
            else None
        )
        self.transform: str | None = meta.national_prefix_transform_rule or None


class _ShortNumbers:
    """Compiled short-number metadata of one region: emergency numbers and short codes."""

    __slots__ = (
        "emergency_exact",
        "emergency_fm",
        "emergency_max",
        "general",
        "general_lengths",
        "premium",
        "short",
    )

    def __init__(self, meta: PhoneMetadata) -> None:
        emergency = meta.emergency
        pattern = emergency.national_number_pattern if emergency is not None else None
        self.emergency_fm: _FullMatch | None = re.compile(pattern).fullmatch if pattern else None
        exact = _expand_finite(pattern) if pattern else None
        if exact is not None and self.emergency_fm is not None:
            fm = self.emergency_fm
            if not all(fm(s) for s in exact):  # pragma: no cover - guards the expander
                exact = None
        self.emergency_exact: frozenset[str] | None = exact
        # phonenumbers matches the emergency pattern without looking at possible lengths, so the
        # length bound (a cheap early exit) comes from the expansion, never from the metadata.
        self.emergency_max: int = max(map(len, exact)) if exact else MAX_INPUT_LENGTH
        self.general: _Desc | None = _compile_desc(meta.general_desc)
        self.general_lengths: frozenset[int] = frozenset(
            meta.general_desc.possible_length if meta.general_desc is not None else ()
        )
        self.short: _Desc | None = _compile_desc(meta.short_code)
        self.premium: _Desc | None = _compile_desc(meta.premium_rate)

    def is_emergency(self, digits: str) -> bool:
        """Whether ``digits`` (ASCII digits only) is an emergency number here."""
        if len(digits) > self.emergency_max:
            return False
        if self.emergency_exact is not None:
            return digits in self.emergency_exact
        return self.emergency_fm is not None and self.emergency_fm(digits) is not None

    def short_code_type(self, nsn: str) -> NumberType | None:
        """The type of ``nsn`` as a short code here, or ``None`` if it is not a valid one.

        Mirrors ``is_valid_short_number_for_region`` and the premium-rate test of
        ``expected_cost_for_region``.
        """
        if not _desc_matches(self.general, nsn) or not _desc_matches(self.short, nsn):
            return None
        if len(nsn) in self.general_lengths and _desc_matches(self.premium, nsn):
            return NumberType.PREMIUM_RATE
        return NumberType.SHORT_CODE


_Combined = tuple[_FullMatch, dict[int, NumberType]]
"""One alternation of several type patterns, and the type behind each alternative's group."""


def _combine_priority(meta: PhoneMetadata) -> dict[int, _Combined]:
    """Per number length, the types phonenumbers tests before fixed line and mobile (premium
    rate first), joined into one alternation in that order.

    A full match of ``(p1)|(p2)|...`` is the first alternative that matches the whole number,
    so the group that matched names the same type as testing the patterns one by one, at the
    cost of one regular-expression call instead of up to eight per classification.
    """
    descs = [
        (ntype, desc)
        for attr, ntype in _PRIORITY_TYPES
        if (desc := getattr(meta, attr)) is not None and desc.national_number_pattern
    ]
    lengths = {n for _, desc in descs for n in desc.possible_length}
    combined: dict[int, _Combined] = {}
    for n in sorted(lengths | set((meta.general_desc or PhoneNumberDesc()).possible_length)):
        parts: list[str] = []
        types: dict[int, NumberType] = {}
        group = 1
        for ntype, desc in descs:
            if desc.possible_length and n not in desc.possible_length:
                continue
            parts.append(f"({desc.national_number_pattern})")
            types[group] = ntype
            group += 1 + re.compile(desc.national_number_pattern).groups
        if parts:
            combined[n] = (re.compile("|".join(parts)).fullmatch, types)
    return combined


def _compile_desc(desc: PhoneNumberDesc | None) -> _Desc | None:
    """Compile a PhoneNumberDesc; ``None`` when it can match nothing (as phonenumbers treats it)."""
    if desc is None or not desc.national_number_pattern:
        return None
    return frozenset(desc.possible_length), re.compile(desc.national_number_pattern).fullmatch


def _desc_matches(desc: _Desc | None, nsn: str) -> bool:
    """phonenumbers' ``_is_number_matching_desc`` over a compiled description."""
    if desc is None:
        return False
    lengths, fullmatch = desc
    return (not lengths or len(nsn) in lengths) and fullmatch(nsn) is not None


def _type_of(nsn: str, region: _Region) -> NumberType:
    """The number type of a national significant number in one region (``_number_type_helper``)."""
    general = region.general
    if general is None:
        return NumberType.UNKNOWN
    n = len(nsn)
    lengths, fullmatch = general
    if (lengths and n not in lengths) or fullmatch(nsn) is None:
        return NumberType.UNKNOWN
    combined = region.priority_by_length.get(n)
    if combined is not None:
        match = combined[0](nsn)
        if match is not None:
            return combined[1][match.lastindex or 0]
    else:
        for ntype, lengths, fullmatch in region.priority:
            if (not lengths or n in lengths) and fullmatch(nsn) is not None:
                return ntype
    if _desc_matches(region.fixed, nsn):
        if region.same_mobile_and_fixed or _desc_matches(region.mobile, nsn):
            return NumberType.FIXED_LINE_OR_MOBILE
        return NumberType.FIXED_LINE
    if not region.same_mobile_and_fixed and _desc_matches(region.mobile, nsn):
        return NumberType.MOBILE
    return NumberType.UNKNOWN


def _region_and_type(nsn: str, candidates: tuple[_Region, ...]) -> tuple[str | None, NumberType]:
    """Pick the region of a country code that a number belongs to, and type it there.

    Mirrors ``region_code_for_number``: a region with leading digits claims the numbers that
    start with them; a region without them claims the numbers valid in it; the first claim wins.
    """
    if len(candidates) == 1:
        only = candidates[0]
        return only.id, _type_of(nsn, only)
    for candidate in candidates:
        if candidate.leading is not None:
            if candidate.leading.match(nsn) is not None:
                return candidate.id, _type_of(nsn, candidate)
        else:
            ntype = _type_of(nsn, candidate)
            if ntype is not NumberType.UNKNOWN:
                return candidate.id, ntype
    return None, NumberType.UNKNOWN


def _test_length(nsn: str, region: _Region) -> int:
    """phonenumbers' ``_test_number_length`` for the general description of a region."""
    n = len(nsn)
    if n in region.local_lengths:
        return _LEN_LOCAL_ONLY
    lengths = region.possible_lengths
    if not lengths:  # pragma: no cover - every region has possible lengths
        return _LEN_INVALID
    shortest = lengths[0]
    if shortest == n:
        return _LEN_POSSIBLE
    if shortest > n:
        return _LEN_TOO_SHORT
    if lengths[-1] < n:
        return _LEN_TOO_LONG
    return _LEN_POSSIBLE if n in lengths[1:] else _LEN_INVALID


def _strip_national_prefix(number: str, region: _Region) -> str:
    """phonenumbers' ``_maybe_strip_national_prefix_carrier_code``, returning the number only."""
    prefix = region.national_prefix
    if not number or prefix is None:
        return number
    match = prefix.match(number)
    if match is None:
        return number
    general = region.general_fm
    viable = general is not None and general(number) is not None
    groups = match.groups()
    transform = region.transform
    if transform is None or not groups or groups[-1] is None:
        candidate = number[match.end() :]
    else:
        candidate = prefix.sub(transform, number, count=1)
    if viable and (general is None or general(candidate) is None):
        return number
    return candidate


def _refine_type(cc: int, nsn: str, ntype: NumberType) -> NumberType:
    """Report satellite and international-network codes as such (FRD-1 risk classes)."""
    if not 870 <= cc <= 888:  # also keeps geographic 880 (BD) and 886 (TW) out of the way
        return ntype
    digits = f"{cc}{nsn}"
    if digits.startswith(SATELLITE_PREFIXES):
        return NumberType.SATELLITE
    if cc in INTERNATIONAL_NETWORK_COUNTRY_CODES:
        return NumberType.INTERNATIONAL_NETWORK
    return ntype


def _invalid_number_reason(cc: int, region: str | None, national: bool) -> str:
    """Plain-words reason for a number that parsed but is not valid."""
    if region == _NON_GEO_REGION:
        where = f"the global service +{cc}"
    elif region is None:
        where = f"any region of country code +{cc}"
    else:
        where = f"{region} (+{cc})"
    what = "a valid number or short code" if national else "a valid number"
    return f"not {what} for {where}"


def _invalid(raw: str, reason: str) -> Destination:
    """A destination that could not be read as a number at all."""
    return Destination(raw, None, None, None, NumberType.UNKNOWN, False, False, reason)


class _NotFinite(Exception):
    """The pattern uses syntax the expander does not handle, or matches too many strings."""


class _Expander:
    """Lists every string matched by a finite digit pattern (emergency-number patterns).

    Handles what the short-number metadata uses: digits, ``\\d``, character classes of digits
    and ranges, ``(?:...)`` and ``(...)`` groups, ``|``, ``?`` and ``{n}``/``{n,m}``.
    """

    __slots__ = ("limit", "pattern", "pos")

    def __init__(self, pattern: str, limit: int) -> None:
        self.pattern = pattern
        self.limit = limit
        self.pos = 0

    def peek(self) -> str:
        return self.pattern[self.pos] if self.pos < len(self.pattern) else ""

    def product(self, left: set[str], right: set[str]) -> set[str]:
        if len(left) * len(right) > self.limit:
            raise _NotFinite
        return {a + b for a in left for b in right}

    def alternation(self) -> set[str]:
        strings = self.sequence()
        while self.peek() == "|":
            self.pos += 1
            strings |= self.sequence()
        return strings

    def sequence(self) -> set[str]:
        strings = {""}
        while self.peek() not in ("", "|", ")"):
            strings = self.product(strings, self.quantified())
        return strings

    def quantified(self) -> set[str]:
        atom = self.atom()
        char = self.peek()
        if char == "?":
            self.pos += 1
            return atom | {""}
        if char == "{":
            end = self.pattern.index("}", self.pos)
            body = self.pattern[self.pos + 1 : end]
            self.pos = end + 1
            low_text, comma, high_text = body.partition(",")
            low = int(low_text)
            high = int(high_text) if comma else low
            if high < low:
                raise _NotFinite
            strings: set[str] = set()
            power = {""}
            for count in range(high + 1):
                if count >= low:
                    strings |= power
                if count < high:
                    power = self.product(power, atom)
            return strings
        if char in ("*", "+"):
            raise _NotFinite
        return atom

    def atom(self) -> set[str]:
        char = self.peek()
        if char != "" and char in _ASCII_DIGITS:
            self.pos += 1
            return {char}
        if self.pattern.startswith("\\d", self.pos):
            self.pos += 2
            return set(_ASCII_DIGITS)
        if char == "[":
            return self.char_class()
        if char == "(":
            if self.pattern.startswith("(?:", self.pos):
                self.pos += 3
            elif self.pattern.startswith("(?", self.pos):
                raise _NotFinite
            else:
                self.pos += 1
            inner = self.alternation()
            if self.peek() != ")":
                raise _NotFinite
            self.pos += 1
            return inner
        raise _NotFinite

    def char_class(self) -> set[str]:
        self.pos += 1
        chars: set[str] = set()
        while (char := self.peek()) != "]":
            if self.pattern.startswith("\\d", self.pos):
                chars.update(_ASCII_DIGITS)
                self.pos += 2
                continue
            if char == "" or char not in _ASCII_DIGITS:
                raise _NotFinite
            after = self.pattern[self.pos + 1 : self.pos + 3]
            if len(after) == 2 and after[0] == "-" and after[1] in _ASCII_DIGITS:
                chars.update(str(d) for d in range(int(char), int(after[1]) + 1))
                self.pos += 3
            else:
                chars.add(char)
                self.pos += 1
        self.pos += 1
        return chars


_ASCII_DIGITS: Final[str] = "0123456789"


def _expand_finite(pattern: str, limit: int = 4096) -> frozenset[str] | None:
    """Every string ``pattern`` fully matches, or ``None`` when that cannot be listed cheaply."""
    expander = _Expander(pattern, limit)
    try:
        strings = expander.alternation()
        if expander.pos != len(pattern):
            return None
    except (_NotFinite, ValueError):
        return None
    return frozenset(strings)


@dataclass(frozen=True, slots=True)
class _Tables:
    """Everything compiled from the metadata; immutable, shared by every plan."""

    regions: dict[str, _Region]
    by_cc: dict[int, tuple[_Region, ...]]
    main: dict[int, _Region]
    cc_strings: dict[str, int]
    short: dict[str, _ShortNumbers]


@functools.cache
def _compiled_tables() -> _Tables:
    """Compile the metadata of every region once per process."""
    regions: dict[str, _Region] = {}
    by_cc: dict[int, tuple[_Region, ...]] = {}
    main: dict[int, _Region] = {}
    for cc, region_ids in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        compiled: list[_Region] = []
        for region_id in region_ids:
            if region_id == _NON_GEO_REGION:
                meta = PhoneMetadata.metadata_for_nongeo_region(cc)
            else:
                meta = PhoneMetadata.metadata_for_region(region_id)
            if meta is None:  # pragma: no cover - phonenumbers lists only known regions
                continue
            region = _Region(meta, cc)
            compiled.append(region)
            if region_id != _NON_GEO_REGION:
                regions[region_id] = region
        if compiled:
            by_cc[cc] = tuple(compiled)
            # phonenumbers reads national prefixes with the main region's metadata.
            if compiled[0].id == region_ids[0]:
                main[cc] = compiled[0]
    short: dict[str, _ShortNumbers] = {}
    for region_id in phonenumbers.SUPPORTED_SHORT_REGIONS:
        short_meta = PhoneMetadata.short_metadata_for_region(region_id)
        if short_meta is not None:
            short[region_id] = _ShortNumbers(short_meta)
    return _Tables(regions, by_cc, main, {str(cc): cc for cc in by_cc}, short)


class NumberingPlan:
    """Classifies dial strings against the world's numbering plans, fast enough for admission.

    Construct once and share it. The first plan in a process compiles the metadata of every
    region (a few tenths of a second); later plans reuse those tables. After construction a
    plan is immutable apart from its LRU cache, which is safe to use from many threads.

    ``cache_size`` bounds the LRU cache in front of :meth:`classify` (0 disables it).
    ``fast_path=False`` sends every string through ``phonenumbers.parse``; it exists to check
    and measure the fast path, not for production use.
    """

    __slots__ = ("_by_cc", "_cached", "_cc_strings", "_fast_path", "_main", "_regions", "_short")

    def __init__(self, *, cache_size: int = DEFAULT_CACHE_SIZE, fast_path: bool = True) -> None:
        tables = _compiled_tables()
        self._regions = tables.regions
        self._by_cc = tables.by_cc
        self._main = tables.main
        self._cc_strings = tables.cc_strings
        self._short = tables.short
        self._fast_path = fast_path
        self._cached: functools._lru_cache_wrapper[Destination] | None = (
            functools.lru_cache(maxsize=cache_size)(self._classify) if cache_size > 0 else None
        )

    @property
    def regions(self) -> frozenset[str]:
        """The regions whose numbering plan is known (valid values of ``home_region``)."""
        return frozenset(self._regions)

    @property
    def emergency_regions(self) -> frozenset[str]:
        """The regions for which the metadata lists emergency numbers."""
        return frozenset(r for r, s in self._short.items() if s.emergency_fm is not None)

    def classify(
        self, raw: str, home_region: str, also_regions: tuple[str, ...] = ()
    ) -> Destination:
        """Classify a dial string as dialled by a tenant in ``home_region``.

        ``home_region`` (ISO 3166 alpha-2, any case) is the tenant's country: national and short
        numbers are read in its dialling conventions, and its emergency numbers are recognised.
        ``also_regions`` adds regions whose emergency numbers are recognised too, such as the
        user's own country when it differs from the tenant's; they change nothing else.

        Never raises for a string: bad input gives an invalid destination with its reason.
        Results are cached by ``(raw, home_region, also_regions)``.
        """
        cached = self._cached
        if cached is None or not isinstance(raw, str) or len(raw) > MAX_INPUT_LENGTH:
            return self._classify(raw, home_region, also_regions)
        try:
            return cached(raw, home_region, also_regions)
        except TypeError:  # an unhashable argument: classify without the cache
            return self._classify(raw, home_region, also_regions)

    def is_emergency(self, raw: str, region: str) -> bool:
        """Whether ``raw`` is an emergency number when dialled in ``region``."""
        return self.classify(raw, region).is_emergency

    def cache_clear(self) -> None:
        """Empty the classification cache (for measurements and tests)."""
        if self._cached is not None:
            self._cached.cache_clear()

    def _classify(self, raw: str, home_region: str, also_regions: tuple[str, ...]) -> Destination:
        if not isinstance(raw, str):
            return _invalid(repr(raw), "not a string")
        if len(raw) > MAX_INPUT_LENGTH:
            return _invalid(raw, f"too long: {len(raw)} characters, at most {MAX_INPUT_LENGTH}")
        text = raw.strip()
        if not text:
            return _invalid(raw, "empty")
        if _CONTROL_RE.search(text) is not None:
            return _invalid(raw, "contains control characters")
        home = home_region.strip().upper() if isinstance(home_region, str) else ""
        also = (
            tuple(
                region
                for region in (r.strip().upper() for r in also_regions if isinstance(r, str))
                if region != home
            )
            if also_regions
            else ()
        )
        if self._fast_path and _FAST_RE.fullmatch(text) is not None:
            result = self._classify_fast(raw, text, home, also)
            if result is not None:
                return result
        return self._classify_slow(raw, text, home, also)

    def _emergency(self, raw: str, region_id: str) -> Destination:
        region = self._regions.get(region_id)
        cc = region.cc if region is not None else None
        return Destination(raw, None, cc, region_id, NumberType.EMERGENCY, True, True, None)

    def _split_cc(self, digits: str) -> tuple[int, str]:
        """phonenumbers' ``_extract_country_code``: (0, digits) when there is none."""
        if digits[0] == "0":
            return 0, digits
        cc_strings = self._cc_strings
        for size in (1, 2, 3):
            cc = cc_strings.get(digits[:size])
            if cc is not None:
                return cc, digits[size:]
        return 0, digits

    def _classify_fast(
        self, raw: str, text: str, home: str, also: tuple[str, ...]
    ) -> Destination | None:
        """Classify ASCII digits with an optional leading '+' and separators, without parsing.

        Follows ``phonenumbers.parse`` step by step over precompiled metadata; returns ``None``
        for the rare inputs it leaves to the full parse (errors, odd edge cases).
        """
        plus = text[0] == "+"
        digits = text[1:] if plus else text
        if not digits.isdigit():
            digits = digits.translate(_SEPARATORS)
        if not plus:
            short = self._short.get(home)
            if short is not None and short.is_emergency(digits):
                return self._emergency(raw, home)
            for region_id in also:
                short = self._short.get(region_id)
                if short is not None and short.is_emergency(digits):
                    return self._emergency(raw, region_id)
        if len(digits) < 3:
            return None
        national = False
        if plus:
            cc, nsn = self._split_cc(digits)
            strip_with = self._main.get(cc)
        else:
            home_meta = self._regions.get(home)
            if home_meta is None:
                return None
            after_idd = None
            idd = home_meta.idd
            if idd is not None:
                match = idd.match(digits)
                if match is not None and not digits.startswith("0", match.end()):
                    after_idd = digits[match.end() :]
            if after_idd is not None:
                if len(after_idd) <= _MIN_NSN:
                    return None
                cc, nsn = self._split_cc(after_idd)
                strip_with = self._main.get(cc)
            else:
                cc, nsn, strip_with, national = home_meta.cc, digits, home_meta, True
                if digits.startswith(home_meta.cc_str):
                    # Maybe the home country code written without '+' (phonenumbers' rule).
                    general = home_meta.general_fm
                    rest = _strip_national_prefix(digits[len(home_meta.cc_str) :], home_meta)
                    if (
                        general is not None
                        and general(digits) is None
                        and general(rest) is not None
                    ) or _test_length(digits, home_meta) == _LEN_TOO_LONG:
                        nsn, strip_with, national = rest, self._main.get(cc), False
        if strip_with is None or len(nsn) < _MIN_NSN:
            return None
        stripped = _strip_national_prefix(nsn, strip_with)
        if _test_length(stripped, strip_with) in (_LEN_POSSIBLE, _LEN_TOO_LONG):
            nsn = stripped
        if not _MIN_NSN <= len(nsn) <= _MAX_NSN:
            return None
        region, ntype = _region_and_type(nsn, self._by_cc[cc])
        short_type = None
        if national and ntype is NumberType.UNKNOWN:
            short = self._short.get(home)
            if short is not None:
                short_type = short.short_code_type(nsn)
        return self._number(raw, cc, nsn, region, ntype, short_type, national, home)

    def _classify_slow(self, raw: str, text: str, home: str, also: tuple[str, ...]) -> Destination:
        """Classify anything with ``phonenumbers``' own parser and predicates."""
        for dialled_in in (home, *also):
            if dialled_in in self._short and shortnumberinfo.is_emergency_number(text, dialled_in):
                return self._emergency(raw, dialled_in)
        home_known = home in self._regions
        try:
            number = phonenumbers.parse(text, home if home_known else None, keep_raw_input=True)
            cc = number.country_code
            if cc is None:  # pragma: no cover - parse always sets it
                return _invalid(raw, "no country calling code")
            nsn = phonenumbers.national_significant_number(number)
            region_id = phonenumbers.region_code_for_number(number)
            ntype = _TYPE_FROM_PHONENUMBERS.get(
                phonenumbers.number_type(number), NumberType.UNKNOWN
            )
            national = number.country_code_source == CountryCodeSource.FROM_DEFAULT_COUNTRY
            short_type = None
            if (
                national
                and home_known
                and ntype is NumberType.UNKNOWN
                and shortnumberinfo.is_valid_short_number_for_region(number, home)
            ):
                premium = (
                    shortnumberinfo.expected_cost_for_region(number, home)
                    == shortnumberinfo.ShortNumberCost.PREMIUM_RATE
                )
                short_type = NumberType.PREMIUM_RATE if premium else NumberType.SHORT_CODE
        except NumberParseException as exc:
            reason = _PARSE_ERROR_REASONS.get(exc.error_type, "not a phone number")
            if not home_known:
                reason += f" (home region {home!r} is unknown, so national numbers cannot be read)"
            return _invalid(raw, reason)
        except Exception:  # a third-party parser must never fail an admission
            return _invalid(raw, "could not be read as a phone number")
        return self._number(raw, cc, nsn, region_id, ntype, short_type, national, home)

    def _number(
        self,
        raw: str,
        cc: int,
        nsn: str,
        region_id: str | None,
        ntype: NumberType,
        short_type: NumberType | None,
        national: bool,
        home: str,
    ) -> Destination:
        """Assemble the destination for input that parsed into a country code and number."""
        if ntype is not NumberType.UNKNOWN:
            ntype = _refine_type(cc, nsn, ntype)
            return Destination(raw, f"+{cc}{nsn}", cc, region_id, ntype, False, True, None)
        if short_type is not None:
            return Destination(raw, None, cc, home, short_type, False, True, None)
        reason = _invalid_number_reason(cc, home if national else region_id, national)
        return Destination(raw, f"+{cc}{nsn}", cc, region_id, ntype, False, False, reason)


@functools.cache
def default_numbering_plan() -> NumberingPlan:
    """The process-wide plan with default settings, built on first use."""
    return NumberingPlan()
