"""Usage records, dead letters and the publish outbox in SQL, with the fast bulk paths.

One table holds every kind of usage record, keyed by (record id, leg) so that storing a key twice
is a no-op; the (tenant, started_at) index serves a tenant's month. Calls, messages and logins
keep their own attribute names as columns (a message's `sender` is not squeezed into `caller`).

Inserting ignores keys already stored (`ON CONFLICT DO NOTHING`) and reports which keys were
new, so the caller counts duplicates and publishes only new records. On PostgreSQL a batch of
new records is copied (binary `COPY`) straight into the table, inside a savepoint; when that
meets a stored key (a file sent again) the batch is rolled back to the savepoint, copied into a
temporary staging table instead and moved with one `INSERT ... SELECT ... ON CONFLICT DO NOTHING
RETURNING` (see `CopyHint`); on SQLite, whose writers are serialised by `BEGIN IMMEDIATE`,
the keys already present are read first and the rest inserted with one `executemany`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import psycopg
import psycopg.errors
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Engine,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from callwarden.adapters.store.sql import SqlTransaction
from callwarden.adapters.store.tables import Base, TenantRow
from callwarden.core.admission.attempt import Direction
from callwarden.core.audit import AuditEntry, AuditFact
from callwarden.core.model import Trunk
from callwarden.core.usage.record import (
    CallRecord,
    Disposition,
    LoginRecord,
    MessageRecord,
    UsageFormat,
    UsageKind,
    UsageRecord,
)
from callwarden.core.usage.rows import ROW_FIELDS, Row, record_row
from callwarden.services.ports import Page, PageRequest
from callwarden.services.usage import (
    DeadLetter,
    DeadLetterQuery,
    DeadLetterStatus,
    RecordKey,
    UsageQuery,
    UsageSummary,
)

__all__ = [
    "COLUMNS",
    "COPY_TYPES",
    "DeadLetterRow",
    "SqlUsageStore",
    "SqlUsageTransaction",
    "UsageOutboxRow",
    "UsageRecordRow",
    "record_from_row",
    "record_row",
]


class UsageRecordRow(Base):
    """One usage record; the columns a kind does not have are NULL."""

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_tenant_started", "tenant_id", "started_at"),)
    record_id: Mapped[str] = mapped_column(Text, primary_key=True)
    leg: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    source_format: Mapped[str] = mapped_column(String(64))
    trunk_id: Mapped[str | None] = mapped_column(Text)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    direction: Mapped[str | None] = mapped_column(String(8))
    caller: Mapped[str | None] = mapped_column(Text)
    callee: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    duration_s: Mapped[int | None] = mapped_column(Integer)
    disposition: Mapped[str | None] = mapped_column(String(16))
    cost_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    campaign: Mapped[str | None] = mapped_column(Text)
    attestation: Mapped[str | None] = mapped_column(String(1))
    sender: Mapped[str | None] = mapped_column(Text)
    recipient: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)
    segments: Mapped[int | None] = mapped_column(Integer)
    success: Mapped[bool | None] = mapped_column(Boolean)
    method: Mapped[str | None] = mapped_column(Text)


class DeadLetterRow(Base):
    """One unit of raw input that did not become records; `raw` keeps its exact bytes.

    `digest` (SHA-256 of format, tenant and raw text) finds an identical open letter, so a
    resent file or a retried request does not pile up copies.
    """

    __tablename__ = "usage_dead_letters"
    __table_args__ = (
        Index("ix_usage_dead_letters_status_received", "status", "received_at"),
        Index("ix_usage_dead_letters_tenant", "tenant_id"),
        Index("ix_usage_dead_letters_digest", "digest"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    received_at: Mapped[datetime]
    format: Mapped[str] = mapped_column(String(32))
    position: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))
    replayed_at: Mapped[datetime | None]
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    whole_body: Mapped[bool] = mapped_column(Boolean)
    digest: Mapped[str] = mapped_column(String(64))


class UsageOutboxRow(Base):
    """Keys of newly stored records that still have to be published to the usage stream."""

    __tablename__ = "usage_outbox"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime]
    keys: Mapped[list[Any]] = mapped_column(JSON)


COLUMNS: tuple[str, ...] = ROW_FIELDS
"""The usage table's columns in the order `record_row` fills them (and COPY sends them)."""


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def record_from_row(row: Any) -> UsageRecord:
    """The record a `usage_records` row holds (the inverse of `record_row`)."""
    kind = row.kind
    if kind == UsageKind.CALL:
        return CallRecord(
            call_id=row.record_id,
            leg=row.leg,
            tenant_id=row.tenant_id,
            user_id=row.user_id,
            trunk_id=row.trunk_id,
            source_ip=row.source_ip,
            direction=Direction(row.direction),
            caller=row.caller,
            callee=row.callee,
            started_at=_utc(row.started_at),
            answered_at=None if row.answered_at is None else _utc(row.answered_at),
            ended_at=None if row.ended_at is None else _utc(row.ended_at),
            duration_s=row.duration_s,
            disposition=Disposition(row.disposition),
            cost_minor=row.cost_minor,
            currency=row.currency,
            campaign=row.campaign,
            attestation=row.attestation,
            source_format=row.source_format,
        )
    if kind == UsageKind.MESSAGE:
        return MessageRecord(
            message_id=row.record_id,
            tenant_id=row.tenant_id,
            user_id=row.user_id,
            direction=Direction(row.direction),
            sender=row.sender,
            recipient=row.recipient,
            sent_at=_utc(row.started_at),
            status=row.status,
            segments=row.segments,
            cost_minor=row.cost_minor,
            currency=row.currency,
            campaign=row.campaign,
            source_format=row.source_format,
        )
    return LoginRecord(
        event_id=row.record_id,
        tenant_id=row.tenant_id,
        user_id=row.user_id,
        source_ip=row.source_ip,
        at=_utc(row.started_at),
        success=bool(row.success),
        method=row.method,
        source_format=row.source_format,
    )


