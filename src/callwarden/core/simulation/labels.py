"""Labels of a simulation: which records belong to which injected scenario, and what should
find it.

Every injected scenario, abusive or a benign look-alike, gets one :class:`ScenarioLabel`. The
usage file itself stays in callwarden's schema (which refuses unknown fields), so labels live in
a file of their own, one JSON object per line, and name their records by call id.

A label's ``keys`` are the (key kind, key) pairs a finding about the scenario can name: the
user, number, trunk, destination range, campaign or tenant the scenario's traffic belongs to.
``detector`` is the detector expected to find an abusive scenario, or the one a look-alike
resembles. ``also`` lists detectors whose findings on the same keys during the scenario are true
statements about it too (an IRSF burst is also a spend anomaly): they count as true positives
for those detectors' precision, never toward their recall.

Pure core: plain data and its JSON form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from callwarden.core.errors import InvalidInput
from callwarden.core.simulation.json_fields import text, texts
from callwarden.core.usage.times import parse_local

__all__ = ["LABELS_VERSION", "ScenarioLabel"]

#: Version of a label's JSON form.
LABELS_VERSION: Final[int] = 1


@dataclass(frozen=True, slots=True)
class ScenarioLabel:
    """One injected scenario: its kind, whether it is abuse, who should find it, where and
    when, and the ids of its records (in the order they happened)."""

    scenario_id: str
    kind: str
    abuse: bool
    detector: str
    tenant_id: str
    keys: tuple[tuple[str, str], ...]
    start: datetime
    end: datetime
    call_ids: tuple[str, ...]
    description: str
    also: tuple[str, ...] = ()

    def names(self, key_kind: str, key: str) -> bool:
        """True when (``key_kind``, ``key``) is one of the scenario's keys."""
        return (key_kind, key) in self.keys

    def to_json(self) -> dict[str, object]:
        """The label as a JSON-ready object (one line of the labels file)."""
        return {
            "version": LABELS_VERSION,
            "scenario_id": self.scenario_id,
            "kind": self.kind,
            "abuse": self.abuse,
            "detector": self.detector,
            "also": list(self.also),
            "tenant_id": self.tenant_id,
            "keys": [list(k) for k in self.keys],
            "start": _time(self.start),
            "end": _time(self.end),
            "description": self.description,
            "call_ids": list(self.call_ids),
        }

    @classmethod
    def from_json(cls, data: object) -> ScenarioLabel:
        """A label from its JSON object; InvalidInput names what is wrong."""
        if not isinstance(data, Mapping):
            raise InvalidInput("a scenario label must be a JSON object", field="label")
        if data.get("version") != LABELS_VERSION:
            raise InvalidInput(
                f"label version {data.get('version')!r} is not supported", field="version"
            )
        keys = data.get("keys")
        if not isinstance(keys, list) or not all(
            isinstance(k, list) and len(k) == 2 and all(isinstance(v, str) for v in k) for k in keys
        ):
            raise InvalidInput("keys must be a list of [key kind, key] pairs", field="keys")
        abuse = data.get("abuse")
        if not isinstance(abuse, bool):
            raise InvalidInput("abuse must be true or false", field="abuse")
        return cls(
            scenario_id=text(data, "scenario_id"),
            kind=text(data, "kind"),
            abuse=abuse,
            detector=text(data, "detector"),
            also=texts(data, "also"),
            tenant_id=text(data, "tenant_id"),
            keys=tuple((k[0], k[1]) for k in keys),
            start=parse_local(text(data, "start"), "start", UTC),
            end=parse_local(text(data, "end"), "end", UTC),
            call_ids=texts(data, "call_ids"),
            description=text(data, "description"),
        )


def _time(value: datetime) -> str:
    iso = value.isoformat()
    return iso[:-6] + "Z" if iso.endswith("+00:00") else iso
