"""Backfill over simulated traffic: with the pre-screen, without it, and streaming all agree.

``callwarden simulate`` writes four days of the simulated contact centres with one instance of
every abuse kind injected (and the benign look-alikes); the facts file it writes beside them
gives the detector context, as ``callwarden evaluate`` builds it. The file is judged three ways:
by one streaming :class:`DetectorSet` fed every record in order, and by the backfill with and
without its pre-screen. They must raise the same findings.

The detectors run twice: with their own parameters, and with the parameters of an operator who
raised every rule's main threshold out of reach, so that only the early rules (a quarter of an
hour of caller-ID rotation, a new trunk's mobile caller IDs, a new number's first long calls,
minutes repeating on a costly range, a short number scan) can raise anything. A pre-screen that
screens by a main threshold alone drops the rows those early rules need.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from callwarden.adapters.backfill_reader import read_usage_table
from callwarden.adapters.cli.main import app
from callwarden.core.detectors import DetectorFinding, DetectorSet, default_detectors
from callwarden.core.detectors.base import Detector, Severity
from callwarden.core.detectors.caller_rotation import CallerRotationDetector
from callwarden.core.detectors.pumping import PumpingDetector
from callwarden.core.detectors.sequential import SequentialDialingDetector
from callwarden.core.detectors.simbox import SimBoxDetector
from callwarden.core.numbering import default_numbering_plan
from callwarden.core.prefixes import PrefixList
from callwarden.core.simulation.facts import SimulationFacts
from callwarden.core.usage.normalise import normalise, split
from callwarden.core.usage.record import UsageFormat
from callwarden.services.backfill import BackfillSetup, backfill_table

Detectors = Callable[[], Sequence[Detector[Any]]]
_OUT_OF_REACH = 100_000


def early_only_detectors() -> list[Detector[Any]]:
    """The default detectors, with every main threshold of the rules that have an early one
    out of reach: only the early rules can raise."""
    detectors: list[Detector[Any]] = []
    for detector in default_detectors():
        if isinstance(detector, CallerRotationDetector):
            detector = CallerRotationDetector(
                replace(detector.params, warn_clis=_OUT_OF_REACH, high_clis=_OUT_OF_REACH)
            )
        elif isinstance(detector, SimBoxDetector):
            detector = SimBoxDetector(replace(detector.params, min_mobile_clis=_OUT_OF_REACH))
        elif isinstance(detector, PumpingDetector):
            detector = PumpingDetector(
                replace(
                    detector.params,
                    new_number_calls=_OUT_OF_REACH,
                    min_range_minutes=_OUT_OF_REACH,
                )
            )
        elif isinstance(detector, SequentialDialingDetector):
            detector = SequentialDialingDetector(
                replace(detector.params, warn_run=_OUT_OF_REACH, block_run=_OUT_OF_REACH)
            )
        detectors.append(detector)
    return detectors


def is_early(finding: DetectorFinding) -> tuple[str, str] | None:
    """(detector, statistic) when ``finding`` is one only an early rule raises, else None."""
    early = (
        (finding.detector == "caller_rotation" and finding.window == "15m")
        or (finding.detector == "simbox" and finding.severity is Severity.LOW)
        or (finding.detector == "pumping" and finding.severity is Severity.MEDIUM)
        or (finding.detector == "sequential" and finding.severity is Severity.LOW)
    )
    return (finding.detector, finding.statistic) if early else None


EARLY_KINDS = {
    ("caller_rotation", "distinct_caller_ids"),
    ("simbox", "mobile_caller_ids"),
    ("pumping", "minutes_to_new_number"),
    ("pumping", "minutes_to_range"),
    ("sequential", "sequential_run"),
}


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four days of simulated traffic (about 11,000 calls) with one instance of every abuse
    kind, written by ``callwarden simulate`` as callwarden CSV."""
    path = tmp_path_factory.mktemp("simulated") / "traffic.csv"
    arguments = ["simulate", str(path), "--format", "callwarden-csv", "--seed", "3"]
    arguments += ["--days", "4", "--instances", "1", "--scale", "0.3"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    return path


def facts_of(path: Path) -> SimulationFacts:
    """The facts file ``simulate`` wrote beside ``path``."""
    facts = path.with_name(path.stem + ".facts.json")
    return SimulationFacts.from_json(json.loads(facts.read_text(encoding="utf-8")))


def setup_of(path: Path, detectors: Detectors) -> BackfillSetup:
    """The backfill's setup from the facts file: the tenants and the high-risk list."""
    facts = facts_of(path)
    return BackfillSetup(
        tenants=facts.tenant_facts(), high_risk=PrefixList(facts.high_risk), detectors=detectors
    )


def streamed(path: Path, detectors: Detectors) -> list[DetectorFinding]:
    """Every record as ingestion normalises it through one detector set, whose context is
    built from the facts file as ``callwarden evaluate`` builds it."""
    with path.open(encoding="utf-8", newline="") as lines:
        records = [
            record
            for item in split(UsageFormat.CALLWARDEN_CSV, lines)
            for record in normalise(UsageFormat.CALLWARDEN_CSV, item)
        ]
    context = facts_of(path).detector_context(default_numbering_plan())
    return DetectorSet(detectors(), context).observe_all(records)


@pytest.mark.parametrize(
    "detectors",
    [default_detectors, early_only_detectors],
    ids=["own parameters", "early rules only"],
)
def test_backfill_finds_what_streaming_finds_on_simulated_traffic(
    simulated: Path, detectors: Detectors
) -> None:
    reference = streamed(simulated, detectors)
    found = {finding.detector for finding in reference}
    assert found >= {
        "irsf",
        "wangiri",
        "pumping",
        "simbox",
        "robocall",
        "sequential",
        "fair_use",
        "emergency",
        "caller_rotation",
    }
    assert {is_early(finding) for finding in reference} >= EARLY_KINDS
    setup = setup_of(simulated, detectors)
    everything = backfill_table(read_usage_table(simulated), setup, prescreen=False)
    screened = backfill_table(read_usage_table(simulated), setup)
    assert everything.findings == reference
    assert screened.findings == reference
    assert screened.rejected == everything.rejected == 0
    seen = sum(summary.rows_seen for summary in screened.summaries.values())
    assert seen < sum(summary.rows_seen for summary in everything.summaries.values())
