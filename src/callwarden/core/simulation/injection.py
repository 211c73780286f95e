"""What every injected scenario builder shares: the world, a seeded generator, numbers, and a
collector that names its records and makes its label.

Pure core: no I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from callwarden.core.simulation.calls import make_call
from callwarden.core.simulation.facts import SimulatedTenant
from callwarden.core.simulation.labels import ScenarioLabel
from callwarden.core.simulation.numbers import NumberMaker
from callwarden.core.simulation.world import TenantProfile, World
from callwarden.core.usage.record import CallRecord, Direction, Disposition

__all__ = ["Injected", "Injection", "ScenarioSpec"]


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """What a scenario kind is: whether it is abuse, the detector expected to find it (or that
    a look-alike resembles) and the detectors whose findings about it are true as well."""

    kind: str
    abuse: bool
    detector: str
    also: tuple[str, ...] = ()
    description: str = ""


@dataclass(slots=True)
class Injected:
    """One scenario's records and label."""

    records: list[CallRecord]
    label: ScenarioLabel


@dataclass(slots=True)
class Injection:
    """A scenario being built: adds calls with ids ``<scenario>-0001``..., collects its keys,
    and makes the label when done."""

    scenario_id: str
    spec: ScenarioSpec
    world: World
    profile: TenantProfile
    rng: random.Random
    maker: NumberMaker
    records: list[CallRecord] = field(default_factory=list)
    keys: list[tuple[str, str]] = field(default_factory=list)

    @property
    def tenant(self) -> SimulatedTenant:
        """The tenant the scenario happens to."""
        return self.world.tenant(self.profile.tenant_id)

    @property
    def trunk(self) -> str:
        """The tenant's PBX trunk."""
        return self.tenant.trunks[0]

    def key(self, kind: str, value: str) -> None:
        """Add a (key kind, key) a finding about this scenario may name."""
        if (kind, value) not in self.keys:
            self.keys.append((kind, value))

    def call(
        self,
        *,
        direction: Direction,
        caller: str | None,
        callee: str,
        start: float,
        ring_s: float,
        talk_s: int = 0,
        disposition: Disposition = Disposition.ANSWERED,
        user_id: str | None = None,
        trunk_id: str | None = "",
        source_ip: str | None = None,
        campaign: str | None = None,
    ) -> CallRecord:
        """Add one call of the scenario (on the tenant's PBX trunk unless another is given)."""
        record = make_call(
            f"{self.scenario_id}-{len(self.records) + 1:04d}",
            tenant_id=self.profile.tenant_id,
            direction=direction,
            caller=caller,
            callee=callee,
            start=start,
            ring_s=ring_s,
            talk_s=talk_s,
            disposition=disposition,
            user_id=user_id,
            trunk_id=self.trunk if trunk_id == "" else trunk_id,
            source_ip=source_ip,
            campaign=campaign,
        )
        self.records.append(record)
        return record

    def done(self, description: str) -> Injected:
        """The records and the label (start and end span the records' start and end)."""
        records = sorted(self.records, key=_end)
        start = min(r.started_at for r in records)
        end = max(_end_time(r) for r in records)
        label = ScenarioLabel(
            scenario_id=self.scenario_id,
            kind=self.spec.kind,
            abuse=self.spec.abuse,
            detector=self.spec.detector,
            also=self.spec.also,
            tenant_id=self.profile.tenant_id,
            keys=tuple(self.keys),
            start=start,
            end=end,
            call_ids=tuple(r.call_id for r in records),
            description=description,
        )
        return Injected(records, label)


def _end_time(record: CallRecord) -> datetime:
    return record.ended_at or record.started_at


def _end(record: CallRecord) -> float:
    return _end_time(record).timestamp()


def at_local(profile: TenantProfile, day: datetime, hour: float) -> float:
    """Epoch seconds of ``hour`` (fractions allowed) local time on ``day``'s date."""
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(profile.timezone)
    whole = int(hour)
    moment = datetime(day.year, day.month, day.day, whole, tzinfo=zone)
    return moment.timestamp() + (hour - whole) * 3600


def utc(seconds: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)
