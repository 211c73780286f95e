"""Checks on values that come from outside: countries, time zones, numbers, addresses, text.

Each check returns the normalised value or raises `InvalidInput` naming the field and what is
wrong with it, so every adapter reports bad input the same way.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Collection, Mapping
from enum import StrEnum
from functools import cache
from typing import TypeVar
from zoneinfo import available_timezones

import phonenumbers

from callwarden.core.clauses import unknown_clause_ids
from callwarden.core.errors import InvalidInput

Choice = TypeVar("Choice", bound=StrEnum)

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@cache
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_text(value: str, field: str, *, max_length: int = 200, allow_empty: bool = False) -> str:
    """Trimmed text without control characters, within `max_length`."""
    value = value.strip()
    if not value and not allow_empty:
        raise InvalidInput(f"{field} must not be empty", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"{field} is longer than {max_length} characters", field=field)
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise InvalidInput(f"{field} contains control characters", field=field)
    return value


def check_country(value: str, field: str = "country") -> str:
    """An ISO 3166 alpha-2 country code known to the numbering plan, upper-cased."""
    code = value.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput(
            f"{field} {value!r} is not an ISO 3166 alpha-2 country code", field=field
        )
    return code


def check_timezone(value: str, field: str = "timezone") -> str:
    """An IANA time zone name such as Europe/Warsaw."""
    if value not in _timezones():
        raise InvalidInput(f"{field} {value!r} is not an IANA time zone name", field=field)
    return value


def check_e164(value: str, field: str = "e164") -> str:
    """A valid phone number in E.164 form (+ and up to 15 digits)."""
    compact = value.strip().replace(" ", "").replace("-", "")
    if not _E164.fullmatch(compact):
        raise InvalidInput(
            f"{field} {value!r} is not in E.164 form (+ and 7 to 15 digits)", field=field
        )
    try:
        parsed = phonenumbers.parse(compact, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"{field} {value!r} is not a phone number: {exc}", field=field) from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidInput(
            f"{field} {value!r} is not a valid number in its numbering plan", field=field
        )
    return compact


def check_source_address(value: str, field: str = "source_addresses") -> str:
    """An IPv4 or IPv6 address or network in CIDR form, normalised (host bits must be zero)."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=True))
    except ValueError as exc:
        raise InvalidInput(
            f"{field}: {value!r} is not an IP address or network: {exc}", field=field
        ) from exc


def check_email(value: str, field: str = "email") -> str:
    """A plausible e-mail address, lower-cased (delivery is what proves it)."""
    value = check_text(value, field, max_length=320).lower()
    local, _, domain = value.partition("@")
    if not local or "." not in domain or " " in value or domain.startswith("."):
        raise InvalidInput(f"{field} {value!r} is not an e-mail address", field=field)
    return value


def check_clause_ids(
    ids: list[str] | tuple[str, ...], field: str = "clause_ids"
) -> tuple[str, ...]:
    """Clause ids that exist in the catalogue; at least one."""
    if not ids:
        raise InvalidInput(f"{field} must name at least one clause", field=field)
    unknown = unknown_clause_ids(list(ids))
    if unknown:
        raise InvalidInput(f"{field}: unknown clause ids {', '.join(unknown)}", field=field)
    return tuple(dict.fromkeys(ids))


def check_fields(data: Mapping[str, object], known: Collection[str], what: str) -> None:
    """Refuse an object holding a field outside `known`, naming the first such field (in
    sorted order) as "<field> is not a field of <what>"."""
    unknown = set(data) - set(known)
    if unknown:
        name = sorted(unknown)[0]
        raise InvalidInput(f"{name} is not a field of {what}", field=name)


def check_choice(value: object, choices: type[Choice], field: str) -> Choice:
    """`value` as a member of the enumeration `choices` (by its text); a refusal lists them."""
    try:
        return choices(str(value))
    except ValueError:
        raise InvalidInput(
            f"{field} must be one of {', '.join(c.value for c in choices)}", field=field
        ) from None
