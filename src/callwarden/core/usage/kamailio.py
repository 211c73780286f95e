"""Kamailio acc records (syslog lines and database rows) into usage records.

acc accounts SIP transactions, not calls. Two forms are read:

- The CDR form (acc with the dialog module and `cdr_enable`): one record per finished dialog,
  with start_time, end_time and duration (seconds.microseconds) plus the `cdr_extra`
  attributes. This is a whole call. Syslog lines hold `name=value` pairs separated by "; ";
  database rows come from the `acc_cdrs` table.
- The transaction form (`log_flag`/`log_missed_flag`, tables `acc` and `missed_calls`):
  an INVITE with a final code of 300 or more is an unanswered call; a MESSAGE transaction is a
  message. Syslog lines look like "ACC: call missed: timestamp=...;method=INVITE;...;code=486;
  reason=Busy Here;..." with the `log_extra` attributes appended.

An answered INVITE or a BYE transaction on its own is not a whole call: those are refused with
a reason naming the CDR form, so they show up as dead letters rather than vanish.

callwarden reads these extra attributes when present: callid (CDR form), src_user/caller,
dst_user/callee, src_ip, tenant, user, trunk, campaign, direction, attestation, sip_code (the
final code of a failed dialog), setup_time (when the INVITE arrived). `direction` is required,
because a proxy's records cannot tell an outbound call from an inbound one.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from datetime import datetime, tzinfo

import orjson

from callwarden.core.admission.attempt import Direction
from callwarden.core.usage import fields
from callwarden.core.usage.record import (
    CallRecord,
    Disposition,
    MessageRecord,
    RawItem,
    UsageError,
    UsageFormat,
    UsageRecord,
)
from callwarden.core.usage.times import from_epoch, parse_local

__all__ = ["normalise_kamailio_db", "normalise_kamailio_syslog"]

_SYSLOG = UsageFormat.KAMAILIO_ACC_SYSLOG.value
_DB = UsageFormat.KAMAILIO_ACC_DB.value
_ACC_PREFIX = re.compile(
    r"ACC: (?:transaction answered|call missed|request accounted|request acknowledged|"
    r"call ended): "
)
_EPOCH = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_PAIR = re.compile(r"\s*([^=;\s]+)=([^;]*)")


def _pairs(payload: str) -> dict[str, str]:
    """`name=value` pairs separated by ";" (spaces around separators are ignored)."""
    return dict(_PAIR.findall(payload))


def _first(values: Mapping[str, str | None], *names: str) -> str | None:
    for name in names:
        value = values.get(name)
        if value:
            return value
    return None


def _time(value: str | None, field: str, default_tz: tzinfo) -> datetime | None:
    """Epoch seconds (with fractions) or a database DATETIME (local to default_tz)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _EPOCH.fullmatch(text):
        return from_epoch(float(text), field)
    return parse_local(text, field, default_tz)


def _direction(values: Mapping[str, str | None]) -> Direction:
    found = fields.direction(values.get("direction"))
    if found is None:
        raise UsageError(
            "direction is missing: add direction (inbound or outbound) to the acc extra attributes",
            field="direction",
        )
    return found


def _code(values: Mapping[str, str | None], *names: str) -> int | None:
    text = _first(values, *names)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise UsageError(
            f"{names[0]} {text!r} is not a SIP response code", field=names[0]
        ) from None


def _cdr(values: Mapping[str, str | None], default_tz: tzinfo, source_format: str) -> CallRecord:
    """A whole call from a dialog CDR (start_time, end_time, duration and extras)."""
    start = _time(values.get("start_time"), "start_time", default_tz)
    if start is None:
        raise UsageError("start_time is missing", field="start_time")
    end = _time(values.get("end_time"), "end_time", default_tz)
    if end is None:
        raise UsageError("end_time is missing", field="end_time")
    duration_text = values.get("duration")
    try:
        duration = float(duration_text) if duration_text else (end - start).total_seconds()
    except ValueError:
        raise UsageError(f"duration {duration_text!r} is not a number", field="duration") from None
    if duration < 0:
        raise UsageError(f"duration must not be negative (got {duration_text})", field="duration")
    code = _code(values, "sip_code", "code")
    answered = end > start if code is None else 200 <= code < 300
    setup = _time(values.get("setup_time"), "setup_time", default_tz)
    call_id = fields.required_text(_first(values, "callid", "call_id"), "callid")
    started_at = setup if setup is not None and setup <= start else start
    if answered:
        disposition = Disposition.ANSWERED
        answered_at: datetime | None = start
        billable = int(duration)
    else:
        disposition = fields.disposition_for_sip_code(code) if code else Disposition.FAILED
        if disposition is Disposition.ANSWERED:  # a 1xx code: the dialog never completed
            disposition = Disposition.FAILED
        answered_at = None
        billable = 0
    return CallRecord(
        call_id=call_id,
        leg="a",
        tenant_id=fields.optional_text(values.get("tenant"), "tenant"),
        user_id=fields.optional_text(values.get("user"), "user"),
        trunk_id=fields.optional_text(values.get("trunk"), "trunk"),
        source_ip=fields.source_ip(values.get("src_ip"), "src_ip"),
        direction=_direction(values),
        caller=fields.optional_text(_first(values, "caller", "src_user"), "src_user"),
        callee=fields.required_text(_first(values, "callee", "dst_user"), "dst_user"),
        started_at=started_at,
        answered_at=answered_at,
        ended_at=end,
        duration_s=billable,
        disposition=disposition,
        campaign=fields.optional_text(values.get("campaign"), "campaign"),
        attestation=fields.attestation(values.get("attestation")),
        source_format=source_format,
    )


