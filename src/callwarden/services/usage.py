"""Usage ingestion: raw usage records in, stored exactly once, published to the usage stream.

Every unit of raw input (one JSON document, one CSV line, one syslog line) either becomes usage
records or a dead letter holding the raw text and the reason; nothing is dropped silently. The
records of a batch and its dead letters are committed in one transaction, and only after that
commit does `ingest` return (an HTTP answer, a file position or a stream acknowledgement follows
only then). Records are keyed by (record id, leg): a key already stored counts as a duplicate
and is neither stored nor published again.

Newly stored records are published to the usage stream after the commit. So that a stream
outage or a crash between commit and publish cannot lose them for the consumers, the keys of
each batch are written to an outbox in the same transaction and removed once published;
`publish_pending` sends whatever an earlier publish did not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from itertools import chain, islice
from typing import Protocol, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import anyio.to_thread

from callwarden.core.audit import AuditEntry, AuditFact, JSONValue
from callwarden.core.errors import Conflict, InvalidInput, NotFound
from callwarden.core.model import Principal, Trunk
from callwarden.core.permissions import Permission
from callwarden.core.usage.normalise import normalise, split
from callwarden.core.usage.record import RawItem, UsageError, UsageFormat, UsageKind, UsageRecord
from callwarden.core.usage.rows import Row, RowRecords, record_row
from callwarden.core.usage.schema import to_json
from callwarden.services.governance import SYSTEM, authorize
from callwarden.services.ids import new_id
from callwarden.services.ports import Page, PageRequest
from callwarden.services.usage_checks import RecordChecker
from callwarden.services.usage_prepare import LocalPreparer, PreparedUnit, UnitPreparer

log = logging.getLogger("callwarden.usage")

RecordKey = tuple[str, str]
"""The idempotency key of a usage record: (call, message or event id; leg)."""


@dataclass(frozen=True, slots=True)
class UnitRefusal:
    """Why one unit of input became a dead letter, and where it is kept."""

    position: str
    reason: str
    dead_letter_id: str


class UnreadableUsage(InvalidInput):
    """Not one unit of a body could be read; every unit was dead-lettered (see `refusals`)."""

    def __init__(
        self, message: str, *, result: IngestResult, refusals: tuple[UnitRefusal, ...]
    ) -> None:
        super().__init__(message, field="body")
        self.result = result
        self.refusals = refusals


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one ingestion did: records stored, keys already present, units dead-lettered.

    `dead_letter_ids` names the letters holding the dead-lettered units, each once: a unit
    identical to an open dead letter (a resent file, a retried request) joins that letter
    instead of making another.
    """

    stored: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    dead_letter_ids: tuple[str, ...] = ()

    def __add__(self, other: IngestResult) -> IngestResult:
        """The result of two ingestions one after the other."""
        return IngestResult(
            self.stored + other.stored,
            self.duplicates + other.duplicates,
            self.dead_lettered + other.dead_lettered,
            self.dead_letter_ids + other.dead_letter_ids,
        )


