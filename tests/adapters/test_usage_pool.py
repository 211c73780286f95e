"""A usage file prepared by worker processes: the same outcome as in-process, in file order.

Real worker processes prepare chunks of a file while this process stores them, on SQLite and
PostgreSQL. Whatever the number of workers, every unit is stored once or dead-lettered with
its own line and reason, duplicates are counted, and progress moves forward to the file's size.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import anyio
import pytest
from tests.usage_world import seed_tenants

from callwarden.adapters.usage_files import ingest_file
from callwarden.adapters.usage_pool import ProcessPreparer
from callwarden.core.usage.normalise import split
from callwarden.core.usage.record import UsageFormat
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import PageRequest
from callwarden.services.usage import DeadLetterQuery, IngestResult, UsageIngestion
from callwarden.services.usage_prepare import LocalPreparer

CSV = UsageFormat.CALLWARDEN_CSV
HEADER = "call_id,tenant_id,direction,callee,started_at,answered_at,ended_at,disposition\n"
UNITS = 2_345


def _line(i: int, tag: str) -> str:
    """Mostly good calls; every 97th has no callee, every 101st names an unknown tenant,
    every 89th has its call id quoted across two lines (one unit of two lines, refused: a call id
    holds no line break)."""
    start = 1_735_689_600 + i
    callee = "" if i % 97 == 0 else "+442079460123"
    tenant = "tenant-x" if i % 101 == 0 else ("tenant-a", "tenant-b")[i % 2]
    call_id = f'"{tag}-{i}\nsecond line"' if i % 89 == 0 else f"{tag}-{i}"
    return f"{call_id},{tenant},outbound,{callee},{start},{start + 5},{start + 65},answered\n"


def _file(tmp_path: Path, tag: str) -> Path:
    path = tmp_path / f"{tag}.csv"
    path.write_text(HEADER + "".join(_line(i, tag) for i in range(UNITS)), "utf-8")
    return path


def _letters(platform: Platform, tag: str) -> list[tuple[str, str]]:
    """(position, reason) of the dead letters of the file tagged `tag`."""
    page = platform.usage.list_dead_letters(SYSTEM, DeadLetterQuery(), PageRequest(limit=1000))
    return sorted((d.position, d.reason) for d in page.items if f"{tag}-" in d.raw_text)


def test_the_pool_answers_every_unit_in_order_with_what_this_process_would(
    tmp_path: Path,
) -> None:
    items = list(split(CSV, _file(tmp_path, "order").read_text("utf-8")))
    local = list(LocalPreparer().prepare(CSV, items, UTC))
    with ProcessPreparer(2, chunk_units=100, batch_units=300) as pool:
        pooled = list(pool.prepare(CSV, items, UTC))
    assert pooled == local
    assert [item.position for item, _ in pooled][:3] == ["lines 2-3", "line 4", "line 5"]


@pytest.mark.parametrize("workers", [2, 1])
def test_a_file_prepared_by_workers_is_stored_and_dead_lettered_as_in_process(
    platform: Platform, tmp_path: Path, workers: int
) -> None:
    seed_tenants(platform)
    platform.usage.batch_size = 500
    seen: list[int] = []
    in_process = anyio.run(ingest_file, platform.usage, _file(tmp_path, "local"), CSV)
    path = _file(tmp_path, "pool")

    async def by_workers() -> IngestResult:
        return await ingest_file(
            platform.usage,
            path,
            CSV,
            workers=workers,
            on_progress=lambda done, _: seen.append(done),
        )

    pooled = anyio.run(by_workers)
    assert (pooled.stored, pooled.duplicates, pooled.dead_lettered) == (
        in_process.stored,
        0,
        in_process.dead_lettered,
    )
    # No callee (25), unknown tenant (24), a call id across two lines (27); line 2 is all three.
    assert pooled.dead_lettered == 25 + 24 + 27 - 2
    assert seen == sorted(seen) and seen[-1] == path.stat().st_size and len(seen) == 5
    letters = _letters(platform, "pool")
    assert letters == _letters(platform, "local")
    assert ("lines 2-3", "call_id contains control characters") in letters
    assert ("line 101", "callee is missing") in letters
    again = anyio.run(by_workers)
    assert (again.stored, again.duplicates) == (0, pooled.stored)


def test_ingestion_batches_stay_in_file_order_with_workers(
    platform: Platform, tmp_path: Path
) -> None:
    seed_tenants(platform)
    usage: UsageIngestion = platform.usage
    usage.batch_size = 250
    totals: list[int] = []

    async def run() -> IngestResult:
        return await ingest_file(
            usage,
            _file(tmp_path, "ordered"),
            CSV,
            workers=2,
            on_progress=lambda _, total: totals.append(total.stored + total.dead_lettered),
        )

    result = anyio.run(run)
    assert totals == sorted(totals)
    assert result.stored + result.dead_lettered == UNITS
