"""Preparing a large usage file's units in other processes, answered in the file's order.

Normalising is Python work that one interpreter does one record at a time, so a file of
millions of records is cut into chunks of units that a pool of processes prepares
(`callwarden.services.usage_prepare.prepare_texts`) while this process stores what came
back. Chunks are submitted a bounded distance ahead of the one being stored and answered
strictly in order, so batches are committed in file order, each unit keeps its position
("line 17") for its dead letter, and memory stays flat whatever the file's size. Sending units
out and rows back costs the ingesting process about what the quick path costs to read a
unit, so the pool pays only for the formats read the ordinary way, on idle cores.

Workers are forked where the platform offers it (Linux, macOS): they start at once and
share the loaded code. A forked worker only ever runs `prepare_texts` on the texts sent to it:
it never touches the connections, threads or event loop it inherited, and it leaves through
`os._exit`, so none of them is closed or flushed from the child. Elsewhere workers are spawned.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import tzinfo
from itertools import islice
from types import TracebackType

from callwarden.core.usage.record import RawItem, UsageFormat
from callwarden.services.usage_prepare import PreparedUnit, prepare_texts

__all__ = ["DEFAULT_CHUNK_UNITS", "ProcessPreparer", "default_workers"]

DEFAULT_CHUNK_UNITS = 1000
"""Units per chunk sent to a worker: large enough that sending costs little per unit."""


def default_workers() -> int:
    """Worker processes for a large file: one per core, at most four."""
    return max(1, min(4, os.cpu_count() or 1))


class ProcessPreparer:
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
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

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
