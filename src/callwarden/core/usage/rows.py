"""Usage records as flat rows: one tuple of plain values per record, in `ROW_FIELDS` order.

Bulk ingestion moves rows rather than record objects: a row is cheap to build, cheap to send
between processes (a tuple of text, numbers and UTC datetimes) and is what the store writes.
Calls, messages and logins share one layout; the fields a kind does not have are None. The
record id is the call, message or event id; `leg` is the call's leg, "msg" for a message and
"login" for a login, so (row[0], row[1]) is the record's idempotency key.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from callwarden.core.admission.attempt import Direction
from callwarden.core.usage.record import (
    CallRecord,
    Disposition,
    LoginRecord,
    MessageRecord,
    UsageKind,
    UsageRecord,
)

__all__ = ["ROW_FIELDS", "Row", "RowRecords", "record_row", "row_key", "row_record"]

ROW_FIELDS: tuple[str, ...] = (
    "record_id",
    "leg",
    "kind",
    "tenant_id",
    "user_id",
    "started_at",
    "source_format",
    "trunk_id",
    "source_ip",
    "direction",
    "caller",
    "callee",
    "answered_at",
    "ended_at",
    "duration_s",
    "disposition",
    "cost_minor",
    "currency",
    "campaign",
    "attestation",
    "sender",
    "recipient",
    "status",
    "segments",
    "success",
    "method",
)
"""The fields of a row, in order (the usage table's columns)."""

Row = tuple[Any, ...]
"""One record as plain values in `ROW_FIELDS` order."""

TENANT = ROW_FIELDS.index("tenant_id")
SOURCE_IP = ROW_FIELDS.index("source_ip")

_TEXT_OF: dict[Direction | Disposition, str] = {m: m.value for m in (*Direction, *Disposition)}
"""Enum members as plain text (a lookup is cheaper than `.value`)."""
_DIRECTIONS = {m.value: m for m in Direction}
_DISPOSITIONS = {m.value: m for m in Disposition}
_NO_CALL_FIELDS: Row = (None,) * 15
"""direction .. segments: the fields a login does not have."""


def record_row(r: UsageRecord) -> Row:
    """The record as a row in `ROW_FIELDS` order."""
    if isinstance(r, CallRecord):
        return (
            r.call_id,
            r.leg,
            "call",
            r.tenant_id,
            r.user_id,
            r.started_at,
            r.source_format,
            r.trunk_id,
            r.source_ip,
            _TEXT_OF[r.direction],
            r.caller,
            r.callee,
            r.answered_at,
            r.ended_at,
            r.duration_s,
            _TEXT_OF[r.disposition],
            r.cost_minor,
            r.currency,
            r.campaign,
            r.attestation,
            None,
            None,
            None,
            None,
            None,
            None,
        )
    if isinstance(r, MessageRecord):
        return (
            r.message_id,
            "msg",
            "message",
            r.tenant_id,
            r.user_id,
            r.sent_at,
            r.source_format,
            None,
            None,
            _TEXT_OF[r.direction],
            None,
            None,
            None,
            None,
            None,
            None,
            r.cost_minor,
            r.currency,
            r.campaign,
            None,
            r.sender,
            r.recipient,
            r.status,
            r.segments,
            None,
            None,
        )
    return (
        r.event_id,
        "login",
        "login",
        r.tenant_id,
        r.user_id,
        r.at,
        r.source_format,
        None,
        r.source_ip,
        *_NO_CALL_FIELDS,
        r.success,
        r.method,
    )


def row_key(row: Row) -> tuple[str, str]:
    """The idempotency key of the record a row holds: (record id, leg)."""
    return (row[0], row[1])


def row_record(row: Row) -> UsageRecord:
    """The record a row holds (the inverse of `record_row`; times must be aware)."""
    kind = row[2]
    if kind == UsageKind.CALL:
        return CallRecord(
            call_id=row[0],
            leg=row[1],
            tenant_id=row[3],
            user_id=row[4],
            trunk_id=row[7],
            source_ip=row[8],
            direction=_DIRECTIONS[row[9]],
            caller=row[10],
            callee=row[11],
            started_at=row[5],
            answered_at=row[12],
            ended_at=row[13],
            duration_s=row[14],
            disposition=_DISPOSITIONS[row[15]],
            cost_minor=row[16],
            currency=row[17],
            campaign=row[18],
            attestation=row[19],
            source_format=row[6],
        )
    if kind == UsageKind.MESSAGE:
        return MessageRecord(
            message_id=row[0],
            tenant_id=row[3],
            user_id=row[4],
            direction=_DIRECTIONS[row[9]],
            sender=row[20],
            recipient=row[21],
            sent_at=row[5],
            status=row[22],
            segments=row[23],
            cost_minor=row[16],
            currency=row[17],
            campaign=row[18],
            source_format=row[6],
        )
    return LoginRecord(
        event_id=row[0],
        tenant_id=row[3],
        user_id=row[4],
        source_ip=row[8],
        at=row[5],
        success=bool(row[24]),
        method=row[25],
        source_format=row[6],
    )


class RowRecords(Sequence[UsageRecord]):
    """Rows seen as records, each built only when it is read.

    Ingestion hands stored rows to the usage stream this way: a stream with nobody to deliver
    to never reads them, so the records are never built.
    """

    __slots__ = ("rows",)

    def __init__(self, rows: Sequence[Row]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> UsageRecord: ...
    @overload
    def __getitem__(self, index: slice) -> RowRecords: ...
    def __getitem__(self, index: int | slice) -> UsageRecord | RowRecords:
        if isinstance(index, slice):
            return RowRecords(self.rows[index])
        return row_record(self.rows[index])

    def __iter__(self) -> Iterator[UsageRecord]:
        return map(row_record, self.rows)
