"""Preparing, or preparing and storing, a large usage file's units in other processes.

Normalising is Python work that one interpreter does one record at a time, so a file of
millions of records is cut into chunks of units that a pool of processes prepares
(`callwarden.services.usage_prepare.prepare_texts`) while this process stores what came
back. Chunks are submitted a bounded distance ahead of the one being stored and answered
strictly in order, so batches are committed in file order, each unit keeps its position
("line 17") for its dead letter, and memory stays flat whatever the file's size. Sending units
out and rows back costs the ingesting process about what the quick path costs to read a
unit, so the pool pays only for the formats read the ordinary way, on idle cores.

`StoringPool` goes further, for PostgreSQL: each worker prepares a chunk of units and commits it
itself, on its own connection, and sends back only its counts, its dead-lettered units
(position, reason, letter id) and its outbox id. Rows never cross a process boundary, so this
process does little more than cut the file. Chunks are answered in file order all the same, so
progress and dead letters are reported as in process. Two workers meeting the same key is what
a file sent again looks like to each of them: the one whose batch commits second finds the key
stored and counts it as a duplicate; should they wait on each other's keys (PostgreSQL reports
a deadlock and rolls one back), the rolled-back batch is stored again from the start. SQLite
has one writer, so it is never stored this way.

Workers are forked where the platform offers it (Linux, macOS): they start at once and
share the loaded code. A forked worker only ever runs `prepare_texts` on the texts sent to it
(a storing worker: `store_batch` through a database engine of its own, made in the worker): it
never touches the connections, threads or event loop it inherited, and it leaves through
`os._exit`, so none of them is closed or flushed from the child. Elsewhere workers are spawned.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.util
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import tzinfo
from itertools import islice
from types import TracebackType

import psycopg.errors
from sqlalchemy.exc import DBAPIError

from callwarden.adapters.store.database import make_engine
from callwarden.adapters.store.usage import SqlUsageStore
from callwarden.core.usage.record import RawItem, UsageFormat
from callwarden.services.usage import StoredBatch, UsageIngestion
from callwarden.services.usage_prepare import PreparedUnit, prepare_texts

__all__ = [
    "DEFAULT_CHUNK_UNITS",
    "DEFAULT_STORING_WORKERS",
    "ProcessPreparer",
    "StoringPool",
    "default_workers",
    "store_chunk",
]

DEFAULT_CHUNK_UNITS = 1000
"""Units per chunk sent to a worker: large enough that sending costs little per unit."""


DEFAULT_STORING_WORKERS = 2
"""Storing workers `callwarden ingest` starts on PostgreSQL when not told: measured best on two
cores shared with PostgreSQL (see docs/performance.md); at most one per core."""

_DEADLOCK_RETRIES = 5


def default_workers() -> int:
    """Worker processes for a large file: one per core, at most four."""
    return max(1, min(4, os.cpu_count() or 1))


def _context() -> multiprocessing.context.BaseContext:
    """Fork where the platform has it (quick to start, code already loaded), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