class DeadLetterStatus(StrEnum):
    """Open until replayed successfully or discarded by an operator."""

    OPEN = "open"
    REPLAYED = "replayed"
    DISCARDED = "discarded"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One unit of raw input that did not become usage records, kept with the reason.

    `tenant_id` is the tenant of whoever submitted it (None for the provider's own sources);
    a tenant's users see only their tenant's dead letters.
    """

    id: str
    received_at: datetime
    format: UsageFormat
    position: str
    reason: str
    raw_text: str
    status: DeadLetterStatus = DeadLetterStatus.OPEN
    replayed_at: datetime | None = None
    tenant_id: str | None = None
    whole_body: bool = False
    """True when `raw_text` is a whole body or file that could not be cut into units; a replay
    cuts it again. Otherwise it is one unit."""


@dataclass(frozen=True, slots=True)
class DeadLetterQuery:
    """Filters for listing dead letters; None means any."""

    status: DeadLetterStatus | None = None
    format: UsageFormat | None = None
    tenant_id: str | None = None


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """A tenant's usage records between two instants (start inclusive, end exclusive)."""

    tenant_id: str
    since: datetime
    until: datetime
    kind: UsageKind | None = None


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """Totals of a tenant's usage over a period, per kind of record."""

    calls: int
    answered_calls: int
    billable_seconds: int
    messages: int
    logins: int
    cost_minor: dict[str, int] = field(default_factory=dict)
    """Rated cost per currency, in minor units."""


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """A dead letter after a replay, and what the replay stored."""

    dead_letter: DeadLetter
    result: IngestResult


class UsagePublisher(Protocol):
    """Where newly stored records go: the usage stream (`callwarden.services.stream`)."""

    async def publish(self, records: Sequence[UsageRecord]) -> None: ...


class UsageTransaction(Protocol):
    """Reads and writes of usage records and dead letters inside one database transaction."""

    def insert_records(self, records: Sequence[UsageRecord]) -> set[RecordKey]:
        """Insert records whose key is not stored yet; return the keys actually inserted."""
        ...

    def insert_rows(self, rows: Sequence[Row]) -> set[RecordKey]:
        """`insert_records` for records given as rows (`callwarden.core.usage.rows`)."""
        ...

    def get_records(self, keys: Sequence[RecordKey]) -> list[UsageRecord]:
        """The stored records with these keys (any order; missing keys are skipped)."""
        ...

    def known_tenants(self, tenant_ids: Iterable[str]) -> set[str]:
        """Which of these tenant ids exist."""
        ...

    def all_trunks(self) -> list[Trunk]:
        """Every trunk, to attribute records that carry only a source address."""
        ...

    def append_audit(self, fact: AuditFact, at: datetime) -> AuditEntry:
        """Append to the audit log in this same transaction (GOV-1)."""
        ...

    def list_records(self, query: UsageQuery, page: PageRequest) -> Page[UsageRecord]:
        """A tenant's records in a period, oldest first."""
        ...

    def iter_records(self, query: UsageQuery) -> Iterator[UsageRecord]:
        """Every record of a tenant's period, oldest first, read in chunks."""
        ...

    def summarise(self, query: UsageQuery) -> UsageSummary:
        """Totals of a tenant's records in a period."""
        ...

    def delete_records_before(self, cutoff: datetime) -> int:
        """Delete records that started before `cutoff`; return how many."""
        ...

    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> list[str]:
        """Store new dead letters; return, for each, the id it is kept under.

        A letter identical (format, tenant, raw text) to an open one is not stored again: the
        open letter's id is returned for it.
        """
        ...

    def get_dead_letter(self, letter_id: str) -> DeadLetter | None:
        """One dead letter, or None."""
        ...

    def save_dead_letter(self, letter: DeadLetter) -> None:
        """Overwrite a stored dead letter (raw text, reason, status)."""
        ...

    def list_dead_letters(self, query: DeadLetterQuery, page: PageRequest) -> Page[DeadLetter]:
        """Dead letters, newest first."""
        ...

    def open_dead_letter_ids(self, query: DeadLetterQuery, limit: int) -> list[str]:
        """Ids of open dead letters matching the query, oldest first, at most `limit`."""
        ...

    def add_outbox(self, outbox_id: str, keys: Sequence[RecordKey], at: datetime) -> None:
        """Remember that these newly stored records still have to be published."""
        ...

    def remove_outbox(self, outbox_id: str) -> None:
        """Forget an outbox entry once its records are published."""
        ...

    def pending_outbox(
        self, created_before: datetime, limit: int
    ) -> list[tuple[str, list[RecordKey]]]:
        """Outbox entries created before `created_before` and not yet published, oldest first."""
        ...

    def outbox_keys(self, outbox_id: str) -> list[RecordKey]:
        """The keys one outbox entry holds ([] once it is published and removed)."""
        ...


class UsageStore(Protocol):
    """Opens usage transactions."""

    def transaction(self) -> AbstractContextManager[UsageTransaction]: ...


_MAX_REFUSALS = 100
"""How many unit refusals an unreadable body reports (all of them are dead-lettered)."""

ProgressCallback = Callable[[IngestResult], None]
"""Told the running total after each committed batch (a progress bar, a file position)."""


class UsageIngestion:
    """Normalises, validates, stores and publishes usage records; keeps dead letters.

    The database work of each batch runs in a worker thread so the event loop keeps serving;
    publishing runs on the loop. `batch_size` bounds how many raw units one transaction holds.
    """

    def __init__(
        self,
        store: UsageStore,
        *,
        publisher: UsagePublisher | None = None,
        default_tz: str = "UTC",
        batch_size: int = 10_000,
        clock: Callable[[], datetime] | None = None,
        retention_days: int | None = None,
        publish_timeout_s: float = 30.0,
        write_outbox: bool | None = None,
    ) -> None:
        """`publish_timeout_s` bounds the wait for the stream after a commit: records it did not
        take by then stay in the outbox (the sender's answer does not wait on the stream).
        `write_outbox` (default: when there is a publisher) writes each batch's new keys to the
        outbox; a worker process storing for an ingestion that publishes sets it without
        having a publisher of its own."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1 (got {batch_size})")
        if retention_days is not None and retention_days < 1:
            raise ValueError(f"retention_days must be at least 1 (got {retention_days})")
        try:
            self.default_tz: tzinfo = ZoneInfo(default_tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"default_tz: unknown time zone {default_tz!r}") from exc
        self.store = store
        self.publisher = publisher
        self.batch_size = batch_size
        self.clock: Callable[[], datetime] = clock or _utcnow
        self.retention_days = retention_days
        self.publish_timeout_s = publish_timeout_s
        self.write_outbox = publisher is not None if write_outbox is None else write_outbox

    # -- ingestion ------------------------------------------------------------------------------
    async def ingest(
        self,
        fmt: UsageFormat,
        items: Iterable[RawItem],
        *,
        by: Principal | None = None,
        on_progress: ProgressCallback | None = None,
        preparer: UnitPreparer | None = None,
    ) -> IngestResult:
        """Normalise `items`, store new records and dead letters, then publish the new records.

        Returns only after every record and dead letter is committed. `by` defaults to the
        system (the provider's own sources); a tenant's key may only submit its own tenant's
        records (records without a tenant are attributed to it, others are dead-lettered).
        Items are read in batches of `batch_size`, each committed in one transaction, so a
        large file never sits in memory whole; `on_progress` hears the total after each.
        `preparer` normalises the units (default: in this process, one after another; a
        process pool spreads a large file over several cores, still committed in order).
        """
        result, _ = await self._ingest(
            fmt, items, self._writer_scope(by), on_progress, preparer or LocalPreparer()
        )
        return result

    async def _ingest(
        self,
        fmt: UsageFormat,
        items: Iterable[RawItem],
        scope: str | None,
        on_progress: ProgressCallback | None,
        preparer: UnitPreparer,
    ) -> tuple[IngestResult, list[UnitRefusal]]:
        """Prepare and commit one batch after another, in input order.

        Preparing the next batch in a second thread while one is stored was measured to be
        slower, not faster: both stages are Python work that takes turns on one interpreter.
        A process pool as `preparer` does overlap them: it prepares ahead while a batch is
        stored.
        """
        prepared = preparer.prepare(fmt, items, self.default_tz)
        total = IngestResult()
        refusals: list[UnitRefusal] = []
        while True:
            stored = await anyio.to_thread.run_sync(self._ingest_next, fmt, prepared, scope)
            if stored is None:
                return total, refusals
            total = total + stored.result
            refusals.extend(stored.refusals[: _MAX_REFUSALS - len(refusals)])
            await self._publish(stored)
            if on_progress is not None:
                on_progress(total)

    def writer_scope(self, by: Principal | None) -> str | None:
        """The tenant a writer may submit usage for (None: the provider, any tenant);
        refuses a principal that may not write usage at all."""
        return self._writer_scope(by)

    def store_batch(
        self, fmt: UsageFormat, items: Sequence[RawItem], scope: str | None
    ) -> StoredBatch:
        """Prepare, check and commit one batch of raw units in the calling thread.

        This is what a worker process storing a chunk of a large file directly does (see
        `callwarden.adapters.usage_pool.StoringPool`): the batch's records, dead letters and
        outbox entry are one transaction, and only counts, refusals and the outbox id come back,
        so rows never have to cross a process boundary. Nothing is published here; the
        ingesting process publishes through `ingest_stored`. A batch holds at most
        `batch_size` units (ValueError otherwise: one transaction, one answer).
        """
        if len(items) > self.batch_size:
            raise ValueError(f"a batch holds at most {self.batch_size} units (got {len(items)})")
        prepared = LocalPreparer().prepare(fmt, items, self.default_tz)
        stored = self._ingest_next(fmt, prepared, scope)
        if stored is None:
            return StoredBatch(IngestResult(), [], None)
        return StoredBatch(stored.result, stored.refusals, stored.outbox_id)

    async def ingest_stored(
        self,
        batches: Iterator[StoredBatch],
        *,
        on_progress: ProgressCallback | None = None,
    ) -> IngestResult:
        """Total batches that other processes committed (`store_batch`), in the order given,
        and publish their new records.

        `batches` may block while a batch is stored, so it is read in a worker thread. Progress
        is told after each batch, which is only handed over once committed. The records of a
        batch are read back from the store only when the publisher reads them (an in-process
        stream without consumers never does).
        """
        total = IngestResult()
        while True:
            batch = await anyio.to_thread.run_sync(next, batches, None)
            if batch is None:
                return total
            total = total + batch.result
            if batch.outbox_id is not None:
                fresh = _OutboxRecords(self.store, batch.outbox_id, batch.result.stored)
                await self._publish(_Stored(batch.result, fresh, batch.outbox_id))
            if on_progress is not None:
                on_progress(total)

    async def ingest_records(
        self, records: Iterable[UsageRecord], *, by: Principal | None = None
    ) -> IngestResult:
        """Store and publish already-normalised records (the NATS subject, internal sources).

        A record that fails validation becomes a dead letter holding it in callwarden's JSON
        schema, so it can be fixed and replayed like any other.
        """
        scope = self._writer_scope(by)
        iterator = iter(records)
        total = IngestResult()
        while True:
            batch = await anyio.to_thread.run_sync(self._store_next_records, iterator, scope)
            if batch is None:
                return total
            total = total + batch.result
            await self._publish(batch)

    async def ingest_body(
        self, fmt: UsageFormat, body: bytes, *, by: Principal | None = None, position: str = "body"
    ) -> IngestResult:
        """Decode a request body (one record or a batch), cut it into units and ingest them.

        An empty body is refused with `InvalidInput` (there is nothing to keep). When not one
        unit yields a record (the body is not UTF-8, holds no unit, or every unit is bad)
        everything is dead-lettered first and then `UnreadableUsage` says why, unit by unit.
        """
        scope = self._writer_scope(by)
        if not body.strip():
            raise InvalidInput("the body is empty: it holds no usage records", field="body")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"not UTF-8 text (invalid byte at offset {exc.start})"
            letter_id = await anyio.to_thread.run_sync(
                self.dead_letter_body, fmt, body.decode("utf-8", "replace"), reason, position, scope
            )
            result = IngestResult(dead_lettered=1, dead_letter_ids=(letter_id,))
            refusal = UnitRefusal(position, reason, letter_id)
            raise UnreadableUsage(
                f"the {position} could not be read: {reason}", result=result, refusals=(refusal,)
            ) from None
        result, refusals = await self._ingest(fmt, split(fmt, text), scope, None, LocalPreparer())
        if result == IngestResult():
            reason = f"holds no {fmt.value} usage record (a header line alone?)"
            letter_id = await anyio.to_thread.run_sync(
                self.dead_letter_body, fmt, text, reason, position, scope
            )
            raise UnreadableUsage(
                f"the {position} {reason}",
                result=IngestResult(dead_lettered=1, dead_letter_ids=(letter_id,)),
                refusals=(UnitRefusal(position, reason, letter_id),),
            )
        if result.dead_lettered and not (result.stored or result.duplicates):
            raise UnreadableUsage(
                f"no usage record could be read from the {position} as {fmt.value}: "
                f"{refusals[0].reason}",
                result=result,
                refusals=tuple(refusals),
            )
        return result

    def dead_letter_body(
        self, fmt: UsageFormat, text: str, reason: str, position: str, tenant_id: str | None
    ) -> str:
        """Keep a whole body or file that could not be read at all; return the letter's id.

        A replay cuts the (fixed) text into units again.
        """
        letter = DeadLetter(
            id=new_id("dl"),
            received_at=self.clock(),
            format=fmt,
            position=position,
            reason=reason,
            raw_text=text,
            tenant_id=tenant_id,
            whole_body=True,
        )
        with self.store.transaction() as tx:
            kept = tx.add_dead_letters([letter])[0]
        log.warning(
            "usage input dead-lettered whole",
            extra={"dead_letter": kept, "format": fmt.value, "reason": reason},
        )
        return kept

    def _writer_scope(self, by: Principal | None) -> str | None:
        """The tenant a writer is confined to (None: the provider, any tenant)."""
        principal = by or SYSTEM
        authorize(principal, Permission.USAGE_WRITE, principal.tenant_id)
        return None if principal.is_operator else principal.tenant_id

    def _ingest_next(
        self,
        fmt: UsageFormat,
        prepared: Iterator[tuple[RawItem, PreparedUnit]],
        scope: str | None,
    ) -> _Stored | None:
        """Take the next batch of prepared units and store it (in a worker thread)."""
        batch = list(islice(prepared, self.batch_size))
        if not batch:
            return None
        failures: list[_Failure] = []
        with self.store.transaction() as tx:
            checker = RecordChecker.for_rows(tx, chain.from_iterable(u[0] for _, u in batch), scope)
            accepted: dict[RecordKey, Row] = {}
            produced = 0
            for item, (rows, reason) in batch:
                try:
                    checked = [checker.check_row(row) for row in rows]
                except UsageError as exc:
                    failures.append(_Failure(item, exc.message))
                    continue
                if reason is not None:
                    failures.append(_Failure(item, reason))
                    continue
                for row in checked:
                    produced += 1
                    accepted.setdefault((row[0], row[1]), row)
            return self._write(tx, fmt, accepted, produced, failures, scope)

    def _store_next_records(
        self, records: Iterator[UsageRecord], scope: str | None
    ) -> _Stored | None:
        """Store the next batch of ready records (in a worker thread)."""
        batch = list(islice(records, self.batch_size))
        if not batch:
            return None
        units = [_Unit(None, [r]) for r in batch]
        return self._store(UsageFormat.CALLWARDEN_JSON, units, [], scope)

    def _store(
        self, fmt: UsageFormat, units: list[_Unit], failures: list[_Failure], scope: str | None
    ) -> _Stored:
        """Validate, deduplicate and commit one batch with its dead letters and outbox entry."""
        with self.store.transaction() as tx:
            accepted, produced = _accept(tx, units, failures, scope)
            return self._write(tx, fmt, accepted, produced, failures, scope)

    def _write(
        self,
        tx: UsageTransaction,
        fmt: UsageFormat,
        accepted: dict[RecordKey, Row],
        produced: int,
        failures: list[_Failure],
        scope: str | None,
    ) -> _Stored:
        """Insert the accepted records, the failures as dead letters and the outbox entry."""
        now = self.clock()
        inserted = tx.insert_rows(list(accepted.values()))
        letters = [
            DeadLetter(
                id=new_id("dl"),
                received_at=now,
                format=fmt,
                position=f.item.position,
                reason=f.reason,
                raw_text=f.item.text,
                tenant_id=scope,
            )
            for f in failures
        ]
        kept = tx.add_dead_letters(letters)
        if len(inserted) == len(accepted):  # all new: the common case of a first ingestion
            fresh_keys = list(accepted)
            fresh = RowRecords(list(accepted.values()))
        else:
            fresh_keys = [key for key in accepted if key in inserted]
            fresh = RowRecords([accepted[key] for key in fresh_keys])
        outbox_id = None
        if fresh_keys and self.write_outbox:
            outbox_id = new_id("ob")
            tx.add_outbox(outbox_id, fresh_keys, now)
        result = IngestResult(
            stored=len(fresh_keys),
            duplicates=produced - len(fresh_keys),
            dead_lettered=len(letters),
            dead_letter_ids=tuple(dict.fromkeys(kept)),
        )
        refusals = [
            UnitRefusal(f.item.position, f.reason, letter_id)
            for f, letter_id in zip(failures, kept, strict=True)
        ]
        return _Stored(result, fresh, outbox_id, refusals)

    async def _publish(self, batch: _Stored) -> None:
        """Publish a committed batch's new records and clear its outbox entry."""
        if self.publisher is None or not batch.fresh or batch.outbox_id is None:
            return
        published = False
        try:
            with anyio.move_on_after(self.publish_timeout_s):
                await self.publisher.publish(batch.fresh)
                published = True
        except Exception:  # stored is stored: the outbox keeps them for `publish_pending`
            log.warning("usage stream publish failed", exc_info=True)
        if not published:
            log.warning(
                "usage records stay in the outbox until the stream takes them",
                extra={"outbox": batch.outbox_id, "records": len(batch.fresh)},
            )
            return
        await anyio.to_thread.run_sync(self._clear_outbox, batch.outbox_id)

    def _clear_outbox(self, outbox_id: str) -> None:
        with self.store.transaction() as tx:
            tx.remove_outbox(outbox_id)

    async def publish_pending(self, *, min_age_s: float = 30.0, limit: int = 100) -> int:
        """Publish records an earlier publish did not deliver; return how many were sent.

        Only outbox entries older than `min_age_s` are taken, so a batch whose own publish is
        still under way is not sent twice. Stops at the first failure (the stream is down).
        """
        if self.publisher is None:
            return 0
        cutoff = self.clock() - timedelta(seconds=min_age_s)
        pending = await anyio.to_thread.run_sync(self._pending, cutoff, limit)
        sent = 0
        for outbox_id, records in pending:
            if records:
                try:
                    await self.publisher.publish(records)
                except Exception:
                    log.warning("usage stream still unreachable", exc_info=True)
                    return sent
            await anyio.to_thread.run_sync(self._clear_outbox, outbox_id)
            sent += len(records)
        return sent

    def _pending(self, cutoff: datetime, limit: int) -> list[tuple[str, list[UsageRecord]]]:
        with self.store.transaction() as tx:
            return [
                (outbox_id, tx.get_records(keys))
                for outbox_id, keys in tx.pending_outbox(cutoff, limit)
            ]

    # -- retention and queries ------------------------------------------------------------------
    def prune(self, *, now: datetime | None = None, retention_days: int | None = None) -> int:
        """Delete records older than the retention period; return how many (0 if unset).

        `retention_days` overrides the configured period for this run. The deletion and its
        audit entry (GOV-6 retention) are one transaction.
        """
        keep = retention_days or self.retention_days
        if keep is None:
            return 0
        if keep < 1:
            raise InvalidInput(f"retention must be at least 1 day (got {keep})", field="days")
        cutoff = (now or self.clock()) - timedelta(days=keep)
        with self.store.transaction() as tx:
            deleted = tx.delete_records_before(cutoff)
            if deleted:
                fact = AuditFact(
                    actor=SYSTEM.user_id,
                    action="usage.pruned",
                    subject_type="usage",
                    subject_id="records",
                    tenant_id=None,
                    reason=f"retention of {keep} days",
                    clause_ids=("GOV-6",),
                    details={"deleted": deleted, "before": cutoff.isoformat()},
                )
                tx.append_audit(fact, self.clock())
        return deleted

    def list_records(
        self, by: Principal, query: UsageQuery, page: PageRequest
    ) -> Page[UsageRecord]:
        """A tenant's usage records in a period, oldest first."""
        authorize(by, Permission.USAGE_READ, query.tenant_id)
        with self.store.transaction() as tx:
            return tx.list_records(query, page)

    def summarise(self, by: Principal, query: UsageQuery) -> UsageSummary:
        """Totals of a tenant's usage in a period."""
        authorize(by, Permission.USAGE_READ, query.tenant_id)
        with self.store.transaction() as tx:
            return tx.summarise(query)

    # -- dead letters ---------------------------------------------------------------------------
    def list_dead_letters(
        self, by: Principal, query: DeadLetterQuery, page: PageRequest
    ) -> Page[DeadLetter]:
        """Dead letters, newest first; a tenant's users see only their tenant's."""
        if not by.is_operator:
            authorize(by, Permission.USAGE_READ, query.tenant_id or by.tenant_id)
            query = replace(query, tenant_id=by.tenant_id)
        else:
            authorize(by, Permission.USAGE_READ)
        with self.store.transaction() as tx:
            return tx.list_dead_letters(query, page)

    def get_dead_letter(self, by: Principal, letter_id: str) -> DeadLetter:
        """One dead letter; `NotFound` if absent or another tenant's."""
        authorize(by, Permission.USAGE_READ, None if by.is_operator else by.tenant_id)
        with self.store.transaction() as tx:
            return _visible(tx, by, letter_id)

    def fix_dead_letter(self, by: Principal, letter_id: str, raw_text: str) -> DeadLetter:
        """Replace an open dead letter's raw text (to be replayed afterwards); audited."""
        authorize(by, Permission.USAGE_WRITE, None if by.is_operator else by.tenant_id)
        if not raw_text.strip():
            raise InvalidInput("raw_text must not be empty", field="raw_text")
        with self.store.transaction() as tx:
            letter = _open(_visible(tx, by, letter_id))
            fixed = replace(letter, raw_text=raw_text)
            tx.save_dead_letter(fixed)
            _audit(tx, by, "dead_letter.fixed", letter, self.clock(), {"length": len(raw_text)})
        return fixed

    def discard_dead_letter(self, by: Principal, letter_id: str, reason: str) -> DeadLetter:
        """Mark an open dead letter as discarded: it will not be replayed; audited with why."""
        authorize(by, Permission.USAGE_WRITE, None if by.is_operator else by.tenant_id)
        if not reason.strip():
            raise InvalidInput("a reason is required to discard usage input", field="reason")
        with self.store.transaction() as tx:
            letter = _open(_visible(tx, by, letter_id))
            discarded = replace(letter, status=DeadLetterStatus.DISCARDED)
            tx.save_dead_letter(discarded)
            _audit(tx, by, "dead_letter.discarded", letter, self.clock(), {}, reason=reason)
        return discarded

    async def replay(self, by: Principal, letter_id: str) -> ReplayOutcome:
        """Ingest an open dead letter's raw text again.

        When it now yields records they are stored and the letter becomes `replayed`; when it
        is still bad it stays open with the new reason. Replaying a whole body cuts it into
        units again: its units that are still bad become dead letters of their own.
        """
        authorize(by, Permission.USAGE_WRITE, None if by.is_operator else by.tenant_id)
        outcome, batch = await anyio.to_thread.run_sync(self._replay, by, letter_id)
        await self._publish(batch)
        return outcome

    def _replay(self, by: Principal, letter_id: str) -> tuple[ReplayOutcome, _Stored]:
        """Re-read, re-check and store one dead letter in one transaction (worker thread)."""
        with self.store.transaction() as tx:
            letter = _open(_visible(tx, by, letter_id))
            failures: list[_Failure] = []
            try:
                units = self._normalise_letter(letter, failures)
                accepted, produced = _accept(tx, units, failures, letter.tenant_id)
            except UsageError as exc:
                failures = [_Failure(RawItem(letter.raw_text, letter.position), exc.message)]
            if failures and not letter.whole_body:
                still_open = replace(letter, reason=failures[0].reason)
                tx.save_dead_letter(still_open)
                nothing = _Stored(IngestResult(), RowRecords([]), None)
                return ReplayOutcome(still_open, IngestResult()), nothing
            stored = self._write(tx, letter.format, accepted, produced, failures, letter.tenant_id)
            replayed = replace(letter, status=DeadLetterStatus.REPLAYED, replayed_at=self.clock())
            tx.save_dead_letter(replayed)
            details: dict[str, JSONValue] = {
                "stored": stored.result.stored,
                "duplicates": stored.result.duplicates,
                "dead_lettered": stored.result.dead_lettered,
            }
            _audit(tx, by, "dead_letter.replayed", letter, self.clock(), details)
        return ReplayOutcome(replayed, stored.result), stored

    def _normalise_letter(self, letter: DeadLetter, failures: list[_Failure]) -> list[_Unit]:
        """The units a dead letter's raw text yields now; bad units are added to `failures`.

        Raises UsageError when a whole body still cannot be cut into units.
        """
        if letter.whole_body:
            items = _split_all(letter.format, letter.raw_text)
        else:
            items = [RawItem(letter.raw_text, letter.position)]
        units: list[_Unit] = []
        for item in items:
            unit = self._normalise_item(letter.format, item, failures)
            if unit is not None:
                units.append(unit)
        return units

    def _normalise_item(
        self, fmt: UsageFormat, item: RawItem, failures: list[_Failure]
    ) -> _Unit | None:
        """The records one unit yields, or None with the reason added to `failures`."""
        try:
            return _Unit(item, normalise(fmt, item, default_tz=self.default_tz))
        except UsageError as exc:
            failures.append(_Failure(item, exc.message))
        except Exception as exc:  # a normaliser fault must not lose the input
            log.exception("usage normaliser failed", extra={"format": fmt.value})
            failures.append(_Failure(item, f"could not be read ({type(exc).__name__})"))
        return None

    async def replay_open(
        self, by: Principal, query: DeadLetterQuery | None = None, *, limit: int = 1000
    ) -> list[ReplayOutcome]:
        """Replay open dead letters matching the query, oldest first, at most `limit`."""
        query = query or DeadLetterQuery()
        if not by.is_operator:
            authorize(by, Permission.USAGE_WRITE, query.tenant_id or by.tenant_id)
            query = replace(query, tenant_id=by.tenant_id)
        else:
            authorize(by, Permission.USAGE_WRITE)
        ids = await anyio.to_thread.run_sync(self._open_ids, query, limit)
        return [await self.replay(by, letter_id) for letter_id in ids]

    def _open_ids(self, query: DeadLetterQuery, limit: int) -> list[str]:
        with self.store.transaction() as tx:
            return tx.open_dead_letter_ids(query, limit)


@dataclass(frozen=True, slots=True)
class _Unit:
    """One raw unit and the records it became.

    A record that arrived already normalised has no raw unit; should it fail, it is kept in
    callwarden's JSON schema (written only then: most records never need it).
    """

    raw: RawItem | None
    records: list[UsageRecord]

    @property
    def item(self) -> RawItem:
        """The raw unit, or the record written as one."""
        if self.raw is not None:
            return self.raw
        (record,) = self.records
        return RawItem(_json_text(record), f"record {record.key[0]}/{record.key[1]}")


@dataclass(frozen=True, slots=True)
class _Failure:
    """One raw unit that did not become records, and why."""

    item: RawItem
    reason: str


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """What a committed batch stored elsewhere comes back as: counts, each dead-lettered unit
    (position, reason, letter id) and the outbox entry of its new records, if one was written."""

    result: IngestResult
    refusals: list[UnitRefusal]
    outbox_id: str | None


class _OutboxRecords(Sequence[UsageRecord]):
    """The records an outbox entry names, read from the store the first time one is read."""

    def __init__(self, store: UsageStore, outbox_id: str, count: int) -> None:
        self._store = store
        self._outbox_id = outbox_id
        self._count = count
        self._records: list[UsageRecord] | None = None

    def _loaded(self) -> list[UsageRecord]:
        if self._records is None:
            with self._store.transaction() as tx:
                self._records = tx.get_records(tx.outbox_keys(self._outbox_id))
        return self._records

    def __len__(self) -> int:
        return self._count if self._records is None else len(self._records)

    @overload
    def __getitem__(self, index: int) -> UsageRecord: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[UsageRecord]: ...
    def __getitem__(self, index: int | slice) -> UsageRecord | Sequence[UsageRecord]:
        return self._loaded()[index]

    def __iter__(self) -> Iterator[UsageRecord]:
        return iter(self._loaded())


@dataclass(frozen=True, slots=True)
class _Stored:
    """A committed batch: its result, the records it newly stored, their outbox entry."""

    result: IngestResult
    fresh: Sequence[UsageRecord]
    outbox_id: str | None
    refusals: list[UnitRefusal] = field(default_factory=list)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _split_all(fmt: UsageFormat, text: str) -> list[RawItem]:
    """Every unit of a whole body (raises UsageError when it cannot be cut at all)."""
    return list(split(fmt, text))


def _json_text(record: UsageRecord) -> str:
    return json.dumps(to_json(record), ensure_ascii=False, separators=(",", ":"))


def _accept(
    tx: UsageTransaction, units: list[_Unit], failures: list[_Failure], scope: str | None
) -> tuple[dict[RecordKey, Row], int]:
    """Check every unit's records; return the accepted ones by key and how many there were.

    A unit with one bad record is refused whole (added to `failures`), so that replaying it
    later yields all of its records together.
    """
    checker = RecordChecker(tx, [r for unit in units for r in unit.records], scope)
    accepted: dict[RecordKey, Row] = {}
    produced = 0
    for unit in units:
        try:
            records = [checker.check(record) for record in unit.records]
        except UsageError as exc:
            failures.append(_Failure(unit.item, exc.message))
            continue
        for record in records:
            produced += 1
            if record.key not in accepted:
                accepted[record.key] = record_row(record)
    return accepted, produced


def _visible(tx: UsageTransaction, by: Principal, letter_id: str) -> DeadLetter:
    letter = tx.get_dead_letter(letter_id)
    if letter is None or (not by.is_operator and letter.tenant_id != by.tenant_id):
        raise NotFound(f"dead letter {letter_id} not found", field="dead_letter_id")
    return letter


def _open(letter: DeadLetter) -> DeadLetter:
    if letter.status is not DeadLetterStatus.OPEN:
        raise Conflict(
            f"dead letter {letter.id} is {letter.status.value}, not open", field="status"
        )
    return letter


def _audit(
    tx: UsageTransaction,
    by: Principal,
    action: str,
    letter: DeadLetter,
    at: datetime,
    details: dict[str, JSONValue],
    *,
    reason: str | None = None,
) -> None:
    fact = AuditFact(
        actor=by.user_id,
        action=action,
        subject_type="dead_letter",
        subject_id=letter.id,
        tenant_id=letter.tenant_id,
        reason=reason,
        clause_ids=("GOV-1",),
        details={"format": letter.format.value, "position": letter.position, **details},
    )
    tx.append_audit(fact, at)
