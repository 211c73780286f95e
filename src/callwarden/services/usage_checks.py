"""Checks a usage record passes before it is stored: storable values, its tenant, its scope.

Normalisers turn raw input into well-formed records; these checks add what only the platform
knows. A record must fit the store (no NUL character, which PostgreSQL refuses in text; text
within the column sizes; integers within their range). It is attributed to a tenant when the
source left that out: a tenant's own key attributes it to that tenant, otherwise the source
address is looked up among the trunks. A tenant's key may not submit another tenant's usage,
and a record may not name a tenant that does not exist. Each refusal is a `UsageError` naming
the field, which makes the raw unit a dead letter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields, replace
from operator import attrgetter, itemgetter
from typing import Protocol, get_args, get_type_hints

from callwarden.core.admission.trunks import TrunkIndex
from callwarden.core.model import Trunk
from callwarden.core.usage.record import (
    CallRecord,
    LoginRecord,
    MessageRecord,
    UsageError,
    UsageRecord,
)
from callwarden.core.usage.rows import SOURCE_IP, TENANT, Row

MAX_TEXT = 255
"""Longest id, number or label a record may carry."""
_SHORT = {"leg": 64, "tenant_id": 64, "source_ip": 64, "source_format": 64}
_SHORTEST = min(_SHORT.values())
"""Text no longer than this fits every column, so only NUL needs looking for."""
_INT_RANGE = {
    "duration_s": (0, 2**31 - 1),
    "segments": (1, 2**31 - 1),
    "cost_minor": (-(2**63), 2**63 - 1),
}


class TenantDirectory(Protocol):
    """What the checks read from the store."""

    def known_tenants(self, tenant_ids: Iterable[str]) -> set[str]: ...
    def all_trunks(self) -> list[Trunk]: ...


def _text_limits(cls: type) -> tuple[tuple[str, int], ...]:
    hints = get_type_hints(cls)
    return tuple(
        (f.name, _SHORT.get(f.name, MAX_TEXT))
        for f in fields(cls)
        if hints[f.name] is str or str in get_args(hints[f.name])
    )


def _int_limits(cls: type) -> tuple[tuple[str, int, int], ...]:
    return tuple((f.name, *_INT_RANGE[f.name]) for f in fields(cls) if f.name in _INT_RANGE)


_KINDS = (CallRecord, MessageRecord, LoginRecord)
_TEXT_LIMITS = {cls: _text_limits(cls) for cls in _KINDS}
_TEXT_GETTERS = {cls: attrgetter(*(name for name, _ in _TEXT_LIMITS[cls])) for cls in _KINDS}
_INT_LIMITS = {cls: _int_limits(cls) for cls in _KINDS}


def check_storable(record: UsageRecord) -> None:
    """Raise UsageError when a value of `record` does not fit the store."""
    kind = type(record)
    values: tuple[str | None, ...] = _TEXT_GETTERS[kind](record)
    present = list(filter(None, values))
    if max(map(len, present), default=0) > _SHORTEST or "\x00" in "".join(present):
        _check_each_text(values, _TEXT_LIMITS[kind])
    for name, low, high in _INT_LIMITS[kind]:
        number = getattr(record, name)
        if number is not None and not low <= number <= high:
            raise UsageError(f"{name} {number} is out of range ({low}..{high})", field=name)


def _check_each_text(values: tuple[str | None, ...], limits: tuple[tuple[str, int], ...]) -> None:
    """The slow path: name the first text value that is too long or holds a NUL."""
    for value, (name, limit) in zip(values, limits, strict=True):
        if value is None or (len(value) <= limit and "\x00" not in value):
            continue
        if "\x00" in value:
            raise UsageError(f"{name} contains a NUL character", field=name)
        raise UsageError(
            f"{name} is {len(value)} characters long; at most {limit} are allowed", field=name
        )


class RecordChecker:
    """Checks and attributes the records of one batch against the store's tenants and trunks."""

    def __init__(
        self, directory: TenantDirectory, records: Sequence[UsageRecord], scope: str | None
    ) -> None:
        """`scope` is the only tenant the submitter may write for (None: the provider)."""
        self.scope = scope
        self._directory = directory
        named = {r.tenant_id for r in records if r.tenant_id is not None}
        self._known = directory.known_tenants(named) if named else set()
        self._trunks: TrunkIndex | None = None

    @classmethod
    def for_rows(
        cls, directory: TenantDirectory, rows: Iterable[Row], scope: str | None
    ) -> RecordChecker:
        """A checker for a batch of rows (bulk ingestion), reading their tenants at once."""
        checker = cls(directory, (), scope)
        named = set(map(itemgetter(TENANT), rows))
        named.discard(None)
        checker._known = directory.known_tenants(named) if named else set()
        return checker

    def _tenant_by_address(self, source_ip: str) -> str | None:
        if self._trunks is None:
            self._trunks = TrunkIndex(self._directory.all_trunks())
        return self._trunks.tenant_for(source_ip)

    def check(self, record: UsageRecord) -> UsageRecord:
        """The record, attributed to its tenant; UsageError when it may not be stored."""
        check_storable(record)
        tenant = record.tenant_id
        if tenant is None:
            if self.scope is not None:
                return replace(record, tenant_id=self.scope)
            address = getattr(record, "source_ip", None)
            found = self._tenant_by_address(address) if address else None
            return replace(record, tenant_id=found) if found is not None else record
        if self.scope is not None and tenant != self.scope:
            raise UsageError(
                f"tenant_id {tenant!r} is another tenant; this key submits usage of "
                f"tenant {self.scope} only",
                field="tenant_id",
            )
        if self.scope is None and tenant not in self._known:
            raise UsageError(f"tenant_id {tenant!r} is not a known tenant", field="tenant_id")
        return record

    def check_row(self, row: Row) -> Row:
        """`check` for a row whose values already passed `check_storable` (bulk ingestion):
        the row attributed to its tenant; UsageError when it may not be stored."""
        tenant = row[TENANT]
        if tenant is None:
            if self.scope is not None:
                return (*row[:TENANT], self.scope, *row[TENANT + 1 :])
            address = row[SOURCE_IP]
            found = self._tenant_by_address(address) if address else None
            if found is None:
                return row
            return (*row[:TENANT], found, *row[TENANT + 1 :])
        if self.scope is not None and tenant != self.scope:
            raise UsageError(
                f"tenant_id {tenant!r} is another tenant; this key submits usage of "
                f"tenant {self.scope} only",
                field="tenant_id",
            )
        if self.scope is None and tenant not in self._known:
            raise UsageError(f"tenant_id {tenant!r} is not a known tenant", field="tenant_id")
        return row