def _transaction(
    values: Mapping[str, str | None],
    at: datetime,
    source_format: str,
    *,
    code_name: str,
    callid_name: str,
) -> UsageRecord:
    """An unanswered call (INVITE >= 300) or a message (MESSAGE) from one transaction."""
    method = (values.get("method") or "").strip().upper()
    code = _code(values, code_name)
    if code is None:
        raise UsageError(f"{code_name} is missing", field=code_name)
    call_id = fields.required_text(values.get(callid_name), callid_name)
    if method == "MESSAGE":
        return MessageRecord(
            message_id=call_id,
            tenant_id=fields.optional_text(values.get("tenant"), "tenant"),
            user_id=fields.optional_text(values.get("user"), "user"),
            direction=_direction(values),
            sender=fields.optional_text(_first(values, "caller", "src_user"), "src_user"),
            recipient=fields.required_text(_first(values, "callee", "dst_user"), "dst_user"),
            sent_at=at,
            status="accepted" if 200 <= code < 300 else "failed",
            campaign=fields.optional_text(values.get("campaign"), "campaign"),
            source_format=source_format,
        )
    if method == "INVITE":
        if code < 300:
            raise UsageError(
                f"an INVITE transaction answered with {code} is only the start of a call: "
                "answered calls are read from the dialog CDRs (acc cdr_enable)",
                field="method",
            )
        to_tag = fields.optional_text(values.get("to_tag"), "to_tag")
        return CallRecord(
            call_id=call_id,
            leg=f"missed:{to_tag}" if to_tag else "missed",
            tenant_id=fields.optional_text(values.get("tenant"), "tenant"),
            user_id=fields.optional_text(values.get("user"), "user"),
            trunk_id=fields.optional_text(values.get("trunk"), "trunk"),
            source_ip=fields.source_ip(values.get("src_ip"), "src_ip"),
            direction=_direction(values),
            caller=fields.optional_text(_first(values, "caller", "src_user"), "src_user"),
            callee=fields.required_text(_first(values, "callee", "dst_user"), "dst_user"),
            started_at=at,
            answered_at=None,
            ended_at=at,
            duration_s=0,
            disposition=fields.disposition_for_sip_code(code),
            campaign=fields.optional_text(values.get("campaign"), "campaign"),
            attestation=fields.attestation(values.get("attestation")),
            source_format=source_format,
        )
    if method == "BYE":
        raise UsageError(
            "a BYE transaction is only the end of a call: calls are read from the dialog CDRs "
            "(acc cdr_enable)",
            field="method",
        )
    raise UsageError(
        f"method {method or '(missing)'} is not usage callwarden reads (INVITE, MESSAGE)",
        field="method",
    )


def normalise_kamailio_syslog(item: RawItem, default_tz: tzinfo) -> list[UsageRecord]:
    """One record from one acc syslog line (a dialog CDR or a transaction)."""
    line = item.text
    prefix_at = line.find("ACC: ")
    marker = _ACC_PREFIX.match(line, prefix_at) if prefix_at >= 0 else None
    if "start_time=" in line and (marker is None or "call ended" in marker.group(0)):
        payload = line[line.index("start_time=") :]
        return [_cdr(_pairs(payload), default_tz, _SYSLOG)]
    if marker is None:
        raise UsageError(
            "not an acc record: expected 'ACC: ...: timestamp=...' or a CDR with start_time=",
            field="record",
        )
    values = _pairs(line[marker.end() :])
    at_text = values.get("timestamp")
    precise = values.get("time_attr")
    if precise is not None and _EPOCH.fullmatch(precise):
        at_text = precise
    if at_text is None or not _EPOCH.fullmatch(at_text):
        raise UsageError(f"timestamp {at_text!r} is not an epoch time", field="timestamp")
    at = from_epoch(float(at_text), "timestamp")
    return [_transaction(values, at, _SYSLOG, code_name="code", callid_name="call_id")]


def _db_row(text: str) -> dict[str, str | None]:
    """A row as column -> value, from a JSON object or a CSV header line plus one row."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            parsed = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            raise UsageError(f"not a JSON object: {exc}", field="record") from None
        if not isinstance(parsed, dict):
            raise UsageError("a database row must be a JSON object", field="record")
        return {str(key): None if value is None else str(value) for key, value in parsed.items()}
    try:
        rows = fields.csv_rows(text)
    except csv.Error as exc:
        raise UsageError(f"not CSV: {exc}", field="record") from None
    if len(rows) != 2:
        raise UsageError("expected a header row and one data row", field="record")
    header, cells = rows
    if len(header) != len(cells):
        raise UsageError(
            f"row has {len(cells)} cells but the header names {len(header)} columns",
            field="record",
        )
    return {
        name.strip(): (cell if cell not in ("", "\\N", "NULL") else None)
        for name, cell in zip(header, cells, strict=True)
    }


def normalise_kamailio_db(item: RawItem, default_tz: tzinfo) -> list[UsageRecord]:
    """One record from one row of `acc_cdrs` (a call) or `acc`/`missed_calls` (a transaction)."""
    row = _db_row(item.text)
    if "start_time" in row and "end_time" in row:
        return [_cdr(row, default_tz, _DB)]
    if "method" in row and ("sip_code" in row or "code" in row):
        at = _time(row.get("time"), "time", default_tz)
        if at is None:
            raise UsageError("time is missing", field="time")
        code_name = "sip_code" if "sip_code" in row else "code"
        callid_name = "callid" if "callid" in row else "call_id"
        return [_transaction(row, at, _DB, code_name=code_name, callid_name=callid_name)]
    raise UsageError(
        "not an acc row: expected acc_cdrs columns (start_time, end_time) or acc/missed_calls "
        "columns (method, sip_code, time)",
        field="record",
    )
