"""callwarden's own usage schema: records to and from JSON objects and CSV rows.

The JSON form is also the payload on the usage stream, so `to_json` and `from_json` round-trip
every record exactly. Field names are the record's attribute names plus "kind"; times are
ISO 8601 strings (written in UTC with "Z"; read with any offset, as local time in `default_tz`
without one, or as epoch seconds when a number). Unknown fields are refused so that a misspelt
column never loses data quietly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
from typing import TypeVar

from callwarden.core.admission.attempt import Direction
from callwarden.core.usage.fields import MAX_TEXT, optional_text, source_ip
from callwarden.core.usage.record import (
    CallRecord,
    Disposition,
    LoginRecord,
    MessageRecord,
    UsageError,
    UsageFormat,
    UsageKind,
    UsageRecord,
)
from callwarden.core.usage.times import from_epoch, parse_local

__all__ = [
    "CALL_FIELDS",
    "LOGIN_FIELDS",
    "MESSAGE_FIELDS",
    "fields_for",
    "from_json",
    "from_text_fields",
    "to_json",
    "to_text_fields",
]

CALL_FIELDS: tuple[str, ...] = (
    "call_id",
    "leg",
    "tenant_id",
    "user_id",
    "trunk_id",
    "source_ip",
    "direction",
    "caller",
    "callee",
    "started_at",
    "answered_at",
    "ended_at",
    "duration_s",
    "disposition",
    "cost_minor",
    "currency",
    "campaign",
    "attestation",
    "source_format",
)
MESSAGE_FIELDS: tuple[str, ...] = (
    "message_id",
    "tenant_id",
    "user_id",
    "direction",
    "sender",
    "recipient",
    "sent_at",
    "status",
    "segments",
    "cost_minor",
    "currency",
    "campaign",
    "source_format",
)
LOGIN_FIELDS: tuple[str, ...] = (
    "event_id",
    "tenant_id",
    "user_id",
    "source_ip",
    "at",
    "success",
    "method",
    "source_format",
)
_FIELDS: dict[UsageKind, frozenset[str]] = {
    UsageKind.CALL: frozenset((*CALL_FIELDS, "kind")),
    UsageKind.MESSAGE: frozenset((*MESSAGE_FIELDS, "kind")),
    UsageKind.LOGIN: frozenset((*LOGIN_FIELDS, "kind")),
}
_ORDERED: dict[UsageKind, tuple[str, ...]] = {
    UsageKind.CALL: CALL_FIELDS,
    UsageKind.MESSAGE: MESSAGE_FIELDS,
    UsageKind.LOGIN: LOGIN_FIELDS,
}
_INT_FIELDS = frozenset({"duration_s", "cost_minor", "segments"})
_BOOL_FIELDS = frozenset({"success"})
_TIME_FIELDS = frozenset({"started_at", "answered_at", "ended_at", "sent_at", "at"})
_TYPED_FIELDS = _INT_FIELDS | _BOOL_FIELDS | _TIME_FIELDS
_NUMERIC = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_E = TypeVar("_E", bound=StrEnum)
_DIRECTIONS: dict[str, Direction] = {member.value: member for member in Direction}
_DISPOSITIONS: dict[str, Disposition] = {member.value: member for member in Disposition}
_TRUE = frozenset({"true", "1", "yes", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "f", "n"})


def fields_for(kind: UsageKind) -> tuple[str, ...]:
    """The schema's field names for `kind`, in column order (without "kind")."""
    return _ORDERED[kind]


