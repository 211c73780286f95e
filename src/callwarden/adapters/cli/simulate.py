"""`callwarden simulate` and `callwarden evaluate`: labelled synthetic traffic, and detectors
scored against it.

`simulate OUT` writes OUT (usage in callwarden's JSON-lines or CSV schema, which `callwarden
ingest` accepts), OUT's labels (`<stem>.labels.jsonl`: one scenario per line) and the detector
facts (`<stem>.facts.json`: tenants, plans, consent, rate deck, high-risk list). `evaluate OUT`
reads the three back, runs the default detector set in observe mode and prints the scores.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Sequence
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import anyio
import orjson
import typer
from rich.console import Console
from rich.table import Table

from callwarden.adapters.cli.common import require_nats_url
from callwarden.adapters.stream import stream_from_url
from callwarden.adapters.stream.nats import JetStreamStream
from callwarden.core.detectors import DetectorSet, default_detectors
from callwarden.core.errors import InvalidInput
from callwarden.core.numbering import default_numbering_plan
from callwarden.core.simulation.evaluation import Evaluation, run_detectors, score
from callwarden.core.simulation.facts import SimulationFacts
from callwarden.core.simulation.labels import ScenarioLabel
from callwarden.core.simulation.simulate import DEFAULT_START, simulate
from callwarden.core.usage.record import UsageFormat, UsageKind, UsageRecord
from callwarden.core.usage.schema import fields_for, from_json, from_text_fields, to_json
from callwarden.core.usage.schema import to_text_fields as cells_of
from callwarden.settings import Settings

__all__ = ["evaluate", "simulate_command"]

out = Console(soft_wrap=True)
err = Console(stderr=True)
#: The evaluation tables' width, kept whole even in a narrow terminal or a pipe.
_TABLE_WIDTH = 150


class OutputFormat(StrEnum):
    """How the usage file is written."""

    JSON = "callwarden-json"
    CSV = "callwarden-csv"


PUBLISH_BATCH = 1_000
"""Records per message when publishing: the stream's ingestion stores each record of a message
on its own, and many per message is what lets it keep up (docs/performance.md, usage stream)."""


def sidecars(usage: Path) -> tuple[Path, Path]:
    """The labels and facts files that go with a usage file."""
    stem = usage.with_suffix("")
    return stem.with_name(stem.name + ".labels.jsonl"), stem.with_name(stem.name + ".facts.json")


def simulate_command(
    out_file: Annotated[Path, typer.Argument(help="Usage file to write (.jsonl or .csv)")],
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same traffic")] = 1,
    days: Annotated[int, typer.Option(help="Days of traffic", min=2)] = 28,
    start: Annotated[str, typer.Option(help="First day, YYYY-MM-DD")] = DEFAULT_START.isoformat(),
    scale: Annotated[float, typer.Option(help="Ordinary traffic volume factor", min=0)] = 1.0,
    instances: Annotated[int, typer.Option(help="Instances of each abuse kind", min=1)] = 3,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="How the usage file is written")
    ] = OutputFormat.JSON,
    publish: Annotated[
        bool,
        typer.Option(
            "--publish",
            help="Also send the records to the usage stream (CALLWARDEN_NATS_URL), "
            f"{PUBLISH_BATCH:,} JSON lines a message, for ingestion to store and surveillance "
            "to judge",
        ),
    ] = False,
) -> None:
    """Simulate contact-centre traffic with labelled abuse and benign look-alikes, to a file
    and, with --publish, to the usage stream."""
    settings = Settings() if publish else None
    if settings is not None:
        require_nats_url(settings, "--publish sends to the NATS usage stream")
    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise typer.BadParameter(f"--start {start!r} is not YYYY-MM-DD") from None
    result = simulate(
        default_numbering_plan(),
        seed=seed,
        days=days,
        first=first,
        scale=scale,
        instances=instances,
    )
    labels_path, facts_path = sidecars(out_file)
    with out_file.open("w", encoding="utf-8", newline="") as handle:
        if fmt is OutputFormat.CSV:
            writer = csv.writer(handle)
            writer.writerow(fields_for(UsageKind.CALL))
            for record in result.records:
                writer.writerow(cells_of(record))
        else:
            for record in result.records:
                handle.write(orjson.dumps(to_json(record)).decode() + "\n")
    with labels_path.open("w", encoding="utf-8") as handle:
        for label in result.labels:
            handle.write(json.dumps(label.to_json(), ensure_ascii=False) + "\n")
    facts_path.write_text(
        json.dumps(result.facts.to_json(), indent=1, ensure_ascii=False), encoding="utf-8"
    )
    abuse = sum(1 for label in result.labels if label.abuse)
    out.print(
        f"wrote {len(result.records):,} call records to {out_file}, "
        f"{abuse} abuse scenarios and {len(result.labels) - abuse} look-alikes to "
        f"{labels_path}, detector facts to {facts_path}"
    )
    if settings is not None:
        messages, subject = anyio.run(_publish, settings, result.records)
        out.print(
            f"published {len(result.records):,} records in {messages:,} messages to {subject}",
            highlight=False,
        )


async def _publish(settings: Settings, records: Sequence[UsageRecord]) -> tuple[int, str]:
    """Send ``records`` as JSON lines to the stream's callwarden-json input subject; returns
    the number of messages and the subject. Each message's id is its content's hash, so a
    second run of the same traffic within the stream's duplicate window is not ingested
    twice."""
    stream = stream_from_url(
        settings.nats_url,
        stream_name=settings.nats_stream,
        subject_prefix=settings.nats_subject_prefix,
        max_age_s=settings.nats_max_age_s,
    )
    assert isinstance(stream, JetStreamStream), "--publish is refused without a NATS URL"
    texts = [
        "\n".join(
            orjson.dumps(to_json(record)).decode()
            for record in records[start : start + PUBLISH_BATCH]
        )
        for start in range(0, len(records), PUBLISH_BATCH)
    ]
    ids = [hashlib.sha256(text.encode()).hexdigest()[:32] for text in texts]
    try:
        await stream.publish_raw(UsageFormat.CALLWARDEN_JSON, texts, message_ids=ids)
    finally:
        await stream.close()
    return len(texts), stream.input_subject(UsageFormat.CALLWARDEN_JSON)


def _read_usage(path: Path) -> list[UsageRecord]:
    records: list[UsageRecord] = []
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix == ".csv":
            rows = csv.reader(handle)
            header = next(rows)
            records = [from_text_fields(header, row) for row in rows if row]
        else:
            records = [from_json(orjson.loads(line)) for line in handle if line.strip()]
    return records


def _figure(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(evaluation: Evaluation, console: Console) -> None:
    """Print the per-detector table and the look-alikes' outcome."""
    table = Table(
        "detector", "scenarios", "detected", "recall", "TP keys", "of which corrob.",
        "FP keys", "precision", "TTD median", "TTD max", "findings",
        title=f"detectors over {evaluation.records:,} records",
    )  # fmt: skip
    for entry in sorted(evaluation.detectors.values(), key=lambda e: e.detector):
        table.add_row(
            entry.detector,
            str(entry.scenarios),
            str(entry.detected),
            _figure(entry.recall),
            str(entry.true_keys),
            str(entry.corroborating_keys),
            str(entry.false_keys),
            _figure(entry.precision),
            _figure(entry.median_time_to_detect, 1),
            str(entry.max_time_to_detect or "n/a"),
            str(entry.findings),
        )
    console.print(table)
    looks = Table("look-alike", "kind", "resembles", "tenant", "flagged by", title="look-alikes")
    for look in evaluation.lookalikes:
        flagged = ", ".join(f"{d} ({n})" for d, n in sorted(look.findings.items()))
        looks.add_row(
            look.label.scenario_id,
            look.label.kind,
            look.label.detector,
            look.label.tenant_id,
            flagged or "nothing",
        )
    console.print(looks)
    for entry in sorted(evaluation.detectors.values(), key=lambda e: e.detector):
        for scenario in entry.missed:
            console.print(f"missed by {entry.detector}: {scenario}")
        for example in entry.false_examples:
            console.print(f"false positive of {entry.detector}: {example}")


