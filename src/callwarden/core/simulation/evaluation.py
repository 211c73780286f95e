"""Scoring detectors against a labelled simulation: precision, recall, time to detect.

Definitions (docs/evaluation.md explains them with examples):

- A finding *matches* a scenario when it is about the scenario's tenant, names one of its keys
  (key kind and key), and was raised between the scenario's start and ``grace_s`` after its
  end. It matches an abuse scenario as *primary* when its detector is the scenario's expected
  detector, as *corroborating* when the detector is in the scenario's ``also`` list.
- Precision is counted over *flagged keys*: each distinct (detector, tenant, key kind, key,
  matched abuse scenario or none). A flagged key matched to an abuse scenario (primary or
  corroborating) is a true positive; one matched to none is a false positive, whatever
  look-alike it may belong to. Precision = TP / (TP + FP); n/a without findings.
- Recall is over abuse scenarios whose expected detector is the one scored: detected when at
  least one primary match exists. Corroborating matches never count toward recall.
- Time to detect, for a detected scenario, is the number of the scenario's own records that
  had been fed to the detectors when the first primary match was raised (the record that raised
  it included): 1 means the first fraudulent call gave it away.
- A look-alike *fared* well when no finding matched it (it is benign, so every match is a false
  positive already counted above).

Pure core: the detectors run over records in memory; reading files belongs to the adapters.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from callwarden.core.detectors import DetectorFinding, DetectorSet
from callwarden.core.simulation.labels import ScenarioLabel
from callwarden.core.usage.record import UsageRecord

__all__ = [
    "DEFAULT_GRACE_S",
    "DetectorScore",
    "Evaluation",
    "LookalikeScore",
    "Observed",
    "run_detectors",
    "score",
]

#: How long after a scenario's last record a finding about it still counts as about it.
DEFAULT_GRACE_S: Final[float] = 3600.0


@dataclass(frozen=True, slots=True)
class Observed:
    """A finding and the position (0-based) of the record that raised it in the stream."""

    index: int
    finding: DetectorFinding


@dataclass(slots=True)
class DetectorScore:
    """One detector's figures."""

    detector: str
    scenarios: int = 0
    detected: int = 0
    true_keys: int = 0
    false_keys: int = 0
    corroborating_keys: int = 0
    findings: int = 0
    time_to_detect: list[int] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    false_examples: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP) over flagged keys; None when the detector flagged nothing."""
        flagged = self.true_keys + self.false_keys
        return self.true_keys / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        """Detected / injected scenarios; None when none was injected for it."""
        return self.detected / self.scenarios if self.scenarios else None

    @property
    def median_time_to_detect(self) -> float | None:
        """Median fraudulent calls before detection, over detected scenarios."""
        return statistics.median(self.time_to_detect) if self.time_to_detect else None

    @property
    def max_time_to_detect(self) -> int | None:
        """The worst time to detect, in fraudulent calls."""
        return max(self.time_to_detect) if self.time_to_detect else None


@dataclass(slots=True)
class LookalikeScore:
    """How one benign look-alike fared: the findings that matched it, by detector."""

    label: ScenarioLabel
    findings: dict[str, int] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        """True when any detector raised a finding about it."""
        return bool(self.findings)


@dataclass(slots=True)
class Evaluation:
    """Every detector's score and every look-alike's outcome."""

    detectors: dict[str, DetectorScore]
    lookalikes: list[LookalikeScore]
    records: int


def run_detectors(detectors: DetectorSet, records: Iterable[UsageRecord]) -> list[Observed]:
    """Feed ``records`` in order to ``detectors``; every finding with its record's position."""
    observed: list[Observed] = []
    for index, record in enumerate(records):
        for finding in detectors.observe(record):
            observed.append(Observed(index, finding))
    return observed


def _matches(label: ScenarioLabel, finding: DetectorFinding, grace_s: float) -> bool:
    if finding.tenant_id != label.tenant_id or not label.names(finding.key_kind, finding.key):
        return False
    at = finding.at.timestamp()
    return label.start.timestamp() <= at <= label.end.timestamp() + grace_s


def score(
    call_ids: Sequence[str],
    labels: Sequence[ScenarioLabel],
    observed: Sequence[Observed],
    detector_ids: Iterable[str],
    *,
    grace_s: float = DEFAULT_GRACE_S,
) -> Evaluation:
    """Score ``observed`` findings against ``labels``.

    ``call_ids`` are the ids of the records in the order they were fed (position ``i`` is the
    record at index ``i``), so the time to detect can be counted in the scenario's own records.
    """
    position = {call_id: index for index, call_id in enumerate(call_ids)}
    scores = {d: DetectorScore(d) for d in detector_ids}
    abuse = [label for label in labels if label.abuse]
    for label in abuse:
        scores.setdefault(label.detector, DetectorScore(label.detector)).scenarios += 1
    first_primary: dict[str, int] = {}
    flagged: dict[tuple[str, str, str, str, str], bool] = {}
    lookalikes = [LookalikeScore(label) for label in labels if not label.abuse]
    for item in observed:
        finding = item.finding
        entry = scores.setdefault(finding.detector, DetectorScore(finding.detector))
        entry.findings += 1
        matched = ""
        corroborating = False
        for label in abuse:
            if not _matches(label, finding, grace_s):
                continue
            if finding.detector == label.detector:
                matched, corroborating = label.scenario_id, False
                held = first_primary.get(label.scenario_id)
                if held is None or item.index < held:
                    first_primary[label.scenario_id] = item.index
                break
            if finding.detector in label.also and not matched:
                matched, corroborating = label.scenario_id, True
        unit = (finding.detector, finding.tenant_id or "", finding.key_kind, finding.key, matched)
        if unit not in flagged:
            flagged[unit] = corroborating
            if not matched:
                entry.false_keys += 1
                if len(entry.false_examples) < 5:
                    entry.false_examples.append(
                        f"{finding.tenant_id} {finding.key_kind}={finding.key} "
                        f"at {finding.at:%Y-%m-%d %H:%M}: {finding.summary}"
                    )
            elif corroborating:
                entry.true_keys += 1
                entry.corroborating_keys += 1
            else:
                entry.true_keys += 1
        if not matched:
            for look in lookalikes:
                if _matches(look.label, finding, grace_s):
                    look.findings[finding.detector] = look.findings.get(finding.detector, 0) + 1
    for label in abuse:
        entry = scores[label.detector]
        index = first_primary.get(label.scenario_id)
        if index is None:
            entry.missed.append(label.scenario_id)
            continue
        entry.detected += 1
        entry.time_to_detect.append(
            sum(1 for c in label.call_ids if position.get(c, len(call_ids)) <= index)
        )
    return Evaluation(scores, lookalikes, len(call_ids))