def _time_text(value: datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def to_json(record: UsageRecord) -> dict[str, object]:
    """The record as a JSON-ready object in callwarden's schema (stream payloads use this too)."""
    if isinstance(record, CallRecord):
        return {
            "kind": "call",
            "call_id": record.call_id,
            "leg": record.leg,
            "tenant_id": record.tenant_id,
            "user_id": record.user_id,
            "trunk_id": record.trunk_id,
            "source_ip": record.source_ip,
            "direction": record.direction.value,
            "caller": record.caller,
            "callee": record.callee,
            "started_at": _time_text(record.started_at),
            "answered_at": None if record.answered_at is None else _time_text(record.answered_at),
            "ended_at": None if record.ended_at is None else _time_text(record.ended_at),
            "duration_s": record.duration_s,
            "disposition": record.disposition.value,
            "cost_minor": record.cost_minor,
            "currency": record.currency,
            "campaign": record.campaign,
            "attestation": record.attestation,
            "source_format": record.source_format,
        }
    if isinstance(record, MessageRecord):
        return {
            "kind": "message",
            "message_id": record.message_id,
            "tenant_id": record.tenant_id,
            "user_id": record.user_id,
            "direction": record.direction.value,
            "sender": record.sender,
            "recipient": record.recipient,
            "sent_at": _time_text(record.sent_at),
            "status": record.status,
            "segments": record.segments,
            "cost_minor": record.cost_minor,
            "currency": record.currency,
            "campaign": record.campaign,
            "source_format": record.source_format,
        }
    return {
        "kind": "login",
        "event_id": record.event_id,
        "tenant_id": record.tenant_id,
        "user_id": record.user_id,
        "source_ip": record.source_ip,
        "at": _time_text(record.at),
        "success": record.success,
        "method": record.method,
        "source_format": record.source_format,
    }


class _Reader:
    """Typed access to one JSON object's fields, raising UsageError that names the field."""

    __slots__ = ("data", "default_tz")

    def __init__(self, data: Mapping[str, object], default_tz: tzinfo) -> None:
        self.data = data
        self.default_tz = default_tz

    def text(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise UsageError(f"{name} must be a string, not {type(value).__name__}", field=name)
        value = value.strip()
        if len(value) > MAX_TEXT or not (value.isascii() and value.isprintable()):
            return optional_text(value, name)  # the full checks, naming what is wrong
        return value or None

    def required_text(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise UsageError(f"{name} is missing", field=name)
        return value

    def integer(self, name: str) -> int | None:
        value = self.data.get(name)
        if value is None:
            return None
        if type(value) is not int:
            raise UsageError(f"{name} must be a whole number, not {value!r}", field=name)
        return value

    def time(self, name: str) -> datetime | None:
        value = self.data.get(name)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return parse_local(value.strip(), name, self.default_tz)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return from_epoch(float(value), name)
        raise UsageError(f"{name} must be an ISO 8601 time or epoch seconds", field=name)

    def required_time(self, name: str) -> datetime:
        value = self.time(name)
        if value is None:
            raise UsageError(f"{name} is missing", field=name)
        return value

    def choice(self, name: str, members: Mapping[str, _E]) -> _E:
        value = self.required_text(name)
        found = members.get(value) or members.get(value.lower())
        if found is None:
            allowed = ", ".join(members)
            raise UsageError(f"{name} {value!r} is not one of {allowed}", field=name)
        return found

    def upper(self, name: str) -> str | None:
        value = self.text(name)
        return None if value is None else value.upper()


def _kind_of(data: Mapping[str, object]) -> UsageKind:
    kind = data.get("kind")
    if kind is None:
        if "call_id" in data:
            return UsageKind.CALL
        if "message_id" in data:
            return UsageKind.MESSAGE
        if "event_id" in data:
            return UsageKind.LOGIN
        raise UsageError(
            "kind is missing and no call_id, message_id or event_id says which record this is",
            field="kind",
        )
    try:
        return UsageKind(str(kind).strip().lower())
    except ValueError:
        raise UsageError(
            f"kind {kind!r} is not one of call, message, login", field="kind"
        ) from None


def _call(read: _Reader, source_format: str) -> CallRecord:
    call_id = read.required_text("call_id")
    direction = read.choice("direction", _DIRECTIONS)
    callee = read.required_text("callee")
    started_at = read.required_time("started_at")
    answered_at = read.time("answered_at")
    ended_at = read.time("ended_at")
    if read.text("disposition") is None:
        if answered_at is None:
            raise UsageError("disposition is missing for an unanswered call", field="disposition")
        disposition = Disposition.ANSWERED
    else:
        disposition = read.choice("disposition", _DISPOSITIONS)
    duration = read.integer("duration_s")
    if duration is None:
        duration = (
            max(0, int((ended_at - answered_at).total_seconds()))
            if answered_at is not None and ended_at is not None
            else 0
        )
    return CallRecord(
        call_id=call_id,
        leg=read.text("leg") or "a",
        tenant_id=read.text("tenant_id"),
        user_id=read.text("user_id"),
        trunk_id=read.text("trunk_id"),
        source_ip=source_ip(read.text("source_ip")),
        direction=direction,
        caller=read.text("caller"),
        callee=callee,
        started_at=started_at,
        answered_at=answered_at,
        ended_at=ended_at,
        duration_s=duration,
        disposition=disposition,
        cost_minor=read.integer("cost_minor"),
        currency=read.upper("currency"),
        campaign=read.text("campaign"),
        attestation=read.upper("attestation"),
        source_format=read.text("source_format") or source_format,
    )


def _message(read: _Reader, source_format: str) -> MessageRecord:
    segments = read.integer("segments")
    return MessageRecord(
        message_id=read.required_text("message_id"),
        tenant_id=read.text("tenant_id"),
        user_id=read.text("user_id"),
        direction=read.choice("direction", _DIRECTIONS),
        sender=read.text("sender"),
        recipient=read.required_text("recipient"),
        sent_at=read.required_time("sent_at"),
        status=read.required_text("status"),
        segments=1 if segments is None else segments,
        cost_minor=read.integer("cost_minor"),
        currency=read.upper("currency"),
        campaign=read.text("campaign"),
        source_format=read.text("source_format") or source_format,
    )


def _login(read: _Reader, source_format: str) -> LoginRecord:
    success = read.data.get("success")
    if type(success) is not bool:
        raise UsageError("success must be true or false", field="success")
    return LoginRecord(
        event_id=read.required_text("event_id"),
        tenant_id=read.text("tenant_id"),
        user_id=read.text("user_id"),
        source_ip=source_ip(read.text("source_ip")),
        at=read.required_time("at"),
        success=success,
        method=read.required_text("method"),
        source_format=read.text("source_format") or source_format,
    )


_BUILDERS: dict[UsageKind, Callable[[_Reader, str], UsageRecord]] = {
    UsageKind.CALL: _call,
    UsageKind.MESSAGE: _message,
    UsageKind.LOGIN: _login,
}


def from_json(
    data: object,
    *,
    default_tz: tzinfo = UTC,
    source_format: str = UsageFormat.CALLWARDEN_JSON.value,
) -> UsageRecord:
    """One record from a JSON object in callwarden's schema; UsageError names what is wrong.

    `kind` may be left out when call_id, message_id or event_id says which record it is. A
    `source_format` in the object is kept (so stream payloads round-trip); otherwise the given
    one is used. Times without an offset are local to `default_tz`.
    """
    if not isinstance(data, Mapping):
        raise UsageError(
            f"a usage record must be a JSON object, not {type(data).__name__}", field="record"
        )
    kind = _kind_of(data)
    unknown = data.keys() - _FIELDS[kind]
    if unknown:
        names = ", ".join(sorted(str(name) for name in unknown))
        raise UsageError(f"unknown fields for a {kind.value} record: {names}", field="record")
    return _BUILDERS[kind](_Reader(data, default_tz), source_format)


def to_text_fields(record: UsageRecord) -> list[str]:
    """The record as CSV cells in `fields_for(record.kind)` order (empty cell for None)."""
    values = to_json(record)
    cells: list[str] = []
    for name in _ORDERED[record.kind]:
        value = values[name]
        if value is None:
            cells.append("")
        elif isinstance(value, bool):
            cells.append("true" if value else "false")
        else:
            cells.append(str(value))
    return cells


def _typed_cell(name: str, cell: str) -> object:
    text = cell.strip()
    if not text:
        return None
    if name in _INT_FIELDS:
        try:
            return int(text)
        except ValueError:
            raise UsageError(f"{name} must be a whole number, not {text!r}", field=name) from None
    if name in _BOOL_FIELDS:
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise UsageError(f"{name} must be true or false, not {text!r}", field=name)
    if name in _TIME_FIELDS and _NUMERIC.fullmatch(text):
        return float(text)
    return text


def from_text_fields(
    header: Sequence[str],
    cells: Sequence[str],
    *,
    default_tz: tzinfo = UTC,
    source_format: str = UsageFormat.CALLWARDEN_CSV.value,
) -> UsageRecord:
    """One record from a CSV row whose header names callwarden's fields; empty cells are None."""
    if len(cells) != len(header):
        raise UsageError(
            f"row has {len(cells)} cells but the header names {len(header)} columns",
            field="record",
        )
    data: dict[str, object] = dict(zip(header, cells, strict=True))
    if len(data) != len(header):
        repeated = sorted({name for name in header if header.count(name) > 1})
        raise UsageError(f"the header names {', '.join(repeated)} more than once", field="header")
    for name in _TYPED_FIELDS.intersection(header):
        data[name] = _typed_cell(name, cells[header.index(name)])
    return from_json(data, default_tz=default_tz, source_format=source_format)