def evaluate(
    usage_file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Usage file from `simulate`")
    ],
    labels: Annotated[Path | None, typer.Option(help="Labels file (default: beside it)")] = None,
    facts: Annotated[Path | None, typer.Option(help="Facts file (default: beside it)")] = None,
) -> None:
    """Run the default detectors over a simulated file; print precision, recall and time to
    detect per detector, and how the benign look-alikes fared."""
    default_labels, default_facts = sidecars(usage_file)
    labels_path, facts_path = labels or default_labels, facts or default_facts
    try:
        world = SimulationFacts.from_json(json.loads(facts_path.read_text(encoding="utf-8")))
        with labels_path.open(encoding="utf-8") as handle:
            scenario_labels = [
                ScenarioLabel.from_json(json.loads(line)) for line in handle if line.strip()
            ]
        records = _read_usage(usage_file)
    except (OSError, ValueError, InvalidInput) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(code=2) from exc
    numbering = default_numbering_plan()
    detectors = DetectorSet(default_detectors(), world.detector_context(numbering))
    observed = run_detectors(detectors, records)
    evaluation = score(
        [getattr(r, "call_id", "") for r in records],
        scenario_labels,
        observed,
        [d.id for d in detectors.detectors],
    )
    render(evaluation, Console(soft_wrap=True, width=max(out.width, _TABLE_WIDTH)))
