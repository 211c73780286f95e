"""`callwarden simulate` and `callwarden evaluate` end to end on a short period."""

from __future__ import annotations

import contextlib
import json
import secrets
from pathlib import Path

import anyio
import nats
import nats.js.errors
import pytest
from typer.testing import CliRunner

from callwarden.adapters.cli.main import app
from callwarden.core.usage.schema import from_json, from_text_fields

runner = CliRunner()
SMALL = ["--days", "3", "--scale", "0.05", "--instances", "1", "--seed", "11"]
NATS_URL = "nats://127.0.0.1:4222"


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


def test_simulate_publishes_every_record_to_the_usage_streams_input_subject(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"CWSIM{secrets.token_hex(4).upper()}"
    prefix = f"cwsim{secrets.token_hex(4)}"
    monkeypatch.setenv("CALLWARDEN_NATS_URL", NATS_URL)
    monkeypatch.setenv("CALLWARDEN_NATS_STREAM", name)
    monkeypatch.setenv("CALLWARDEN_NATS_SUBJECT_PREFIX", prefix)
    usage = tmp_path / "traffic.jsonl"
    result = runner.invoke(app, ["simulate", str(usage), *SMALL, "--publish"])
    try:
        assert result.exit_code == 0, result.output
        written = usage.read_text().splitlines()
        published = anyio.run(_published_lines, name)
        assert published == written
        assert f"published {len(written):,} records" in result.output
        assert f"{prefix}.in.callwarden-json" in result.output
    finally:
        anyio.run(_delete_stream, name)


def test_publish_without_a_nats_url_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CALLWARDEN_NATS_URL", raising=False)
    result = runner.invoke(app, ["simulate", str(tmp_path / "t.jsonl"), *SMALL, "--publish"])
    assert result.exit_code == 2 and "nats_url" in result.output


async def _published_lines(stream: str) -> list[str]:
    """Every line of every message in ``stream``, in order."""
    client = await nats.connect(NATS_URL)
    try:
        js = client.jetstream()
        info = await js.stream_info(stream)
        lines: list[str] = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(stream, seq)
            lines += (message.data or b"").decode().splitlines()
        return lines
    finally:
        await client.close()


async def _delete_stream(stream: str) -> None:
    client = await nats.connect(NATS_URL)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await client.jetstream().delete_stream(stream)
    finally:
        await client.close()
