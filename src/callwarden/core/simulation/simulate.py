"""A whole simulation: the world, its ordinary traffic, injected abuse and look-alikes, labels.

:func:`simulate` is deterministic for a seed: the same seed, period and scale give the same
records, labels and facts, call for call. Abuse scenarios are spread over the period, each kind
``instances`` times on tenants it suits, at local hours it suits and, for the kinds judged
against history (seasonal baselines), only once two weeks of history exist; two scenarios never
share a tenant within six hours, so each finding can be told apart.

Pure core: no I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final

from callwarden.core.detectors import event_time
from callwarden.core.numbering import NumberingPlan
from callwarden.core.simulation.facts import SimulationFacts
from callwarden.core.simulation.injection import Injected, Injection, at_local
from callwarden.core.simulation.labels import ScenarioLabel
from callwarden.core.simulation.lookalikes import INJECTED_LOOKALIKES, labelled_lookalikes
from callwarden.core.simulation.numbers import NumberMaker
from callwarden.core.simulation.scenarios import ABUSE
from callwarden.core.simulation.traffic import Background, background
from callwarden.core.simulation.world import build_world
from callwarden.core.usage.record import CallRecord

__all__ = ["DEFAULT_START", "Simulation", "simulate"]

#: A Monday; the default four weeks hold Polish and French holidays and US Thanksgiving.
DEFAULT_START: Final[date] = date(2026, 11, 2)
_APART_S: Final[float] = 6 * 3600
_TRIES: Final[int] = 40


@dataclass(frozen=True, slots=True)
class Simulation:
    """The records (in the order they became known: by call end), their labels, the facts."""

    records: tuple[CallRecord, ...]
    labels: tuple[ScenarioLabel, ...]
    facts: SimulationFacts


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def simulate(
    numbering: NumberingPlan,
    *,
    seed: int,
    days: int = 28,
    first: date = DEFAULT_START,
    scale: float = 1.0,
    instances: int = 3,
) -> Simulation:
    """Simulate ``days`` days of the default world from ``first``, ``scale`` times its ordinary
    volume, with every abuse kind injected ``instances`` times, and label everything.

    Raises ``ValueError`` for a period under two days, a negative scale or no instances.
    """
    if days < 2:
        raise ValueError("a simulation needs at least two days")
    if scale < 0 or instances < 1:
        raise ValueError("scale must not be negative and instances must be at least 1")
    rng = random.Random(seed)
    maker = NumberMaker(numbering)
    world = build_world(random.Random(rng.random()), maker)
    records: list[CallRecord] = []
    labels: list[ScenarioLabel] = []
    start = _midnight(first).timestamp()
    end = start + days * 86_400
    ordinary = Background()
    for profile in world.profiles:
        traffic = background(
            profile,
            world.tenant(profile.tenant_id),
            first,
            days,
            random.Random(rng.random()),
            maker,
            scale,
        )
        ordinary.records += traffic.records
        ordinary.monday_peaks += traffic.monday_peaks
        ordinary.holidays += traffic.holidays
        ordinary.callbacks.update(traffic.callbacks)
        ordinary.relay.update(traffic.relay)
    if ordinary.records:  # a tenant's first local day begins before midnight UTC in the east
        start = min(start, min(r.started_at.timestamp() for r in ordinary.records))
        end = max(end, max(event_time(r) for r in ordinary.records))
    labels += labelled_lookalikes(world, ordinary, ordinary.records, start, end)
    records += ordinary.records
    taken: list[tuple[str, float]] = []

    def place(tenant_id: str, hours: tuple[int, ...], history: int, own: random.Random) -> float:
        profile = world.profile(tenant_id)
        earliest = min(max(history, 1), days - 1)
        moment = 0.0
        for _ in range(_TRIES):
            day = first + timedelta(days=own.randrange(earliest, days))
            moment = at_local(profile, _midnight(day), own.choice(hours) + own.random() * 0.5)
            if all(t != tenant_id or abs(moment - m) >= _APART_S for t, m in taken):
                break
        taken.append((tenant_id, moment))
        return moment

    counter = 0
    for kind_index, (spec, builder, tenants, hours, history) in enumerate(ABUSE):
        for n in range(instances):
            counter += 1
            own = random.Random(rng.random())
            # Instances of a kind go to different tenants while there are enough of them.
            tenant_id = tenants[(n + kind_index) % len(tenants)]
            moment = place(tenant_id, hours, history, own)
            injection = Injection(
                f"s{counter:03d}-{spec.kind}", spec, world, world.profile(tenant_id), own, maker
            )
            done: Injected = builder(injection, moment)
            records += done.records
            labels.append(done.label)
    for spec, builder, tenant_id, hour, earliest in INJECTED_LOOKALIKES:
        counter += 1
        own = random.Random(rng.random())
        moment = place(tenant_id, (hour,), min(earliest, days - 1), own)
        injection = Injection(
            f"look-{spec.kind}", spec, world, world.profile(tenant_id), own, maker
        )
        done = builder(injection, moment)
        records += done.records
        labels.append(done.label)
    records.sort(key=lambda r: (event_time(r), r.call_id))
    return Simulation(tuple(records), tuple(labels), world.facts)
