"""`callwarden backfill FILE`: findings as JSON lines and a summary per detector."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from tests.services.test_backfill import abusive_month, streamed
from tests.usage_world import seed_tenants
from typer.testing import CliRunner

from callwarden.adapters.cli.backfill import finding_to_json, setup_from_store
from callwarden.adapters.cli.main import app
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.settings import Settings

runner = CliRunner()


@pytest.fixture
def db(sqlite_url: str) -> str:
    """A migrated store holding the generator's tenants."""
    platform = Platform.build(Settings(database_url=sqlite_url))
    seed_tenants(platform, ("t1", "t2", "t3"))
    platform.close()
    return sqlite_url


def test_backfill_writes_the_streaming_findings_and_a_summary(db: str, tmp_path: Path) -> None:
    month = abusive_month().write(tmp_path / "month.csv")
    out = tmp_path / "findings.jsonl"
    result = runner.invoke(
        app, ["backfill", str(month), "--output", str(out), "--workers", "1", "--database-url", db]
    )
    assert result.exit_code == 0, result.output
    written = [json.loads(line) for line in out.read_text().splitlines()]
    platform = Platform.build(Settings(database_url=db))
    try:
        setup = setup_from_store(platform, ["t1", "t2", "t3"])
    finally:
        platform.close()
    expected = [orjson.loads(orjson.dumps(finding_to_json(f))) for f in streamed(month, setup)]
    assert written == expected
    assert {"robocall", "emergency", "sequential"} <= {f["detector"] for f in written}
    assert all(f["mode"] == "observe" for f in written)  # detectors default to observe
    assert "Backfill findings per detector" in result.output
    assert f"{len(written):,} findings" in result.output


def test_backfill_reads_the_other_formats_record_by_record(db: str, tmp_path: Path) -> None:
    lines = [
        {
            "kind": "call",
            "call_id": f"e{i}",
            "tenant_id": "t1",
            "user_id": "u1",
            "direction": "outbound",
            "caller": "+442079460000",
            "callee": "999",
            "started_at": f"2025-03-03T10:{i:02d}:00Z",
            "ended_at": f"2025-03-03T10:{i:02d}:03Z",
            "disposition": "no_answer",
        }
        for i in range(5)
    ]
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = runner.invoke(
        app, ["backfill", str(path), "--format", "callwarden-json", "--database-url", db]
    )
    assert result.exit_code == 0, result.output
    findings = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [(f["detector"], f["key"], f["severity"]) for f in findings] == [
        ("emergency", "u1", "medium")
    ]


def test_a_file_with_unknown_columns_is_refused_with_exit_2(db: str, tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("call_id,tenant,callee\nc1,t1,+442079460000\n")
    result = runner.invoke(app, ["backfill", str(path), "--database-url", db])
    assert result.exit_code == 2
    assert "unknown columns tenant" in result.output


def test_a_tenants_sim_box_consent_on_record_reaches_the_backfill(db: str) -> None:
    platform = Platform.build(Settings(database_url=db))
    try:
        platform.governance.record_sim_box_consent(SYSTEM, "t2", reference="Annex 4")
        tenants = setup_from_store(platform, ["t1", "t2"]).tenants
    finally:
        platform.close()
    assert tenants["t2"].sim_box_consent and not tenants["t1"].sim_box_consent
