"""The quick way through callwarden's own call records: straight to a storage row.

Files and streams of millions of calls in callwarden's own CSV or JSON are the bulk of
ingestion, and most of their records are plain: ASCII, short values, epoch or ISO times, no
quoting. For such a record `csv_call_row` and `json_call_row` build the row that
`rows.record_row` would build from the record `normalise` reads, with the same checks (the
record's own and the store's limits), at a fraction of the cost: no intermediate mapping, no
field-by-field reader calls, no record object.

It is an optimisation only, never a second set of rules: whenever a record is anything but
plain, or any check fails, they answer None and the caller reads the unit the ordinary way,
which accepts it or names the fault exactly as it always has. So the quick path can only ever
accept what the ordinary path accepts, and with the same values (a test compares the two on
many records, good and bad).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache

from callwarden.core.usage.fields import _IPV4
from callwarden.core.usage.record import ATTESTATIONS, UsageError, UsageFormat
from callwarden.core.usage.rows import Row
from callwarden.core.usage.schema import _NUMERIC, CALL_FIELDS
from callwarden.core.usage.times import from_epoch, parse_local

__all__ = ["csv_call_row", "json_call_row"]

_SHORT = 64
"""Values at most this long fit every text column and the schema's 255-character limit."""
_MAX_INT4 = 2**31 - 1
_MAX_INT8 = 2**63 - 1
_MAX_EPOCH = 253_402_300_799
"""9999-12-31T23:59:59Z, the latest epoch time `times.from_epoch` accepts."""
_DIRECTIONS = {"outbound": "outbound", "inbound": "inbound"}
_DISPOSITIONS = {name: name for name in ("answered", "no_answer", "busy", "failed", "cancelled")}
_ALLOWED = frozenset((*CALL_FIELDS, "kind"))
_CSV = UsageFormat.CALLWARDEN_CSV.value
_JSON = UsageFormat.CALLWARDEN_JSON.value
_TEXT_FIELDS = tuple(
    name
    for name in CALL_FIELDS
    if name not in ("started_at", "answered_at", "ended_at", "duration_s", "cost_minor")
)


class _NotPlain(Exception):
    """The record is not plain: read it the ordinary way."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """Where each call field sits in a header's rows (-1: not in the header)."""

    width: int
    kind: int
    columns: tuple[int, ...]
    """Column index of each of CALL_FIELDS, in that order."""


@lru_cache(maxsize=64)
def _plan(header_line: str) -> _Plan | None:
    """The plan for a plain header naming call fields; None sends every row the ordinary way."""
    if not (header_line.isascii() and header_line.isprintable()) or '"' in header_line:
        return None
    names = [name.strip() for name in header_line.split(",")]
    if len(set(names)) != len(names) or not _ALLOWED.issuperset(names):
        return None
    if "call_id" not in names:
        return None
    index = {name: i for i, name in enumerate(names)}
    return _Plan(
        len(names), index.get("kind", -1), tuple(index.get(name, -1) for name in CALL_FIELDS)
    )


def _text_time(text: str, field: str, default_tz: tzinfo) -> datetime | None:
    """A time written as text (epoch seconds when numeric, else ISO 8601), in UTC."""
    if not text:
        return None
    if text.isdigit():  # whole epoch seconds, the common case (the row is ASCII)
        seconds = int(text)
        if seconds <= _MAX_EPOCH:
            return datetime.fromtimestamp(seconds, UTC)
        raise _NotPlain
    if _NUMERIC.fullmatch(text):
        return from_epoch(float(text), field)
    value = parse_local(text, field, default_tz)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def csv_call_row(header_line: str, row_text: str, default_tz: tzinfo = UTC) -> Row | None:
    """The storage row of one plain callwarden CSV call row, or None to read it the usual way.

    `header_line` is the file's header and `row_text` one row, as `split` cuts them.
    """
    plan = _plan(header_line)
    if plan is None or not (row_text.isascii() and row_text.isprintable()) or '"' in row_text:
        return None
    cells = row_text.split(",")
    if len(cells) != plan.width:
        return None
    values = [cell.strip() for cell in cells]
    if max(map(len, values)) > _SHORT:
        return None
    if plan.kind >= 0 and values[plan.kind].lower() != "call":
        return None
    v = [values[i] if i >= 0 else "" for i in plan.columns]
    try:
        duration = int(v[12]) if v[12] else None
        cost = int(v[14]) if v[14] else None
        started_at = _text_time(v[9], "started_at", default_tz)
        answered_at = _text_time(v[10], "answered_at", default_tz)
        ended_at = _text_time(v[11], "ended_at", default_tz)
        return _row(v, started_at, answered_at, ended_at, duration, cost, _CSV)
    except (UsageError, ValueError, OverflowError, _NotPlain):
        return None


