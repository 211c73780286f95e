"""The watched folder: complete files only, moved to done/ or failed/, retried when stuck."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from tests.usage_world import seed_tenants

from callwarden.adapters.store.database import make_engine
from callwarden.adapters.store.usage import SqlUsageStore
from callwarden.adapters.usage_files import ingest_file
from callwarden.adapters.watch import FolderWatcher
from callwarden.core.usage.record import UsageFormat
from callwarden.platform import Platform
from callwarden.services.ports import PageRequest
from callwarden.services.usage import DeadLetterQuery, UsageIngestion

ROW = "{},tenant-a,outbound,+442079460123,2026-03-12T09:15:00Z,busy\n"
HEADER = "call_id,tenant_id,direction,callee,started_at,disposition\n"


@pytest.fixture
def watcher(api_platform: Platform, tmp_path: Path) -> FolderWatcher:
    seed_tenants(api_platform)
    return FolderWatcher(api_platform.usage, tmp_path / "in", settle_s=5.0)


def _drop(folder: Path, name: str, *call_ids: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(HEADER + "".join(ROW.format(c) for c in call_ids), "utf-8")
    return path


def test_a_file_is_complete_only_after_it_stays_unchanged(watcher: FolderWatcher) -> None:
    path = _drop(watcher.folder, "a.csv", "s1")
    assert watcher.complete_files(now=100.0) == []
    assert watcher.complete_files(now=104.0) == []
    assert watcher.complete_files(now=105.0) == [(path, UsageFormat.CALLWARDEN_CSV)]


def test_a_file_still_growing_waits_again(watcher: FolderWatcher) -> None:
    path = _drop(watcher.folder, "a.csv", "g1")
    watcher.complete_files(now=100.0)
    with path.open("a", encoding="utf-8") as f:
        f.write(ROW.format("g2"))
    assert watcher.complete_files(now=106.0) == []
    assert watcher.complete_files(now=111.0) == [(path, UsageFormat.CALLWARDEN_CSV)]


def test_temporary_names_are_never_picked_up(watcher: FolderWatcher) -> None:
    for name in (".hidden.csv", "b.csv.part", "c.csv.tmp"):
        _drop(watcher.folder, name, "t1")
    watcher.complete_files(now=0.0)
    assert watcher.complete_files(now=60.0) == []


def test_a_format_subfolder_sets_the_format(watcher: FolderWatcher) -> None:
    path = _drop(watcher.folder / "kamailio-acc-db", "acc.csv", "k1")
    watcher.complete_files(now=0.0)
    assert watcher.complete_files(now=10.0) == [(path, UsageFormat.KAMAILIO_ACC_DB)]


def test_a_second_file_of_the_same_name_gets_its_own_name_in_done(
    watcher: FolderWatcher,
) -> None:
    for call_id in ("n1", "n2"):
        _drop(watcher.folder, "same.csv", call_id)
        watcher.complete_files(now=0.0)
        outcomes = anyio.run(watcher.scan_once, 10.0)
        assert [o.result.stored for o in outcomes] == [1]
    assert sorted(p.name for p in (watcher.folder / "done").iterdir()) == [
        "same-1.csv",
        "same.csv",
    ]


def test_a_file_that_is_not_utf8_moves_to_failed_and_is_kept_as_a_dead_letter(
    watcher: FolderWatcher,
) -> None:
    path = watcher.folder / "latin1.csv"
    watcher.folder.mkdir(parents=True)
    path.write_bytes((HEADER + ROW.format("caf\xe9")).encode("latin-1"))
    watcher.complete_files(now=0.0)
    (outcome,) = anyio.run(watcher.scan_once, 10.0)
    assert outcome.moved_to == watcher.folder / "failed" / "latin1.csv"
    assert outcome.error is not None and "not UTF-8" in outcome.error
    with watcher.ingestion.store.transaction() as tx:
        (letter,) = tx.list_dead_letters(DeadLetterQuery(), PageRequest()).items
    assert letter.whole_body and "failed" in letter.reason


def test_a_file_stays_in_place_while_the_store_cannot_take_it(tmp_path: Path) -> None:
    unmigrated = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    watcher = FolderWatcher(UsageIngestion(SqlUsageStore(unmigrated)), tmp_path / "in", settle_s=0)
    path = _drop(watcher.folder, "a.csv", "r1")
    assert anyio.run(watcher.scan_once) == []
    assert path.exists()
    unmigrated.dispose()


def test_file_progress_counts_the_bytes_of_each_committed_batch(
    api_platform: Platform, tmp_path: Path
) -> None:
    seed_tenants(api_platform)
    usage = UsageIngestion(SqlUsageStore(api_platform.store.engine), batch_size=3)
    path = _drop(tmp_path, "ten.csv", *(f"p{i}" for i in range(10)))
    heard: list[tuple[int, int]] = []

    async def run() -> None:
        await ingest_file(
            usage,
            path,
            UsageFormat.CALLWARDEN_CSV,
            on_progress=lambda n, t: heard.append((n, t.stored)),
        )

    anyio.run(run)
    assert [stored for _, stored in heard] == [3, 6, 9, 10]
    read = [n for n, _ in heard]
    assert read == sorted(read) and len(set(read)) == 4
    assert read[-1] == path.stat().st_size
    assert read[0] == len(HEADER) + 3 * len(ROW.format("p0"))


def test_the_server_jobs_watch_the_folder_and_prune_past_retention(tmp_path: Path) -> None:
    from datetime import timedelta

    from tests.usage_world import T0, call

    from callwarden.adapters.usage_jobs import run_usage_jobs
    from callwarden.settings import Settings

    inbox = tmp_path / "in"
    platform = Platform.build(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'jobs.db'}",
            usage_watch_dir=str(inbox),
            usage_watch_interval_s=0.05,
            usage_watch_settle_s=0,
            usage_retention_days=30,
        )
    )
    seed_tenants(platform)
    anyio.run(platform.usage.ingest_records, [call("ancient", at=T0 - timedelta(days=3650))])
    _drop(inbox, "late.csv", "j1")

    def pruned() -> bool:
        with platform.usage.store.transaction() as tx:
            return tx.get_records([("ancient", "a")]) == []

    async def run() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run_usage_jobs, platform)
            with anyio.fail_after(20):
                while not ((inbox / "done" / "late.csv").exists() and pruned()):
                    await anyio.sleep(0.05)
            tasks.cancel_scope.cancel()

    try:
        anyio.run(run)
    finally:
        platform.close()
