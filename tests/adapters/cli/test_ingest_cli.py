"""`callwarden ingest`, `ingest-watch`, `dead-letters` and `usage prune` from the shell."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.usage_world import SAMPLES, seed_tenants
from typer.testing import CliRunner, Result

from callwarden.adapters.cli.main import app
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import PageRequest
from callwarden.services.usage import DeadLetterQuery, DeadLetterStatus
from callwarden.settings import Settings

runner = CliRunner()

CSV_HEADER = "call_id,tenant_id,direction,callee,started_at,disposition\n"


@pytest.fixture
def db(sqlite_url: str) -> list[str]:
    """--database-url for a migrated store holding the sample tenants."""
    platform = Platform.build(Settings(database_url=sqlite_url))
    seed_tenants(platform)
    platform.close()
    return ["--database-url", sqlite_url]


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def _open_letters(db: list[str]) -> list[str]:
    platform = Platform.build(Settings(database_url=db[1]))
    try:
        page = platform.usage.list_dead_letters(
            SYSTEM, DeadLetterQuery(status=DeadLetterStatus.OPEN), PageRequest()
        )
    finally:
        platform.close()
    return [d.id for d in page.items]


def _csv(tmp_path: Path, rows: list[str], name: str = "calls.csv") -> Path:
    path = tmp_path / name
    path.write_text(CSV_HEADER + "".join(f"{r}\n" for r in rows), "utf-8")
    return path


def _row(call_id: str, tenant: str = "tenant-a") -> str:
    return f"{call_id},{tenant},outbound,+442079460123,2026-03-12T09:15:00Z,busy"


def test_a_clean_file_is_ingested_with_a_summary_and_exit_0(db: list[str], tmp_path: Path) -> None:
    path = _csv(tmp_path, [_row(f"c{i}") for i in range(5)])
    result = cli("ingest", str(path), "--format", "callwarden-csv", *db)
    assert result.exit_code == 0, result.output
    assert "stored 5, duplicates 0, dead letters 0" in result.output


def test_ingesting_a_file_again_counts_only_duplicates(db: list[str], tmp_path: Path) -> None:
    path = _csv(tmp_path, [_row("d1"), _row("d2")])
    cli("ingest", str(path), "-f", "callwarden-csv", *db)
    result = cli("ingest", str(path), "-f", "callwarden-csv", *db)
    assert "stored 0, duplicates 2, dead letters 0" in result.output


def test_a_sample_file_of_each_switch_is_ingested(db: list[str]) -> None:
    for path, fmt in [
        (SAMPLES / "asterisk" / "Master.csv", "asterisk-csv"),
        (SAMPLES / "kamailio" / "acc_syslog.log", "kamailio-acc-syslog"),
        (SAMPLES / "freeswitch" / "answered_a_leg.json", "freeswitch-json"),
    ]:
        result = cli("ingest", str(path), "-f", fmt, *db)
        assert result.exit_code in (0, 3), result.output
        stored = int(re.search(r"stored (\d+)", result.output).group(1))  # type: ignore[union-attr]
        assert stored > 0, result.output


def test_bad_lines_become_dead_letters_and_exit_3(db: list[str], tmp_path: Path) -> None:
    path = _csv(tmp_path, [_row("ok"), "broken,tenant-a", _row("other", "tenant-zz")])
    result = cli("ingest", str(path), "-f", "callwarden-csv", *db)
    assert result.exit_code == 3, result.output
    assert "stored 1, duplicates 0, dead letters 2" in result.output
    assert len(_open_letters(db)) == 2


def test_a_file_that_is_not_utf8_is_refused_whole_with_exit_2(
    db: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes((CSV_HEADER + _row("x1") + "\n" + _row("caf\xe9") + "\n").encode("latin-1"))
    result = cli("ingest", str(path), "-f", "callwarden-csv", *db)
    assert result.exit_code == 2
    assert "not UTF-8" in result.output and "line 3" in result.output
    result = cli("ingest", str(_csv(tmp_path, [_row("x1")], "x.csv")), "-f", "callwarden-csv", *db)
    assert "stored 1" in result.output  # nothing of the refused file was stored


def test_an_unknown_format_is_refused_by_the_command_line(db: list[str], tmp_path: Path) -> None:
    path = _csv(tmp_path, [_row("f1")])
    result = cli("ingest", str(path), "-f", "cisco", *db)
    assert result.exit_code == 2


def test_a_dead_letter_is_listed_shown_fixed_and_replayed(db: list[str], tmp_path: Path) -> None:
    path = _csv(tmp_path, [_row("to-fix", "tenant-zz")])
    cli("ingest", str(path), "-f", "callwarden-csv", *db)
    (letter_id,) = _open_letters(db)
    listed = cli("dead-letters", "list", *db)
    assert letter_id in listed.output
    shown = cli("dead-letters", "show", letter_id, *db)
    assert "not a known tenant" in shown.output
    assert "tenant-zz" in shown.output and "line 2" in shown.output
    fixed_text = CSV_HEADER + _row("to-fix")
    result = cli("dead-letters", "fix", letter_id, "--text", fixed_text, "--replay", *db)
    assert result.exit_code == 0, result.output
    assert f"dead letter {letter_id} replayed: stored 1" in result.output
    assert _open_letters(db) == []
    again = cli("dead-letters", "replay", letter_id, *db)
    assert again.exit_code == 2 and "not open" in again.output


def test_replay_all_says_how_many_stay_open(db: list[str], tmp_path: Path) -> None:
    path = _csv(tmp_path, ["junk-1", "junk-2"])
    cli("ingest", str(path), "-f", "callwarden-csv", *db)
    result = cli("dead-letters", "replay", "--all", *db)
    assert result.exit_code == 3
    assert "replayed 0 of 2" in result.output


def test_a_discarded_letter_leaves_the_open_list(db: list[str], tmp_path: Path) -> None:
    cli("ingest", str(_csv(tmp_path, ["junk"])), "-f", "callwarden-csv", *db)
    (letter_id,) = _open_letters(db)
    result = cli("dead-letters", "discard", letter_id, "--reason", "test probe", *db)
    assert result.exit_code == 0, result.output
    assert _open_letters(db) == []


def test_an_unknown_dead_letter_is_exit_2(db: list[str]) -> None:
    result = cli("dead-letters", "show", "dl_0000000000000000", *db)
    assert result.exit_code == 2 and "not found" in result.output


def test_the_watched_folder_moves_files_to_done_and_failed(db: list[str], tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "asterisk-csv").mkdir(parents=True)
    _csv(inbox, [_row("w1"), _row("w2")], "good.csv")
    _csv(inbox, ["nothing,useful"], "bad.csv")
    (inbox / ".partial.csv").write_text(CSV_HEADER, "utf-8")
    (inbox / "asterisk-csv" / "Master.csv").write_bytes(
        (SAMPLES / "asterisk" / "Master.csv").read_bytes()
    )
    result = cli("ingest-watch", str(inbox), "--once", *db)
    assert result.exit_code == 0, result.output
    assert (inbox / "done" / "good.csv").exists()
    assert (inbox / "failed" / "bad.csv").exists()
    assert (inbox / "done" / "asterisk-csv" / "Master.csv").exists()
    assert (inbox / ".partial.csv").exists()
    assert "good.csv" in result.output and "stored 2" in result.output


def test_usage_prune_deletes_records_past_the_days_given(db: list[str], tmp_path: Path) -> None:
    old = (datetime.now(UTC) - timedelta(days=100)).strftime("%Y-%m-%dT%H:%M:%SZ")
    new = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    records = [
        {
            "kind": "call",
            "call_id": call_id,
            "tenant_id": "tenant-a",
            "direction": "outbound",
            "callee": "+442079460123",
            "started_at": at,
            "disposition": "busy",
        }
        for call_id, at in (("old", old), ("new", new))
    ]
    path = tmp_path / "calls.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records), "utf-8")
    cli("ingest", str(path), "-f", "callwarden-json", *db)
    assert "no retention is set" in cli("usage", "prune", *db).output
    result = cli("usage", "prune", "--days", "90", *db)
    assert "deleted 1 usage record(s) older than 90 days" in result.output


def test_a_file_read_by_worker_processes_is_stored_with_its_dead_letters(
    db: list[str], tmp_path: Path
) -> None:
    rows = [_row(f"w{i}") for i in range(3000)]
    rows[1234] = "w-bad,tenant-a,outbound,,2026-03-12T09:15:00Z,busy"
    path = _csv(tmp_path, rows)
    result = cli("ingest", str(path), "-f", "callwarden-csv", "--workers", "2", *db)
    assert result.exit_code == 3, result.output
    assert "stored 2999, duplicates 0, dead letters 1" in result.output
    platform = Platform.build(Settings(database_url=db[1]))
    try:
        (letter,) = platform.usage.list_dead_letters(SYSTEM, DeadLetterQuery(), PageRequest()).items
    finally:
        platform.close()
    assert (letter.position, letter.reason) == ("line 1236", "callee is missing")


@pytest.mark.postgres
def test_a_file_on_postgres_is_stored_by_the_default_workers_and_again_stores_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    platform = Platform.build(Settings(database_url=postgres_url))
    seed_tenants(platform)
    platform.close()
    db = ["--database-url", postgres_url]
    rows = [_row(f"pg{i}") for i in range(2500)]
    rows[2222] = "pg-bad,tenant-a,outbound,,2026-03-12T09:15:00Z,busy"
    path = _csv(tmp_path, rows)
    first = cli("ingest", str(path), "-f", "callwarden-csv", *db)
    assert first.exit_code == 3, first.output
    assert "stored 2499, duplicates 0, dead letters 1" in first.output
    again = cli("ingest", str(path), "-f", "callwarden-csv", *db)
    assert "stored 0, duplicates 2499, dead letters 1" in again.output
    platform = Platform.build(Settings(database_url=postgres_url))
    try:
        (letter,) = platform.usage.list_dead_letters(SYSTEM, DeadLetterQuery(), PageRequest()).items
    finally:
        platform.close()
    assert (letter.position, letter.reason) == ("line 2224", "callee is missing")
