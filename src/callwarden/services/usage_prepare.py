"""Preparing raw usage units for storage: normalised, checked against the store's limits, as rows.

This is the part of ingestion that needs nothing but the unit itself, so it can run anywhere:
in the ingesting thread, or in other processes over chunks of a large file
(`callwarden.adapters.usage_pool`). What needs the store (the tenant checks, duplicates, the
transaction) stays with `UsageIngestion`.

A prepared unit is `(rows, reason)`: the storage rows of the unit's records in order and, when
the unit cannot be stored, why. When a record fails the store's limits, `rows` holds the
records before it, so that the ingesting side checks those first, exactly in the order the
checks have always run, and reports the first fault.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import tzinfo
from typing import Protocol

import orjson

from callwarden.core.usage.fast_rows import csv_call_row, json_call_row
from callwarden.core.usage.normalise import normalise
from callwarden.core.usage.record import RawItem, UsageError, UsageFormat
from callwarden.core.usage.rows import Row, record_row
from callwarden.services.usage_checks import check_storable

__all__ = ["LocalPreparer", "PreparedUnit", "UnitPreparer", "prepare_texts", "prepare_unit"]

log = logging.getLogger("callwarden.usage")

PreparedUnit = tuple[list[Row], str | None]
"""A unit's rows, and the reason it cannot be stored (None when it can, as far as it alone
can tell)."""

_CSV = UsageFormat.CALLWARDEN_CSV
_JSON = UsageFormat.CALLWARDEN_JSON


def prepare_unit(fmt: UsageFormat, text: str, default_tz: tzinfo) -> PreparedUnit:
    """One raw unit read, checked against the store's limits and turned into rows.

    Plain callwarden CSV and JSON calls take the quick path (`fast_rows`); everything else,
    and anything the quick path is unsure of, is read by `normalise`.
    """
    if fmt is _CSV:
        header, _, row_text = text.partition("\n")
        if row_text and "\n" not in row_text:
            row = csv_call_row(header, row_text, default_tz)
            if row is not None:
                return [row], None
    elif fmt is _JSON and text[:1] == "{":
        try:
            row = json_call_row(orjson.loads(text), default_tz)
        except orjson.JSONDecodeError:
            row = None
        if row is not None:
            return [row], None
    try:
        records = normalise(fmt, RawItem(text, ""), default_tz=default_tz)
    except UsageError as exc:
        return [], exc.message
    except Exception as exc:  # a normaliser fault must not lose the input
        log.exception("usage normaliser failed", extra={"format": fmt.value})
        return [], f"could not be read ({type(exc).__name__})"
    rows: list[Row] = []
    for record in records:
        try:
            check_storable(record)
        except UsageError as exc:
            return rows, exc.message
        rows.append(record_row(record))
    return rows, None


def prepare_texts(fmt: UsageFormat, texts: Sequence[str], default_tz: tzinfo) -> list[PreparedUnit]:
    """`prepare_unit` for each of a chunk of units, in order (the work one process does)."""
    return [prepare_unit(fmt, text, default_tz) for text in texts]


class UnitPreparer(Protocol):
    """Prepares a stream of raw units, answering in input order."""

    def prepare(
        self, fmt: UsageFormat, items: Iterable[RawItem], default_tz: tzinfo
    ) -> Iterator[tuple[RawItem, PreparedUnit]]:
        """Each item with its prepared unit, in the order the items came."""
        ...


class LocalPreparer:
    """Prepares units in the calling thread, one after another (HTTP bodies, small files)."""

    def prepare(
        self, fmt: UsageFormat, items: Iterable[RawItem], default_tz: tzinfo
    ) -> Iterator[tuple[RawItem, PreparedUnit]]:
        """Each item with its prepared unit, in the order the items came."""
        for item in items:
            yield item, prepare_unit(fmt, item.text, default_tz)