class _WorkerProcesses:
    """Worker processes held for a ``with`` block: shut down on leaving it, work not yet
    started cancelled."""

    _pool: ProcessPoolExecutor | None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class ProcessPreparer(_WorkerProcesses):
    """A pool of `workers` processes preparing units (the `UnitPreparer` port).

    Use it as a context manager; the pool is started on entry and stopped on exit. `ahead`
    chunks at most are submitted and not yet stored: by default enough for the workers to
    keep going while one batch of `batch_units` is committed.
    """

    def __init__(
        self,
        workers: int,
        *,
        chunk_units: int = DEFAULT_CHUNK_UNITS,
        batch_units: int = 10_000,
        ahead: int | None = None,
    ) -> None:
        if workers < 1 or chunk_units < 1:
            raise ValueError("workers and chunk_units must be at least 1")
        self.workers = workers
        self.chunk_units = chunk_units
        self.ahead = ahead or max(2, -(-batch_units // chunk_units) + 2 * workers)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ProcessPreparer:
        self._pool = ProcessPoolExecutor(self.workers, mp_context=_context())
        return self

    def prepare(
        self, fmt: UsageFormat, items: Iterable[RawItem], default_tz: tzinfo
    ) -> Iterator[tuple[RawItem, PreparedUnit]]:
        """Each item with its prepared unit, in the order the items came.

        A worker that fails (a crashed process) raises here; what was committed before stays
        committed, and ingesting the file again stores nothing twice.
        """
        pool = self._pool
        if pool is None:
            raise RuntimeError("ProcessPreparer is used outside its `with` block")
        source = iter(items)
        pending: deque[tuple[list[RawItem], Future[list[PreparedUnit]]]] = deque()
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.ahead:
                chunk = list(islice(source, self.chunk_units))
                if not chunk:
                    exhausted = True
                    break
                texts = [item.text for item in chunk]
                pending.append((chunk, pool.submit(prepare_texts, fmt, texts, default_tz)))
            if not pending:
                return
            chunk, future = pending.popleft()
            yield from zip(chunk, future.result(), strict=True)


_worker_ingestion: UsageIngestion | None = None
"""A storing worker's own ingestion, on its own engine (set by `_start_storing_worker`)."""


def _start_storing_worker(
    database_url: str, default_tz: str, batch_size: int, write_outbox: bool
) -> None:
    """Open this worker's own engine and ingestion; the engine is disposed when it leaves."""
    global _worker_ingestion
    gc.freeze()  # what the worker inherited or loaded is never garbage: keep collections short
    engine = make_engine(database_url)
    multiprocessing.util.Finalize(None, engine.dispose, exitpriority=10)
    _worker_ingestion = UsageIngestion(
        SqlUsageStore(engine),
        default_tz=default_tz,
        batch_size=batch_size,
        write_outbox=write_outbox,
    )


def _is_deadlock(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError):
        exc = exc.orig or exc
    return isinstance(exc, psycopg.errors.DeadlockDetected)


def store_chunk(
    fmt: UsageFormat, texts: Sequence[str], positions: Sequence[str], scope: str | None
) -> StoredBatch:
    """Prepare and commit one chunk of units in this worker (one transaction); what a
    `StoringPool` worker runs. A batch PostgreSQL rolled back to break a deadlock with another
    worker's batch is stored again from the start."""
    ingestion = _worker_ingestion
    if ingestion is None:
        raise RuntimeError("store_chunk runs in a StoringPool worker only")
    items = [RawItem(text, position) for text, position in zip(texts, positions, strict=True)]
    for attempt in range(_DEADLOCK_RETRIES + 1):
        try:
            return ingestion.store_batch(fmt, items, scope)
        except Exception as exc:
            if attempt == _DEADLOCK_RETRIES or not _is_deadlock(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


class StoringPool(_WorkerProcesses):
    """A pool of `workers` processes that prepare and commit chunks of units on PostgreSQL.

    Use it as a context manager; the pool is started on entry and stopped on exit. At most
    `ahead` chunks are handed out and not yet answered (default: two per worker).
    """

    def __init__(
        self,
        workers: int,
        database_url: str,
        *,
        default_tz: str = "UTC",
        batch_size: int = 10_000,
        write_outbox: bool = True,
        ahead: int | None = None,
    ) -> None:
        """`database_url` is the store's (the workers open their own connections to it);
        `write_outbox` writes each chunk's new keys to the outbox, for the ingesting process
        to publish."""
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.ahead = ahead or 2 * workers
        self._init = (database_url, default_tz, batch_size, write_outbox)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> StoringPool:
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=_context(),
            initializer=_start_storing_worker,
            initargs=self._init,
        )
        return self

    def store(
        self, fmt: UsageFormat, chunks: Iterable[Sequence[RawItem]], scope: str | None
    ) -> Iterator[StoredBatch]:
        """Each chunk stored by a worker, answered in the order the chunks came, each only once
        committed. A failing worker (the database down, a crashed process) raises here; what
        was committed before stays committed, and storing the file again stores nothing twice.
        """
        pool = self._pool
        if pool is None:
            raise RuntimeError("StoringPool is used outside its `with` block")
        source = iter(chunks)
        pending: deque[Future[StoredBatch]] = deque()
        exhausted = False
        while True:
            while not exhausted and len(pending) < self.ahead:
                chunk = next(source, None)
                if chunk is None:
                    exhausted = True
                    break
                texts = [item.text for item in chunk]
                positions = [item.position for item in chunk]
                pending.append(pool.submit(store_chunk, fmt, texts, positions, scope))
            if not pending:
                return
            yield pending.popleft().result()
