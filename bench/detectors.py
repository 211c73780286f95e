"""Throughput of the streaming detectors: usage records per second through every detector.

A synthetic stream is generated up front (records are built before timing, then frozen out of
the garbage collector's way, as a worker holds no backlog of input): ``--tenants`` tenants (a
fifth on unlimited plans, every tenant with a rate deck), 20 users each with their own caller
number, about 70 % outbound calls (mostly domestic fixed and mobile numbers, some
international, a few premium-rate and satellite), 25 % inbound calls, 5 % messages; about 40 %
of calls answered, with durations from seconds to half an hour; times advance a fraction of a
second per record, so windows, baselines and evictions all move. Every figure is the median of
``--repeats`` runs over fresh detector state, on one core, in records per CPU second of this
process (and per wall-clock second):

- ``trivial loop``: the baseline in the same run, a loop that reads each record's kind and
  tenant and nothing else: the ceiling of any per-record Python code;
- ``pass-through``: a :class:`DetectorSet` holding one detector that returns no findings
  (building the per-record context, resolving the tenant's policies, dispatching by kind);
- ``all detectors``: the default detector set, every detector in observe mode; again with the
  collector settings a surveillance worker runs with (:func:`callwarden.adapters.heap.settle_heap`:
  young collections every 20,000 allocations instead of 700); and with Python's cyclic garbage
  collector switched off, to show its whole share while detector state grows;
- one line per detector, run alone, to show where the time goes.

Run: ``python -m bench.detectors [--records 100000] [--tenants 200] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from callwarden.adapters.heap import LONG_RUNNING_GC_THRESHOLDS
from callwarden.core.detectors import (
    Detector,
    DetectorContext,
    DetectorFinding,
    DetectorSet,
    EventContext,
    TenantFacts,
    default_detectors,
)
from callwarden.core.model import Billing
from callwarden.core.numbering import default_numbering_plan
from callwarden.core.prefixes import PrefixList
from callwarden.core.rating import Rate, RateDeck
from callwarden.core.usage.record import (
    CallRecord,
    Direction,
    Disposition,
    MessageRecord,
    UsageKind,
    UsageRecord,
)

START = datetime(2025, 3, 3, 0, 0, tzinfo=UTC)

# (prefix, price per minute in nano units)
DECK = (
    ("1", 5_000_000),
    ("1900", 1_500_000_000),
    ("44", 8_000_000),
    ("447", 20_000_000),
    ("33", 9_000_000),
    ("49", 9_000_000),
    ("371", 120_000_000),
    ("8816", 6_000_000_000),
)


class PassThrough(Detector[object]):
    """A detector that looks at nothing and finds nothing: the in-run baseline."""

    id: ClassVar[str] = "pass_through"
    clause_ids: ClassVar[tuple[str, ...]] = ()
    kinds: ClassVar[frozenset[UsageKind]] = frozenset(UsageKind)
    params_type: ClassVar[type] = object

    def __init__(self) -> None:
        super().__init__(object())

    def observe(
        self, event: UsageRecord, ctx: EventContext, params: object | None = None
    ) -> list[DetectorFinding]:
        """Return no findings."""
        return []

    def state_size(self) -> int:
        """Nothing held."""
        return 0


def _deck() -> RateDeck:
    return RateDeck(Rate(p, nano, 0, 60, 60, 0, "USD") for p, nano in DECK)


def _number(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.45:
        return f"+1212{rng.randint(2_000_000, 9_999_999)}"  # US fixed
    if roll < 0.80:
        return f"+1646{rng.randint(2_000_000, 9_999_999)}"
    if roll < 0.90:
        return f"+4420{rng.randint(70_000_000, 79_999_999)}"  # GB fixed
    if roll < 0.95:
        return f"+447700{rng.randint(900_000, 900_999)}"
    if roll < 0.98:
        return f"+3314{rng.randint(1_000_000, 9_999_999)}"
    if roll < 0.995:
        return f"+1900{rng.randint(2_000_000, 9_999_999)}"  # premium rate
    return f"+88163{rng.randint(1_000_000, 9_999_999)}"  # satellite


def generate(
    records: int, tenants: int, seed: int = 7
) -> tuple[list[UsageRecord], DetectorContext]:
    """A synthetic stream and the context that knows its tenants."""
    rng = random.Random(seed)
    deck = _deck()
    facts = {
        f"t{i}": TenantFacts(
            f"t{i}",
            country="US",
            timezone="America/New_York",
            plan_id="unlimited" if i % 5 == 0 else "metered",
            billing=Billing.UNLIMITED if i % 5 == 0 else Billing.METERED,
            rate_deck=deck,
        )
        for i in range(tenants)
    }
    context = DetectorContext(
        default_numbering_plan(),
        high_risk=PrefixList(["88216", "37167"]),
        tenants=facts,
    )
    callers = {(t, u): f"+1332{t:03d}{u:04d}" for t in range(tenants) for u in range(20)}
    pool = [_number(rng) for _ in range(20_000)]
    out: list[UsageRecord] = []
    at = START
    for n in range(records):
        at += timedelta(seconds=rng.random() * 0.4)
        t = rng.randrange(tenants)
        u = rng.randrange(20)
        tenant, user = f"t{t}", f"t{t}-u{u}"
        roll = rng.random()
        if roll < 0.05:
            out.append(
                MessageRecord(
                    message_id=f"m{n}",
                    tenant_id=tenant,
                    user_id=user,
                    direction=Direction.OUTBOUND,
                    sender=callers[(t, u)],
                    recipient=rng.choice(pool),
                    sent_at=at,
                    status="delivered",
                    source_format="bench",
                )
            )
            continue
        outbound = roll < 0.75
        answered = rng.random() < 0.4
        ring = rng.uniform(2, 30)
        started = at - timedelta(seconds=ring)
        duration = int(rng.expovariate(1 / 180)) + 1 if answered else 0
        started -= timedelta(seconds=duration)
        answered_at = started + timedelta(seconds=ring) if answered else None
        remote = rng.choice(pool)
        out.append(
            CallRecord(
                call_id=f"c{n}",
                tenant_id=tenant,
                user_id=user,
                trunk_id=f"trunk-{t}",
                direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
                caller=callers[(t, u)] if outbound else remote,
                callee=remote if outbound else callers[(t, u)],
                started_at=started,
                answered_at=answered_at,
                ended_at=at,
                duration_s=duration,
                disposition=Disposition.ANSWERED
                if answered
                else rng.choice((Disposition.NO_ANSWER, Disposition.CANCELLED)),
                source_format="bench",
            )
        )
    return out, context


def _measure(
    make: Callable[[], DetectorSet], records: Sequence[UsageRecord], repeats: int
) -> tuple[float, float, int]:
    """Median records per wall-clock second and per CPU second over ``repeats`` runs, each
    with fresh state; and the findings of the last run."""
    walls: list[float] = []
    cpus: list[float] = []
    found = 0
    for _ in range(repeats):
        engine = make()
        observe = engine.observe
        found = 0
        wall, cpu = time.perf_counter(), time.process_time()
        for record in records:
            found += len(observe(record))
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        walls.append(len(records) / wall)
        cpus.append(len(records) / cpu)
    return statistics.median(walls), statistics.median(cpus), found


def _trivial(records: Sequence[UsageRecord], repeats: int) -> tuple[float, float]:
    """Median records per wall-clock and CPU second of a loop reading kind and tenant only."""
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(repeats):
        seen: dict[tuple[UsageKind, str | None], int] = {}
        wall, cpu = time.perf_counter(), time.process_time()
        for record in records:
            key = (record.kind, record.tenant_id)
            seen[key] = seen.get(key, 0) + 1
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        walls.append(len(records) / wall)
        cpus.append(len(records) / cpu)
    return statistics.median(walls), statistics.median(cpus)


def main(argv: list[str] | None = None) -> int:
    """Measure and print records per second."""
    parser = argparse.ArgumentParser(prog="python -m bench.detectors")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--each", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    records, context = generate(args.records, args.tenants)
    gc.collect()
    gc.freeze()  # the generated input is not the detectors' state: keep it out of collections
    print(
        f"{len(records):,} records, {args.tenants} tenants, median of {args.repeats}; "
        "records per CPU second of this process (and per wall-clock second)"
    )

    def fresh_context() -> DetectorContext:
        return DetectorContext(
            context.numbering, high_risk=context.high_risk, tenants=_tenants(context, records)
        )

    def line(name: str, wall: float, cpu: float, note: str = "") -> None:
        print(f"{name:30s} {cpu:11,.0f} /s CPU {wall:11,.0f} /s wall  {note}".rstrip())

    base_wall, base_cpu = _trivial(records, args.repeats)
    line("trivial loop (baseline)", base_wall, base_cpu)
    wall, cpu, _ = _measure(
        lambda: DetectorSet([PassThrough()], fresh_context()), records, args.repeats
    )
    line("pass-through detector set", wall, cpu, f"({cpu / base_cpu:.3f}x baseline)")
    wall, cpu, found = _measure(
        lambda: DetectorSet(default_detectors(), fresh_context()), records, args.repeats
    )
    line("all detectors", wall, cpu, f"({cpu / base_cpu:.4f}x baseline, {found} findings)")
    defaults = gc.get_threshold()
    gc.set_threshold(*LONG_RUNNING_GC_THRESHOLDS)
    try:
        wall, cpu, found = _measure(
            lambda: DetectorSet(default_detectors(), fresh_context()), records, args.repeats
        )
    finally:
        gc.set_threshold(*defaults)
    line(
        "all detectors, worker's GC",
        wall,
        cpu,
        f"({cpu / base_cpu:.4f}x baseline): the collector settings of `surveillance run`",
    )
    gc.disable()
    try:
        wall, cpu, found = _measure(
            lambda: DetectorSet(default_detectors(), fresh_context()), records, args.repeats
        )
    finally:
        gc.enable()
    line(
        "all detectors, no cyclic GC",
        wall,
        cpu,
        f"({cpu / base_cpu:.4f}x baseline): what the collector costs while state grows",
    )
    if args.each:
        for detector in default_detectors():
            kind: Any = type(detector)
            wall, cpu, found = _measure(
                lambda kind=kind: DetectorSet([kind()], fresh_context()), records, args.repeats
            )
            line(f"  {detector.id}", wall, cpu, f"({found} findings)")
    return 0


def _tenants(context: DetectorContext, records: Sequence[UsageRecord]) -> dict[str, TenantFacts]:
    seen: dict[str, TenantFacts] = {}
    for record in records:
        tenant = record.tenant_id
        if tenant is not None and tenant not in seen:
            seen[tenant] = context.tenant(tenant)
    return seen


if __name__ == "__main__":
    raise SystemExit(main())
