"""Ingesting a usage file: read line by line, committed batch by batch, progress in bytes.

A file is checked to be UTF-8 text before anything is ingested, so a file is either ingested
from start to end or refused whole (never half, with the rest lost). Ingesting the same file
again stores nothing twice: records already stored count as duplicates, and bad units join the
dead letters they already became.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from callwarden.adapters.usage_pool import ProcessPreparer
from callwarden.core.errors import InvalidInput
from callwarden.core.model import Principal
from callwarden.core.usage.normalise import split
from callwarden.core.usage.record import RawItem, UsageFormat
from callwarden.services.usage import IngestResult, UsageIngestion

__all__ = ["FileProgress", "UnreadableFile", "find_invalid_utf8", "ingest_file"]

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


async def ingest_file(
    ingestion: UsageIngestion,
    path: Path,
    fmt: UsageFormat,
    *,
    by: Principal | None = None,
    on_progress: FileProgress | None = None,
    workers: int = 0,
) -> IngestResult:
    """Ingest every unit of the file at `path`; returns once the last batch is committed.

    With `workers` of 1 or more the units are prepared in that many worker processes while
    this one stores (`ProcessPreparer`); batches are committed in file order all the same. It
    pays only where cores are idle and the format is read the ordinary way (see
    docs/performance.md); by default this process does it.

    Raises UnreadableFile (before ingesting anything) when the file is not UTF-8 text.
    """
    bad = find_invalid_utf8(path)
    if bad is not None:
        line, offset = bad
        raise UnreadableFile(
            f"{path.name} is not UTF-8 text: invalid byte at line {line} (byte offset {offset})",
            field="file",
        )
    with path.open("rb") as file:
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
        with ProcessPreparer(workers, batch_units=ingestion.batch_size) as preparer:
            return await ingestion.ingest(
                fmt, units(), by=by, on_progress=progress, preparer=preparer
            )
