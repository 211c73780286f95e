"""Ingesting a usage file: read line by line, committed batch by batch, progress in bytes.

A file is checked to be UTF-8 text before anything is ingested, so a file is either ingested
from start to end or refused whole (never half, with the rest lost). Ingesting the same file
again stores nothing twice: records already stored count as duplicates, and bad units join the
dead letters they already became.
"""

from __future__ import annotations

import codecs
import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from callwarden.adapters.store.usage import SqlUsageStore
from callwarden.adapters.usage_pool import DEFAULT_STORING_WORKERS, ProcessPreparer, StoringPool
from callwarden.core.errors import InvalidInput
from callwarden.core.model import Principal
from callwarden.core.usage.normalise import split
from callwarden.core.usage.record import RawItem, UsageFormat
from callwarden.services.usage import IngestResult, UsageIngestion

__all__ = [
    "FileProgress",
    "UnreadableFile",
    "default_file_workers",
    "find_invalid_utf8",
    "ingest_file",
    "storing_url",
]

_CHUNK = 1 << 20

FileProgress = Callable[[int, IngestResult], None]
"""Told, after each committed batch, how many bytes of the file it covers and the running total."""


class UnreadableFile(InvalidInput):
    """A usage file that is not UTF-8 text; nothing of it was ingested."""


def find_invalid_utf8(path: Path) -> tuple[int, int] | None:
    """(line number, byte offset) of the first byte that is not UTF-8, or None when all is."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return _locate(path, max(0, offset - 4))
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return _locate(path, max(0, offset - 4))
    return None


def _locate(path: Path, near: int) -> tuple[int, int]:
    """The exact line and offset of the first undecodable line at or after line start `near`."""
    offset = 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if offset + len(raw) > near:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return number, offset + exc.start
            offset += len(raw)
    return 0, near


class _Lines:
    """A binary file's lines as text, counting the bytes handed out so far."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.consumed = 0

    def __iter__(self) -> Iterator[str]:
        for raw in self.file:
            self.consumed += len(raw)
            yield raw.decode("utf-8")


@contextmanager
def _collector_spared() -> Iterator[None]:
    """Keep the garbage collector off what was alive before ingesting, while ingesting.

    Ingestion makes hundreds of thousands of short-lived rows; every collection of the oldest
    generation would walk the whole loaded application again (about a third of the CPU of
    ingesting a file, measured). Freezing moves those objects out of the collector's way for
    the duration; they are handed back afterwards.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def storing_url(ingestion: UsageIngestion) -> str | None:
    """The database URL storing workers connect to, or None when the store is not PostgreSQL
    (SQLite has one writer: worker processes storing at once would only queue)."""
    store = ingestion.store
    if not isinstance(store, SqlUsageStore) or store.engine.dialect.name != "postgresql":
        return None
    return store.engine.url.render_as_string(hide_password=False)


def default_file_workers(ingestion: UsageIngestion) -> int:
    """Workers `ingest_file` uses when not told: storing workers on PostgreSQL (one per core,
    at most `DEFAULT_STORING_WORKERS`), none on SQLite."""
    if storing_url(ingestion) is None:
        return 0
    return max(1, min(DEFAULT_STORING_WORKERS, os.cpu_count() or 1))


def _chunks(units: Iterator[RawItem], size: int) -> Iterator[list[RawItem]]:
    while chunk := list(islice(units, size)):
        yield chunk


async def ingest_file(
    ingestion: UsageIngestion,
    path: Path,
    fmt: UsageFormat,
    *,
    by: Principal | None = None,
    on_progress: FileProgress | None = None,
    workers: int | None = 0,
) -> IngestResult:
    """Ingest every unit of the file at `path`; returns once the last batch is committed.

    `workers` None picks `default_file_workers`. With 1 or more on PostgreSQL, that many
    worker processes each prepare and commit whole batches on their own connections
    (`StoringPool`), and this process only cuts the file and totals what they report, in file
    order. On SQLite they only prepare units while this process stores (`ProcessPreparer`),
    which pays only where cores are idle and the format is read the ordinary way (see
    docs/performance.md). With 0 this process does everything.

    Raises UnreadableFile (before ingesting anything) when the file is not UTF-8 text.
    """
    bad = find_invalid_utf8(path)
    if bad is not None:
        line, offset = bad
        raise UnreadableFile(
            f"{path.name} is not UTF-8 text: invalid byte at line {line} (byte offset {offset})",
            field="file",
        )
    if workers is None:
        workers = default_file_workers(ingestion)
    with path.open("rb") as file, _collector_spared():
        lines = _Lines(file)
        marks: list[int] = []  # bytes read when each batch's last unit was cut
        batches = 0

        def units() -> Iterator[RawItem]:
            for count, item in enumerate(split(fmt, lines), 1):
                if count % ingestion.batch_size == 0:
                    marks.append(lines.consumed)
                yield item

        def progress(total: IngestResult) -> None:
            nonlocal batches
            batches += 1
            if on_progress is not None:
                done = marks[batches - 1] if batches <= len(marks) else lines.consumed
                on_progress(done, total)

        if workers < 1:
            return await ingestion.ingest(fmt, units(), by=by, on_progress=progress)
        url = storing_url(ingestion)
        if url is None:
            with ProcessPreparer(workers, batch_units=ingestion.batch_size) as preparer:
                return await ingestion.ingest(
                    fmt, units(), by=by, on_progress=progress, preparer=preparer
                )
        scope = ingestion.writer_scope(by)
        pool = StoringPool(
            workers,
            url,
            default_tz=str(ingestion.default_tz),
            batch_size=ingestion.batch_size,
            write_outbox=ingestion.write_outbox,
        )
        with pool:
            stored = pool.store(fmt, _chunks(units(), ingestion.batch_size), scope)
            return await ingestion.ingest_stored(stored, on_progress=progress)
