"""`callwarden simulate` and `callwarden evaluate` end to end on a short period."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from callwarden.adapters.cli.main import app
from callwarden.core.usage.schema import from_json, from_text_fields

runner = CliRunner()
SMALL = ["--days", "3", "--scale", "0.05", "--instances", "1", "--seed", "11"]


def test_simulate_writes_usage_labels_and_facts_that_evaluate_reads(tmp_path: Path) -> None:
    usage = tmp_path / "traffic.jsonl"
    result = runner.invoke(app, ["simulate", str(usage), *SMALL])
    assert result.exit_code == 0, result.output
    labels = tmp_path / "traffic.labels.jsonl"
    facts = json.loads((tmp_path / "traffic.facts.json").read_text())
    lines = usage.read_text().splitlines()
    records = [from_json(json.loads(line)) for line in lines]
    assert {r.tenant_id for r in records} == {t["tenant_id"] for t in facts["tenants"]}
    scenarios = [json.loads(line) for line in labels.read_text().splitlines()]
    ids = {r.key[0] for r in records}
    assert all(set(s["call_ids"]) <= ids for s in scenarios)
    assert f"wrote {len(records):,} call records" in result.output

    evaluated = runner.invoke(app, ["evaluate", str(usage)])
    assert evaluated.exit_code == 0, evaluated.output
    for detector in ("irsf", "wangiri", "baseline", "pumping", "simbox", "robocall",
                     "sequential", "fair_use", "emergency", "caller_rotation"):  # fmt: skip
        assert detector in evaluated.output
    assert "look-alikes" in evaluated.output and "legit_campaign" in evaluated.output


def test_the_same_seed_writes_the_same_file(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert runner.invoke(app, ["simulate", str(first), *SMALL]).exit_code == 0
    assert runner.invoke(app, ["simulate", str(second), *SMALL]).exit_code == 0
    assert first.read_bytes() == second.read_bytes()
    assert (tmp_path / "a.labels.jsonl").read_bytes() == (tmp_path / "b.labels.jsonl").read_bytes()


def test_simulate_writes_csv_in_callwardens_schema(tmp_path: Path) -> None:
    usage = tmp_path / "traffic.csv"
    result = runner.invoke(app, ["simulate", str(usage), *SMALL, "--format", "callwarden-csv"])
    assert result.exit_code == 0, result.output
    header, *rows = [line.split(",") for line in usage.read_text().splitlines()]
    assert header[0] == "call_id" and rows
    assert from_text_fields(header, rows[0]).key[0]


def test_evaluate_refuses_a_file_without_its_facts(tmp_path: Path) -> None:
    usage = tmp_path / "lonely.jsonl"
    usage.write_text("")
    result = runner.invoke(app, ["evaluate", str(usage)])
    assert result.exit_code == 2
