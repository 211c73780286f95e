"""Worker processes that prepare and store a file's batches themselves, on PostgreSQL.

Real worker processes commit chunks of a file on their own connections and report only
counts, refusals and outbox ids. Whatever the order they finish in, the ingesting process
reports dead letters in file order with their lines, counts each key once, stores nothing twice
when the file comes again, and publishes what the workers stored.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import anyio
import psycopg.errors
import pytest
from sqlalchemy import func, select
from tests.usage_world import seed_tenants

from callwarden.adapters import usage_pool
from callwarden.adapters.store.usage import UsageOutboxRow, UsageRecordRow
from callwarden.adapters.stream.memory import InProcessStream
from callwarden.adapters.usage_files import default_file_workers, ingest_file, storing_url
from callwarden.core.usage.record import RawItem, UsageFormat, UsageRecord
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import PageRequest
from callwarden.services.usage import (
    DeadLetterQuery,
    IngestResult,
    StoredBatch,
    UsageIngestion,
)
from callwarden.settings import Settings

pytestmark = pytest.mark.postgres

CSV = UsageFormat.CALLWARDEN_CSV
HEADER = "call_id,tenant_id,direction,callee,started_at,answered_at,ended_at,disposition\n"


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Platform]:
    """A migrated platform on PostgreSQL holding the sample tenants."""
    platform = Platform.build(Settings(database_url=postgres_url))
    seed_tenants(platform)
    try:
        yield platform
    finally:
        platform.close()


def _line(call_id: str, i: int, *, callee: str = "+442079460123", tenant: str = "tenant-a") -> str:
    start = 1_735_689_600 + i
    return f"{call_id},{tenant},outbound,{callee},{start},{start + 5},{start + 65},answered\n"


def _write(path: Path, lines: Sequence[str]) -> Path:
    path.write_text(HEADER + "".join(lines), "utf-8")
    return path


def _stored_count(platform: Platform) -> int:
    with platform.store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(UsageRecordRow)) or 0)


def _ingest(
    usage: UsageIngestion, path: Path, workers: int, progress: list[int] | None = None
) -> IngestResult:
    async def run() -> IngestResult:
        return await ingest_file(
            usage,
            path,
            CSV,
            workers=workers,
            on_progress=None if progress is None else lambda done, _: progress.append(done),
        )

    return anyio.run(run)


def test_postgres_is_stored_by_workers_by_default_and_sqlite_in_process(
    pg: Platform, sqlite_url: str
) -> None:
    assert storing_url(pg.usage) is not None
    assert default_file_workers(pg.usage) >= 1
    lite = Platform.build(Settings(database_url=sqlite_url))
    try:
        assert storing_url(lite.usage) is None
        assert default_file_workers(lite.usage) == 0
    finally:
        lite.close()


def test_dead_letters_come_back_in_file_order_with_their_lines(
    pg: Platform, tmp_path: Path
) -> None:
    pg.usage.batch_size = 40
    lines = []
    for i in range(400):
        if i % 37 == 5:
            lines.append(_line(f"order-{i}", i, callee=""))
        elif i % 53 == 7:
            lines.append(_line(f"order-{i}", i, tenant="tenant-x"))
        else:
            lines.append(_line(f"order-{i}", i))
    path = _write(tmp_path / "order.csv", lines)
    progress: list[int] = []
    result = _ingest(pg.usage, path, 2, progress)
    bad = [i for i in range(400) if i % 37 == 5 or i % 53 == 7]
    assert (result.stored, result.duplicates, result.dead_lettered) == (400 - len(bad), 0, len(bad))
    assert _stored_count(pg) == 400 - len(bad)
    letters = {
        d.id: d
        for d in pg.usage.list_dead_letters(SYSTEM, DeadLetterQuery(), PageRequest(1000)).items
    }
    reported = [letters[letter_id] for letter_id in result.dead_letter_ids]
    assert [d.position for d in reported] == [f"line {i + 2}" for i in bad]
    assert reported[0].reason == "callee is missing"
    assert reported[0].raw_text == HEADER + _line("order-5", 5, callee="").rstrip("\n")
    assert "not a known tenant" in letters[result.dead_letter_ids[1]].reason
    assert progress == sorted(progress) and len(progress) == 10
    assert progress[-1] == path.stat().st_size


def test_a_file_ingested_again_by_workers_stores_nothing_twice(
    pg: Platform, tmp_path: Path
) -> None:
    pg.usage.batch_size = 100
    lines = [_line(f"again-{i}", i) for i in range(550)]
    lines[123] = _line("again-bad", 123, callee="")
    path = _write(tmp_path / "again.csv", lines)
    first = _ingest(pg.usage, path, 2)
    second = _ingest(pg.usage, path, 2)
    assert (first.stored, first.duplicates, first.dead_lettered) == (549, 0, 1)
    assert (second.stored, second.duplicates, second.dead_lettered) == (0, 549, 1)
    assert second.dead_letter_ids == first.dead_letter_ids  # the same open letter, joined
    assert _stored_count(pg) == 549


def test_workers_meeting_the_same_keys_count_each_once(pg: Platform, tmp_path: Path) -> None:
    """Every key appears in four chunks, which two workers store at the same time."""
    pg.usage.batch_size = 50
    lines = [_line(f"same-{i % 60}", i) for i in range(600)]
    result = _ingest(pg.usage, _write(tmp_path / "same.csv", lines), 2)
    assert (result.stored, result.duplicates, result.dead_lettered) == (60, 540, 0)
    assert _stored_count(pg) == 60


def test_records_stored_by_workers_are_published_and_leave_the_outbox(
    pg: Platform, tmp_path: Path
) -> None:
    stream = InProcessStream()
    usage = UsageIngestion(pg.usage.store, publisher=stream, batch_size=70, publish_timeout_s=10)
    path = _write(tmp_path / "published.csv", [_line(f"pub-{i}", i) for i in range(300)])
    heard: list[UsageRecord] = []

    async def heard_all(records: Sequence[UsageRecord]) -> None:
        heard.extend(records)

    async def run() -> IngestResult:
        await stream.subscribe("settlement", heard_all)
        result = await ingest_file(usage, path, CSV, workers=2)
        with anyio.fail_after(10):
            while len(heard) < result.stored:
                await anyio.sleep(0.01)
        await stream.close()
        return result

    result = anyio.run(run)
    assert result.stored == 300
    assert sorted(r.key[0] for r in heard) == sorted(f"pub-{i}" for i in range(300))
    with pg.store.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(UsageOutboxRow)) == 0
    assert anyio.run(lambda: usage.publish_pending(min_age_s=0)) == 0  # nothing left behind


class _DeadlockedOnce:
    """A worker's ingestion whose first batch PostgreSQL picks as a deadlock victim."""

    def __init__(self, real: UsageIngestion, failures: int) -> None:
        self.real = real
        self.failures = failures
        self.attempts = 0

    def store_batch(
        self, fmt: UsageFormat, items: Sequence[RawItem], scope: str | None
    ) -> StoredBatch:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        return self.real.store_batch(fmt, items, scope)