_TABLE: Table = UsageRecordRow.__table__  # type: ignore[assignment]
_KEY_CHUNK = 900
"""Ids per `IN (...)` list: well inside every SQLite build's limit on bound parameters."""
_STAGING = "usage_records_staging"
_KEY_OF = itemgetter(0, 1)
_DIRECT_COPY_SQL = f"COPY usage_records ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_COPY_SQL = f"COPY {_STAGING} ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_MOVE_SQL = (
    f"INSERT INTO usage_records ({', '.join(COLUMNS)}) "
    f"SELECT {', '.join(COLUMNS)} FROM {_STAGING} "
    "ON CONFLICT (record_id, leg) DO NOTHING RETURNING record_id, leg"
)


_COLUMN_TYPES: dict[str, str] = {
    "record_id": "text",
    "leg": "varchar",
    "kind": "varchar",
    "tenant_id": "varchar",
    "user_id": "text",
    "started_at": "timestamptz",
    "source_format": "varchar",
    "trunk_id": "text",
    "source_ip": "varchar",
    "direction": "varchar",
    "caller": "text",
    "callee": "text",
    "answered_at": "timestamptz",
    "ended_at": "timestamptz",
    "duration_s": "int4",
    "disposition": "varchar",
    "cost_minor": "int8",
    "currency": "varchar",
    "campaign": "text",
    "attestation": "varchar",
    "sender": "text",
    "recipient": "text",
    "status": "text",
    "segments": "int4",
    "success": "bool",
    "method": "text",
}
COPY_TYPES: tuple[str, ...] = tuple(_COLUMN_TYPES[c] for c in COLUMNS)
"""PostgreSQL types of `COLUMNS`, for binary COPY (values are then dumped without guessing)."""
_SQLITE_INSERT = (
    f"INSERT INTO usage_records ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(COLUMNS))}) ON CONFLICT DO NOTHING"
)
_TIME_COLUMNS = tuple(COLUMNS.index(c) for c in ("started_at", "answered_at", "ended_at"))