def _json_text(value: object) -> str:
    """A text field of a JSON record, trimmed ("" when absent); anything unusual is not plain."""
    if value is None:
        return ""
    if type(value) is not str:
        raise _NotPlain
    text = value.strip()
    if len(text) > _SHORT or not (text.isascii() and text.isprintable()):
        raise _NotPlain
    return text


def _json_time(value: object, field: str, default_tz: tzinfo) -> datetime | None:
    """A time field of a JSON record: ISO 8601 text or epoch seconds, in UTC."""
    if value is None or value == "":
        return None
    if type(value) is str:
        parsed = parse_local(value.strip(), field, default_tz)
        return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
    if type(value) is int or type(value) is float:
        return from_epoch(float(value), field)
    raise _NotPlain


def _json_int(value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise _NotPlain
    return value


def json_call_row(document: object, default_tz: tzinfo = UTC) -> Row | None:
    """The storage row of one plain callwarden JSON call (a decoded object), or None to read it
    the usual way."""
    if type(document) is not dict or not _ALLOWED.issuperset(document):
        return None
    get = document.get
    kind = get("kind")
    if kind is None:
        if "call_id" not in document:
            return None
    elif type(kind) is not str or kind.strip().lower() != "call":
        return None
    try:
        text = [_json_text(get(name)) for name in _TEXT_FIELDS]
        # In CALL_FIELDS order; the slots of the times, duration_s and cost_minor stay empty.
        v = [*text[:9], "", "", "", "", text[9], "", *text[10:]]
        started_at = _json_time(get("started_at"), "started_at", default_tz)
        answered_at = _json_time(get("answered_at"), "answered_at", default_tz)
        ended_at = _json_time(get("ended_at"), "ended_at", default_tz)
        duration = _json_int(get("duration_s"))
        cost = _json_int(get("cost_minor"))
        return _row(v, started_at, answered_at, ended_at, duration, cost, _JSON)
    except (UsageError, ValueError, OverflowError, _NotPlain):
        return None


def _row(
    v: list[str],
    started_at: datetime | None,
    answered_at: datetime | None,
    ended_at: datetime | None,
    duration: int | None,
    cost: int | None,
    default_format: str,
) -> Row:
    """The row from cleaned values in CALL_FIELDS order (text slots of typed fields unused),
    after every check of the schema, the record and the store; _NotPlain when one fails."""
    call_id, leg, tenant_id, user_id, trunk_id, source_ip, direction, caller, callee = v[:9]
    disposition, currency, campaign, attestation, source_format = v[13], *v[15:19]
    if not call_id or not callee or started_at is None:
        raise _NotPlain
    direction = _DIRECTIONS.get(direction) or _DIRECTIONS.get(direction.lower(), "")
    if not direction:
        raise _NotPlain
    if source_ip and not _IPV4.fullmatch(source_ip):
        raise _NotPlain
    if disposition:
        disposition = _DISPOSITIONS.get(disposition) or _DISPOSITIONS.get(disposition.lower(), "")
        if not disposition:
            raise _NotPlain
    elif answered_at is not None:
        disposition = "answered"
    else:
        raise _NotPlain
    if duration is None:
        duration = (
            max(0, int((ended_at - answered_at).total_seconds()))
            if answered_at is not None and ended_at is not None
            else 0
        )
    if answered_at is not None:
        if answered_at < started_at or disposition != "answered":
            raise _NotPlain
    elif disposition == "answered" or duration != 0:
        raise _NotPlain
    if ended_at is not None and (
        ended_at < started_at or (answered_at is not None and ended_at < answered_at)
    ):
        raise _NotPlain
    if not 0 <= duration <= _MAX_INT4:
        raise _NotPlain
    currency = currency.upper()
    if currency and not (len(currency) == 3 and currency.isalpha()):
        raise _NotPlain
    if cost is not None and (not currency or not -_MAX_INT8 - 1 <= cost <= _MAX_INT8):
        raise _NotPlain
    attestation = attestation.upper()
    if attestation and attestation not in ATTESTATIONS:
        raise _NotPlain
    return (
        call_id,
        leg or "a",
        "call",
        tenant_id or None,
        user_id or None,
        started_at,
        source_format or default_format,
        trunk_id or None,
        source_ip or None,
        direction,
        caller or None,
        callee,
        answered_at,
        ended_at,
        duration,
        disposition,
        cost,
        currency or None,
        campaign or None,
        attestation or None,
        None,
        None,
        None,
        None,
        None,
        None,
    )
