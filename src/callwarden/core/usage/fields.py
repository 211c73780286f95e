"""Small checks shared by the normalisers: text, numbers, addresses, SIP codes, directions.

Each returns the cleaned value or raises UsageError naming the field, so every format reports
bad input the same way. They are deliberately cheap (no per-character Python loops): the
normalisers run them for every record of files with millions of lines.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callwarden.core.admission.attempt import Direction
from callwarden.core.usage.record import ATTESTATIONS, Disposition, UsageError

__all__ = [
    "MAX_TEXT",
    "attestation",
    "csv_rows",
    "direction",
    "disposition_for_sip_code",
    "optional_text",
    "required_text",
    "source_ip",
    "whole_seconds",
    "zone",
]

MAX_TEXT = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
"""Dotted IPv4 without leading zeros: already canonical, so ipaddress is not needed."""
_DIRECTIONS = {
    "outbound": Direction.OUTBOUND,
    "out": Direction.OUTBOUND,
    "inbound": Direction.INBOUND,
    "in": Direction.INBOUND,
}


def csv_rows(text: str) -> list[list[str]]:
    """The CSV rows of ``text``; a quoted cell keeps the line breaks inside it, so a value is
    never silently changed by being read (csv.Error when the text is not CSV)."""
    return list(csv.reader(io.StringIO(text, newline="")))


def optional_text(value: str | None, field: str) -> str | None:
    """Trimmed text, or None when absent or blank; refuses control characters and overlong text."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > MAX_TEXT:
        raise UsageError(f"{field} is longer than {MAX_TEXT} characters", field=field)
    if not (value.isascii() and value.isprintable()) and _CONTROL.search(value):
        raise UsageError(f"{field} contains control characters", field=field)
    return value


def required_text(value: str | None, field: str) -> str:
    """Trimmed text that must be present."""
    cleaned = optional_text(value, field)
    if cleaned is None:
        raise UsageError(f"{field} is missing", field=field)
    return cleaned


def whole_seconds(value: str | None, field: str) -> int | None:
    """A non-negative whole number of seconds written as text ("12", "12.000" also accepted)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        number = int(text)
    except ValueError:
        try:
            number = int(float(text))
        except ValueError:
            raise UsageError(f"{field} {text!r} is not a number of seconds", field=field) from None
    if number < 0:
        raise UsageError(f"{field} must not be negative (got {text})", field=field)
    return number


def source_ip(value: str | None, field: str = "source_ip") -> str | None:
    """An IPv4 or IPv6 address in canonical form (brackets around IPv6 are removed)."""
    text = optional_text(value, field)
    if text is None:
        return None
    if _IPV4.fullmatch(text):
        return text
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"{field} {text!r} is not an IP address", field=field) from None


def direction(value: str | None, field: str = "direction") -> Direction | None:
    """inbound/outbound (also in/out), or None when absent."""
    text = optional_text(value, field)
    if text is None:
        return None
    found = _DIRECTIONS.get(text.lower())
    if found is None:
        raise UsageError(f"{field} {text!r} is not inbound or outbound", field=field)
    return found


def attestation(value: str | None, field: str = "attestation") -> str | None:
    """A STIR/SHAKEN attestation level A, B or C (case-insensitive), or None."""
    text = optional_text(value, field)
    if text is None:
        return None
    level = text.upper()
    if level not in ATTESTATIONS:
        raise UsageError(f"{field} {text!r} is not A, B or C", field=field)
    return level


def disposition_for_sip_code(code: int) -> Disposition:
    """How a call ended, from the final SIP response code of its INVITE."""
    if 200 <= code < 300:
        return Disposition.ANSWERED
    if code in (486, 600):
        return Disposition.BUSY
    if code == 487:
        return Disposition.CANCELLED
    if code in (408, 480):
        return Disposition.NO_ANSWER
    return Disposition.FAILED


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone called `name`; UsageError when it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"default_tz {name!r} is not an IANA time zone name", field="default_tz"
        ) from None