def test_a_batch_rolled_back_by_a_deadlock_is_stored_again_and_other_faults_are_raised(
    pg: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = _DeadlockedOnce(pg.usage, failures=1)
    monkeypatch.setattr(usage_pool, "_worker_ingestion", worker)
    text = HEADER + _line("deadlocked-1", 1).rstrip("\n")
    batch = usage_pool.store_chunk(CSV, [text], ["line 2"], None)
    assert (batch.result.stored, worker.attempts) == (1, 2)
    assert _stored_count(pg) == 1
    stuck = _DeadlockedOnce(pg.usage, failures=100)
    monkeypatch.setattr(usage_pool, "_worker_ingestion", stuck)
    with pytest.raises(psycopg.errors.DeadlockDetected):
        usage_pool.store_chunk(CSV, [text], ["line 2"], None)
    assert stuck.attempts == 6  # the first try and five more


def test_a_worker_batch_larger_than_the_batch_size_is_refused(pg: Platform) -> None:
    pg.usage.batch_size = 2
    items = [RawItem(HEADER + _line(f"big-{i}", i).rstrip("\n"), f"line {i + 2}") for i in range(3)]
    with pytest.raises(ValueError, match="at most 2 units"):
        pg.usage.store_batch(CSV, items, None)
    assert _stored_count(pg) == 0