def _sqlite_time(value: datetime) -> str:
    """The UTC text SQLAlchemy writes for a timestamp on SQLite (and reads back)."""
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    return utc.isoformat(" ", "microseconds")[:26]


def sqlite_values(row: Row) -> list[Any]:
    """A row as SQLite stores it: times as text in UTC, like every other table."""
    values = list(row)
    for i in _TIME_COLUMNS:
        if values[i] is not None:
            values[i] = _sqlite_time(values[i])
    return values


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def _dead_letter_from_row(row: DeadLetterRow) -> DeadLetter:
    return DeadLetter(
        id=row.id,
        received_at=_utc(row.received_at),
        format=UsageFormat(row.format),
        position=row.position,
        reason=row.reason,
        raw_text=bytes(row.raw).decode("utf-8", "replace"),
        status=DeadLetterStatus(row.status),
        replayed_at=None if row.replayed_at is None else _utc(row.replayed_at),
        tenant_id=row.tenant_id,
        whole_body=row.whole_body,
    )


def _dead_letter_values(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "received_at": letter.received_at,
        "format": letter.format.value,
        "position": _storable(letter.position),
        "reason": _storable(letter.reason),
        "raw": _text(letter.raw_text),
        "status": letter.status.value,
        "replayed_at": letter.replayed_at,
        "tenant_id": letter.tenant_id,
        "whole_body": letter.whole_body,
        "digest": dead_letter_digest(letter),
    }


def dead_letter_digest(letter: DeadLetter) -> str:
    """What identifies identical dead letters: format, tenant and raw text."""
    h = hashlib.sha256()
    for part in (letter.format.value, letter.tenant_id or "", letter.raw_text):
        h.update(_text(part))
        h.update(b"\x00")
    return h.hexdigest()


def _storable(text: str) -> str:
    """Text PostgreSQL accepts: NUL (refused in text columns) is written as an escape."""
    return text.replace("\x00", "\\x00") if "\x00" in text else text


@dataclass(slots=True)
class CopyHint:
    """Whether the next PostgreSQL batch should first be copied straight into the table.

    Copying straight in costs PostgreSQL about half of staging and moving, but a single key
    already stored aborts it (it is then rolled back to a savepoint and staged). So it is tried
    while batches are new records (a fresh file) and left alone after a batch met stored keys
    (a file sent again), until a staged batch turns out to be all new again.
    """

    direct: bool = True


def _copy(cursor: psycopg.Cursor[Any], sql: str, rows: Sequence[Row]) -> None:
    """Send rows with a binary COPY (column types given, so nothing is guessed)."""
    with cursor.copy(sql) as copy:
        copy.set_types(list(COPY_TYPES))
        for row in rows:
            copy.write_row(row)


