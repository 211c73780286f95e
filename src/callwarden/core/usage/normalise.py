"""Turning raw usage input into records: `split` cuts input into items, `normalise` reads one.

Both are pure (no I/O). Callers (HTTP, files, NATS) split their input, normalise each item, and
send the items that raise UsageError to the dead-letter store with the reason and the raw text.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, tzinfo
from functools import lru_cache

import orjson

from callwarden.core.usage import fields
from callwarden.core.usage.asterisk import COLUMNS as ASTERISK_COLUMNS
from callwarden.core.usage.asterisk import normalise_asterisk
from callwarden.core.usage.freeswitch import normalise_freeswitch
from callwarden.core.usage.kamailio import normalise_kamailio_db, normalise_kamailio_syslog
from callwarden.core.usage.record import RawItem, UsageError, UsageFormat, UsageRecord
from callwarden.core.usage.schema import from_json, from_text_fields, to_json
from callwarden.core.usage.splitting import json_items, line_items, lines_of, table_items

__all__ = ["from_json", "normalise", "split", "to_json"]


def _asterisk_items(data: str | Iterable[str]) -> Iterator[RawItem]:
    """Master.csv rows; a header row naming the columns (some exports add one) is skipped."""
    first = True
    for item in line_items(data, join_open_quotes=True):
        if first:
            first = False
            header = item.text.replace('"', "").split(",")
            if tuple(name.strip().lower() for name in header[:16]) == ASTERISK_COLUMNS:
                continue
        yield item


def _db_items(data: str | Iterable[str]) -> Iterator[RawItem]:
    """Database rows as JSON objects/arrays, or CSV with a header row (chosen by the first line)."""
    lines = lines_of(data)
    blank: list[str] = []
    for line in lines:
        if not line.strip():
            blank.append(line)
            continue
        rest = itertools.chain(blank, [line], lines)
        if line.lstrip()[:1] in ("{", "["):
            yield from json_items(rest)
        else:
            yield from table_items(rest)
        return


_SPLITTERS: dict[UsageFormat, Callable[[str | Iterable[str]], Iterator[RawItem]]] = {
    UsageFormat.FREESWITCH_JSON: json_items,
    UsageFormat.ASTERISK_CSV: _asterisk_items,
    UsageFormat.KAMAILIO_ACC_SYSLOG: line_items,
    UsageFormat.KAMAILIO_ACC_DB: _db_items,
    UsageFormat.CALLWARDEN_JSON: json_items,
    UsageFormat.CALLWARDEN_CSV: table_items,
}


def split(fmt: UsageFormat | str, data: str | Iterable[str]) -> Iterator[RawItem]:
    """Cut a file's or a request body's text (or its lines) into raw items for `normalise`.

    JSON formats yield one item per document (one object, each element of an array, each JSON
    line, or each pretty-printed document); CSV formats yield one item per row (callwarden CSV
    and database CSV items carry their header line); syslog yields one item per line. Each item
    says where it was ("line 17", "line 1 item 3").
    """
    return _SPLITTERS[_format(fmt)](data)


def _format(fmt: UsageFormat | str) -> UsageFormat:
    try:
        return UsageFormat(fmt)
    except ValueError:
        names = ", ".join(member.value for member in UsageFormat)
        raise UsageError(f"format {fmt!r} is not one of {names}", field="format") from None


def _callwarden_json(item: RawItem, default_tz: tzinfo) -> list[UsageRecord]:
    try:
        document = orjson.loads(item.text)
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"not a JSON document: {exc}", field="record") from None
    if isinstance(document, list):
        return [from_json(element, default_tz=default_tz) for element in document]
    return [from_json(document, default_tz=default_tz)]


@lru_cache(maxsize=64)
def _header(line: str) -> tuple[str, ...]:
    """The column names of a callwarden CSV header line (cached: files repeat one header)."""
    return tuple(name.strip() for name in next(csv.reader([line]), []))


def _callwarden_csv(item: RawItem, default_tz: tzinfo) -> list[UsageRecord]:
    header_line, newline, row_text = item.text.partition("\n")
    if not newline:
        raise UsageError("expected a header line and one row", field="record")
    header = _header(header_line)
    try:
        rows = fields.csv_rows(row_text)
    except csv.Error as exc:
        raise UsageError(f"not a CSV row: {exc}", field="record") from None
    if len(rows) != 1:
        raise UsageError("expected exactly one CSV row", field="record")
    return [from_text_fields(header, rows[0], default_tz=default_tz)]


_NORMALISERS: dict[UsageFormat, Callable[[RawItem, tzinfo], list[UsageRecord]]] = {
    UsageFormat.FREESWITCH_JSON: lambda item, _tz: normalise_freeswitch(item),
    UsageFormat.ASTERISK_CSV: normalise_asterisk,
    UsageFormat.KAMAILIO_ACC_SYSLOG: normalise_kamailio_syslog,
    UsageFormat.KAMAILIO_ACC_DB: normalise_kamailio_db,
    UsageFormat.CALLWARDEN_JSON: _callwarden_json,
    UsageFormat.CALLWARDEN_CSV: _callwarden_csv,
}


def normalise(
    fmt: UsageFormat | str, item: RawItem, *, default_tz: tzinfo | str = UTC
) -> list[UsageRecord]:
    """The usage records in one raw item, or UsageError naming the field and the fault.

    `default_tz` (a tzinfo or an IANA name) is the zone of local time strings without an offset
    (Asterisk's Master.csv, database DATETIME columns); epoch times are UTC and explicit offsets
    always win.
    """
    zone = fields.zone(default_tz) if isinstance(default_tz, str) else default_tz
    return _NORMALISERS[_format(fmt)](item, zone)
