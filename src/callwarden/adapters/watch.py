"""The watched folder: usage files dropped into a folder are ingested and moved aside.

Layout under the watched folder:

- files directly in it are read in the default format; files in a subfolder named after a
  format (`asterisk-csv/`, `freeswitch-json/`, ...) are read in that format;
- a file counts as complete once its size and modification time have not changed for
  `settle_s` seconds (writers should still write under a temporary name and rename: names
  starting with "." or ending in ".part" or ".tmp" are never picked up);
- an ingested file moves to `done/` (its dead letters, if any, are in the store); a file that
  is not UTF-8 text, or of which not one unit could be read, moves to `failed/`;
- when the store cannot be reached the file stays where it is and is tried again on the next
  scan. Ingesting a file twice stores nothing twice, so a crash mid-file loses nothing.

Polling (rather than inotify) works the same on local disks and network shares and needs no
extra dependency; a scan every few seconds costs one directory listing per format.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread

from callwarden.adapters.usage_files import UnreadableFile, ingest_file
from callwarden.core.usage.record import UsageFormat
from callwarden.services.usage import IngestResult, UsageIngestion

__all__ = ["FileOutcome", "FolderWatcher"]

log = logging.getLogger("callwarden.watch")

DONE = "done"
FAILED = "failed"
_IGNORED_SUFFIXES = (".part", ".tmp")


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What happened to one file: where it went and what its ingestion did."""

    source: Path
    moved_to: Path
    result: IngestResult
    error: str | None = None


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    stable_since: float


@dataclass
class FolderWatcher:
    """Polls `folder` for complete usage files, ingests each and moves it to done/ or failed/."""

    ingestion: UsageIngestion
    folder: Path
    default_format: UsageFormat = UsageFormat.CALLWARDEN_CSV
    interval_s: float = 2.0
    settle_s: float = 2.0
    keep_bytes: int = 32 * 1024 * 1024
    """Largest unreadable file also kept as a dead letter (larger ones stay in failed/ only)."""
    _seen: dict[Path, _Seen] = field(default_factory=dict)

    def inboxes(self) -> list[tuple[Path, UsageFormat]]:
        """The folders scanned and the format of the files in each."""
        boxes = [(self.folder, self.default_format)]
        boxes += [(self.folder / fmt.value, fmt) for fmt in UsageFormat]
        return boxes

    def complete_files(self, now: float | None = None) -> list[tuple[Path, UsageFormat]]:
        """Files whose size and time have stayed the same for `settle_s` (oldest first)."""
        clock = time.monotonic() if now is None else now
        ready: list[tuple[float, Path, UsageFormat]] = []
        present: set[Path] = set()
        for box, fmt in self.inboxes():
            if not box.is_dir():
                continue
            for path in box.iterdir():
                if path.name.startswith(".") or path.name.endswith(_IGNORED_SUFFIXES):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                if not path.is_file():
                    continue
                present.add(path)
                seen = self._seen.get(path)
                if seen is None or (seen.size, seen.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                    self._seen[path] = _Seen(stat.st_size, stat.st_mtime_ns, clock)
                    if self.settle_s > 0:
                        continue
                    seen = self._seen[path]
                if clock - seen.stable_since >= self.settle_s:
                    ready.append((stat.st_mtime_ns, path, fmt))
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return [(path, fmt) for _, path, fmt in sorted(ready)]

    async def scan_once(self, now: float | None = None) -> list[FileOutcome]:
        """Ingest every complete file found now; return what became of each."""
        outcomes = []
        for path, fmt in self.complete_files(now):
            outcome = await self.ingest(path, fmt)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    async def ingest(self, path: Path, fmt: UsageFormat) -> FileOutcome | None:
        """Ingest one file and move it; None when it must be tried again (store unreachable)."""
        try:
            result = await ingest_file(self.ingestion, path, fmt)
        except UnreadableFile as exc:
            moved = _move(path, self._target(FAILED, path))
            await self._keep_unreadable(moved, fmt, exc.message)
            log.warning("usage file refused", extra={"file": str(moved), "reason": exc.message})
            return FileOutcome(path, moved, IngestResult(), exc.message)
        except Exception:  # the store or the stream is down: the file stays for the next scan
            log.exception("usage file not ingested; will retry", extra={"file": str(path)})
            return None
        self._seen.pop(path, None)
        unreadable = result.dead_lettered > 0 and not (result.stored or result.duplicates)
        moved = _move(path, self._target(FAILED if unreadable else DONE, path))
        error = "not one unit of the file could be read" if unreadable else None
        log.info(
            "usage file ingested",
            extra={
                "file": str(moved),
                "stored": result.stored,
                "duplicates": result.duplicates,
                "dead_lettered": result.dead_lettered,
            },
        )
        return FileOutcome(path, moved, result, error)

    async def _keep_unreadable(self, path: Path, fmt: UsageFormat, reason: str) -> None:
        """Keep a refused file's text as a dead letter too, when it is not too large."""
        if path.stat().st_size > self.keep_bytes:
            return
        text = path.read_bytes().decode("utf-8", "replace")
        await anyio.to_thread.run_sync(
            self.ingestion.dead_letter_body,
            fmt,
            text,
            f"{reason}; the file is kept as {path}",
            f"file {path.name}",
            None,
        )

    def _target(self, outcome: str, path: Path) -> Path:
        relative = path.parent.relative_to(self.folder)
        return self.folder / outcome / relative / path.name

    async def run(self) -> None:
        """Scan every `interval_s` seconds until cancelled."""
        log.info("watching for usage files", extra={"folder": str(self.folder)})
        while True:
            try:
                await self.scan_once()
            except Exception:  # a listing error must not stop the watcher
                log.exception("usage folder scan failed", extra={"folder": str(self.folder)})
            await anyio.sleep(self.interval_s)


def _move(path: Path, target: Path) -> Path:
    """Move `path` to `target`, adding -1, -2, ... before the suffix if the name is taken."""
    target.parent.mkdir(parents=True, exist_ok=True)
    candidate = target
    n = 0
    while candidate.exists():
        n += 1
        candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
    path.replace(candidate)
    return candidate