class SqlUsageTransaction:
    """The `UsageTransaction` port over one SQLAlchemy session.

    Tenants, trunks and the audit log are read and written through the main store's
    transaction on the same session, so an audited change is one commit.
    """

    def __init__(self, session: Session, hint: CopyHint | None = None) -> None:
        """`hint` carries what earlier batches learnt (shared by one store's transactions)."""
        self.session = session
        self._hint = hint or CopyHint()
        self.dialect = session.get_bind().dialect.name
        self._main = SqlTransaction(session)

    # -- the rest of the store -----------------------------------------------------------------
    def known_tenants(self, tenant_ids: Iterable[str]) -> set[str]:
        """Which of these tenant ids exist."""
        known: set[str] = set()
        for chunk in _chunks(list(set(tenant_ids)), _KEY_CHUNK):
            known.update(self.session.scalars(select(TenantRow.id).where(TenantRow.id.in_(chunk))))
        return known

    def all_trunks(self) -> list[Trunk]:
        """Every trunk, to attribute records that carry only a source address."""
        return self._main.all_trunks()

    def append_audit(self, fact: AuditFact, at: datetime) -> AuditEntry:
        """Append to the audit log in this same transaction (GOV-1)."""
        return self._main.append_audit(fact, at)

    # -- usage records -------------------------------------------------------------------------
    def insert_records(self, records: Sequence[UsageRecord]) -> set[RecordKey]:
        """Insert records whose key is not stored yet; return the keys actually inserted."""
        return self.insert_rows([record_row(r) for r in records])

    def insert_rows(self, rows: Sequence[Row]) -> set[RecordKey]:
        """Insert records given as rows (`ROW_FIELDS` order) whose key is not stored yet;
        return the keys actually inserted."""
        if not rows:
            return set()
        if self.dialect == "postgresql":
            return self._insert_postgres(rows)
        return self._insert_sqlite(rows)

    def _insert_postgres(self, rows: Sequence[Row]) -> set[RecordKey]:
        """COPY straight into the table while batches hold only new keys; otherwise (or when
        that meets a stored key) COPY into a staging table and move what is new."""
        connection = self.session.connection()
        raw = connection.connection.dbapi_connection
        assert isinstance(raw, psycopg.Connection)
        cursor = raw.cursor()
        try:
            if self._hint.direct:
                cursor.execute("SAVEPOINT usage_direct_copy")
                try:
                    _copy(cursor, _DIRECT_COPY_SQL, rows)
                except psycopg.errors.UniqueViolation:
                    cursor.execute("ROLLBACK TO SAVEPOINT usage_direct_copy")
                    self._hint.direct = False
                else:
                    cursor.execute("RELEASE SAVEPOINT usage_direct_copy")
                    return set(map(_KEY_OF, rows))
            # Every time: a rolled-back transaction takes the temporary table with it.
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} "
                "(LIKE usage_records) ON COMMIT DELETE ROWS"
            )
            _copy(cursor, _COPY_SQL, rows)
            cursor.execute(_MOVE_SQL)
            inserted = {(k, leg) for k, leg in cursor.fetchall()}
            cursor.execute(f"TRUNCATE {_STAGING}")
        finally:
            cursor.close()
        self._hint.direct = len(inserted) == len(rows)
        return inserted

    def _insert_sqlite(self, rows: Sequence[Row]) -> set[RecordKey]:
        cursor = self.session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            present: set[RecordKey] = set()
            ids = list({row[0] for row in rows})
            for chunk in _chunks(ids, _KEY_CHUNK):
                marks = ",".join("?" * len(chunk))
                cursor.execute(
                    f"SELECT record_id, leg FROM usage_records WHERE record_id IN ({marks})",
                    list(chunk),
                )
                present.update((k, leg) for k, leg in cursor.fetchall())
            fresh: dict[RecordKey, Row] = {}
            for row in rows:
                key = (row[0], row[1])
                if key not in present and key not in fresh:
                    fresh[key] = row
            if fresh:
                cursor.executemany(_SQLITE_INSERT, [sqlite_values(r) for r in fresh.values()])
        finally:
            cursor.close()
        return set(fresh)

    def get_records(self, keys: Sequence[RecordKey]) -> list[UsageRecord]:
        """The stored records with these keys (missing keys are skipped)."""
        wanted = set(keys)
        found: list[UsageRecord] = []
        ids = list({k for k, _ in wanted})
        for chunk in _chunks(ids, _KEY_CHUNK):
            for row in self.session.execute(select(_TABLE).where(_TABLE.c.record_id.in_(chunk))):
                if (row.record_id, row.leg) in wanted:
                    found.append(record_from_row(row))
        return found

    def _period(self, query: UsageQuery) -> Any:
        clause = (
            (_TABLE.c.tenant_id == query.tenant_id)
            & (_TABLE.c.started_at >= query.since)
            & (_TABLE.c.started_at < query.until)
        )
        if query.kind is not None:
            clause = clause & (_TABLE.c.kind == query.kind.value)
        return clause

    def list_records(self, query: UsageQuery, page: PageRequest) -> Page[UsageRecord]:
        """A tenant's records in a period, oldest first."""
        where = self._period(query)
        total = self.session.scalar(select(func.count()).select_from(_TABLE).where(where)) or 0
        stmt = (
            select(_TABLE)
            .where(where)
            .order_by(_TABLE.c.started_at, _TABLE.c.record_id, _TABLE.c.leg)
            .limit(page.limit)
            .offset(page.offset)
        )
        items = [record_from_row(row) for row in self.session.execute(stmt)]
        return Page(items, total, page.limit, page.offset)

    def iter_records(self, query: UsageQuery) -> Iterator[UsageRecord]:
        """Every record of a tenant's period, oldest first, read in chunks."""
        stmt = (
            select(_TABLE)
            .where(self._period(query))
            .order_by(_TABLE.c.started_at)
            .execution_options(yield_per=5000)
        )
        for row in self.session.execute(stmt):
            yield record_from_row(row)

    def summarise(self, query: UsageQuery) -> UsageSummary:
        """Totals of a tenant's records in a period (one grouped scan of the index range)."""
        answered = case((_TABLE.c.disposition == Disposition.ANSWERED.value, 1), else_=0)
        stmt = (
            select(
                _TABLE.c.kind,
                _TABLE.c.currency,
                func.count(),
                func.coalesce(func.sum(answered), 0),
                func.coalesce(func.sum(_TABLE.c.duration_s), 0),
                func.sum(_TABLE.c.cost_minor),
            )
            .where(self._period(query))
            .group_by(_TABLE.c.kind, _TABLE.c.currency)
        )
        counts = {UsageKind.CALL.value: 0, UsageKind.MESSAGE.value: 0, UsageKind.LOGIN.value: 0}
        answered_calls = billable = 0
        cost: dict[str, int] = {}
        for kind, currency, count, answered_n, seconds, cost_sum in self.session.execute(stmt):
            counts[kind] = counts.get(kind, 0) + int(count)
            if kind == UsageKind.CALL.value:
                answered_calls += int(answered_n)
                billable += int(seconds)
            if currency is not None and cost_sum is not None:
                cost[currency] = cost.get(currency, 0) + int(cost_sum)
        return UsageSummary(
            calls=counts[UsageKind.CALL.value],
            answered_calls=answered_calls,
            billable_seconds=billable,
            messages=counts[UsageKind.MESSAGE.value],
            logins=counts[UsageKind.LOGIN.value],
            cost_minor=dict(sorted(cost.items())),
        )

    def delete_records_before(self, cutoff: datetime) -> int:
        """Delete records that started before `cutoff`; return how many."""
        result = self.session.execute(delete(_TABLE).where(_TABLE.c.started_at < cutoff))
        return int(result.rowcount)  # type: ignore[attr-defined]

    # -- dead letters --------------------------------------------------------------------------
    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> list[str]:
        """Store new dead letters; an identical open letter is reused (its id returned)."""
        if not letters:
            return []
        values = [_dead_letter_values(letter) for letter in letters]
        digests = list({v["digest"] for v in values})
        kept: dict[str, str] = {}
        for chunk in _chunks(digests, _KEY_CHUNK):
            stmt = select(DeadLetterRow.digest, DeadLetterRow.id).where(
                DeadLetterRow.digest.in_(chunk),
                DeadLetterRow.status == DeadLetterStatus.OPEN.value,
            )
            for digest, letter_id in self.session.execute(stmt):
                kept.setdefault(digest, letter_id)
        fresh = []
        for v in values:
            if v["digest"] not in kept:
                kept[v["digest"]] = v["id"]
                fresh.append(v)
        if fresh:
            self.session.execute(insert(DeadLetterRow), fresh)
        return [kept[v["digest"]] for v in values]

    def get_dead_letter(self, letter_id: str) -> DeadLetter | None:
        """One dead letter, or None."""
        row = self.session.get(DeadLetterRow, letter_id)
        return _dead_letter_from_row(row) if row is not None else None

    def save_dead_letter(self, letter: DeadLetter) -> None:
        """Overwrite a stored dead letter (raw text, reason, status)."""
        values = _dead_letter_values(letter)
        del values["id"]
        self.session.execute(
            update(DeadLetterRow).where(DeadLetterRow.id == letter.id).values(**values)
        )
        self.session.expire_all()

    def _dead_letter_filter(self, query: DeadLetterQuery) -> Any:
        conditions = []
        if query.status is not None:
            conditions.append(DeadLetterRow.status == query.status.value)
        if query.format is not None:
            conditions.append(DeadLetterRow.format == query.format.value)
        if query.tenant_id is not None:
            conditions.append(DeadLetterRow.tenant_id == query.tenant_id)
        return and_(true(), *conditions)

    def list_dead_letters(self, query: DeadLetterQuery, page: PageRequest) -> Page[DeadLetter]:
        """Dead letters, newest first."""
        where = self._dead_letter_filter(query)
        total = self.session.scalar(select(func.count()).select_from(DeadLetterRow).where(where))
        rows = self.session.scalars(
            select(DeadLetterRow)
            .where(where)
            .order_by(DeadLetterRow.received_at.desc(), DeadLetterRow.id.desc())
            .limit(page.limit)
            .offset(page.offset)
        )
        items = [_dead_letter_from_row(row) for row in rows]
        return Page(items, total or 0, page.limit, page.offset)

    def open_dead_letter_ids(self, query: DeadLetterQuery, limit: int) -> list[str]:
        """Ids of open dead letters matching the query, oldest first, at most `limit`."""
        where = self._dead_letter_filter(query) & (
            DeadLetterRow.status == DeadLetterStatus.OPEN.value
        )
        stmt = (
            select(DeadLetterRow.id)
            .where(where)
            .order_by(DeadLetterRow.received_at, DeadLetterRow.id)
            .limit(limit)
        )
        return list(self.session.scalars(stmt))

    # -- outbox --------------------------------------------------------------------------------
    def add_outbox(self, outbox_id: str, keys: Sequence[RecordKey], at: datetime) -> None:
        """Remember that these newly stored records still have to be published."""
        self.session.execute(
            insert(UsageOutboxRow).values(
                id=outbox_id,
                created_at=at,
                keys=list(keys),  # pairs, written as JSON arrays
            )
        )

    def remove_outbox(self, outbox_id: str) -> None:
        """Forget an outbox entry once its records are published."""
        self.session.execute(delete(UsageOutboxRow).where(UsageOutboxRow.id == outbox_id))

    def pending_outbox(
        self, created_before: datetime, limit: int
    ) -> list[tuple[str, list[RecordKey]]]:
        """Outbox entries created before `created_before` and not yet published, oldest first."""
        rows = self.session.execute(
            select(UsageOutboxRow.id, UsageOutboxRow.keys)
            .where(UsageOutboxRow.created_at < created_before)
            .order_by(UsageOutboxRow.created_at, UsageOutboxRow.id)
            .limit(limit)
        )
        return [(row_id, [(k, leg) for k, leg in keys]) for row_id, keys in rows]

    def outbox_keys(self, outbox_id: str) -> list[RecordKey]:
        """The keys one outbox entry holds ([] once it is published and removed)."""
        keys = self.session.scalar(
            select(UsageOutboxRow.keys).where(UsageOutboxRow.id == outbox_id)
        )
        return [(k, leg) for k, leg in keys or ()]


class SqlUsageStore:
    """The `UsageStore` port on the same database as the rest of the store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._hint = CopyHint()

    @contextmanager
    def transaction(self) -> Iterator[SqlUsageTransaction]:
        """One unit of work: committed when the block ends, rolled back if it raises."""
        with self._sessions() as session, session.begin():
            yield SqlUsageTransaction(session, self._hint)
