"""Backfill throughput: rows per second of a month's usage file through every detector.

A callwarden CSV file of ``--records`` calls (10,000,000 by default: a month of 200 tenants,
20 users each, a fifth of the tenants on unlimited plans, every tenant with a rate deck) is
generated column-wise with polars once and kept under ``--data`` (default: the system's
temporary folder, ``callwarden-bench/``), so later runs reuse it. Its shape follows
``bench.detectors``: about 70 % outbound calls, mostly domestic numbers with some international,
premium-rate and satellite ones, 40 % answered, times spread evenly over 31 days.

Figures, each the median of ``--repeats`` runs, in rows per wall-clock second:

- ``read``: the baseline in the same run, :func:`read_usage_table` alone (polars parsing the
  file and deriving the pre-screen's columns): the ceiling of any backfill with this reader;
- ``screen``: reading plus the pre-screen, without judging anything;
- ``backfill``: the whole backfill (read, screen, records, detectors), with ``--workers``
  processes;
- ``streaming``: the reference path on the first ``--sample`` rows (the ingestion normaliser,
  then one :class:`DetectorSet`), for the ratio of the backfill to judging every record.

Run: ``python -m bench.backfill [--records 10000000] [--workers 2] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from callwarden.adapters.backfill_reader import read_usage_table
from callwarden.core.detectors import DetectorSet, TenantFacts
from callwarden.core.model import Billing
from callwarden.core.prefixes import PrefixList
from callwarden.core.rating import Rate, RateDeck
from callwarden.core.usage.normalise import normalise, split
from callwarden.core.usage.record import UsageFormat
from callwarden.core.usage.schema import CALL_FIELDS
from callwarden.services.backfill import BackfillSetup, backfill_table, screen

START = datetime(2025, 3, 1, tzinfo=UTC)
MONTH_S = 31 * 86_400
TENANTS = 200
DECK = (
    ("1", 5_000_000),
    ("1900", 1_500_000_000),
    ("44", 8_000_000),
    ("447", 20_000_000),
    ("33", 9_000_000),
    ("371", 120_000_000),
    ("8816", 6_000_000_000),
)


def _h(seed: int) -> pl.Expr:
    """A pseudo-random unsigned 64-bit value per row (splitmix-style mixing of row and seed)."""
    x = (
        pl.col("i").cast(pl.UInt64) + pl.lit(seed * 0x9E3779B97F4A7C15 % 2**64, pl.UInt64)
    ) * pl.lit(0xBF58476D1CE4E5B9, pl.UInt64)
    x = (x ^ (x // 2**31)) * pl.lit(0x94D049BB133111EB, pl.UInt64)
    return x ^ (x // 2**29)


def generate(path: Path, records: int) -> None:
    """Write ``records`` calls in callwarden's CSV schema to ``path``, in time order."""
    base = int(START.timestamp())
    frame = pl.DataFrame({"i": pl.int_range(records, eager=True, dtype=pl.Int64)})
    tenant = (_h(1) % TENANTS).cast(pl.Int64)
    user = (_h(2) % 20).cast(pl.Int64)
    outbound = (_h(3) % 100) < 72
    answered = (_h(4) % 100) < 40
    ring = (_h(5) % 28 + 2).cast(pl.Int64)
    talk = pl.when(answered).then((_h(6) % 600 + 1).cast(pl.Int64)).otherwise(0)
    roll = (_h(7) % 1000).cast(pl.Int64)
    digits = (_h(8) % 8_000_000 + 2_000_000).cast(pl.String)
    remote = (
        pl.when(roll < 450)
        .then(pl.lit("+1212") + digits)
        .when(roll < 800)
        .then(pl.lit("+1646") + digits)
        .when(roll < 900)
        .then(pl.lit("+4420") + digits + pl.lit("1"))
        .when(roll < 950)
        .then(pl.lit("+447700") + digits.str.slice(0, 6))
        .when(roll < 980)
        .then(pl.lit("+3314") + digits)
        .when(roll < 995)
        .then(pl.lit("+1900") + digits)
        .otherwise(pl.lit("+88163") + digits)
    )
    own = pl.lit("+1332") + tenant.cast(pl.String).str.zfill(3) + user.cast(pl.String).str.zfill(4)
    ended = pl.lit(base, pl.Int64) + pl.col("i") * MONTH_S // records
    started = ended - ring - talk

    def iso(seconds: pl.Expr) -> pl.Expr:
        return pl.from_epoch(seconds, time_unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ")

    calls = frame.select(
        call_id=pl.lit("c") + pl.col("i").cast(pl.String),
        leg=pl.lit("a"),
        tenant_id=pl.lit("t") + tenant.cast(pl.String),
        user_id=pl.lit("t") + tenant.cast(pl.String) + pl.lit("-u") + user.cast(pl.String),
        trunk_id=pl.lit("trunk-") + tenant.cast(pl.String),
        source_ip=pl.lit(None, pl.String),
        direction=pl.when(outbound).then(pl.lit("outbound")).otherwise(pl.lit("inbound")),
        caller=pl.when(outbound).then(own).otherwise(remote),
        callee=pl.when(outbound).then(remote).otherwise(own),
        started_at=iso(started),
        answered_at=pl.when(answered).then(iso(started + ring)).otherwise(None),
        ended_at=iso(ended),
        duration_s=talk,
        disposition=pl.when(answered)
        .then(pl.lit("answered"))
        .when((_h(9) % 2) == 0)
        .then(pl.lit("no_answer"))
        .otherwise(pl.lit("cancelled")),
        cost_minor=pl.lit(None, pl.Int64),
        currency=pl.lit(None, pl.String),
        campaign=pl.lit(None, pl.String),
        attestation=pl.lit(None, pl.String),
        source_format=pl.lit("bench"),
    )
    assert tuple(calls.columns) == CALL_FIELDS
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    calls.write_csv(partial)
    partial.replace(path)


def bench_setup() -> BackfillSetup:
    """The generated tenants' facts: every fifth on an unlimited plan, all with one deck."""
    deck = RateDeck(Rate(prefix, nano, 0, 60, 60, 0, "USD") for prefix, nano in DECK)
    tenants = {
        f"t{i}": TenantFacts(
            f"t{i}",
            timezone="America/New_York",
            plan_id="unlimited" if i % 5 == 0 else "metered",
            billing=Billing.UNLIMITED if i % 5 == 0 else Billing.METERED,
            rate_deck=deck,
        )
        for i in range(TENANTS)
    }
    return BackfillSetup(tenants=tenants, high_risk=PrefixList(["88216", "37167"]))


def _median(run: Callable[[], int], repeats: int) -> tuple[float, int]:
    """Median rows per wall-clock second of ``run`` (which returns the rows it covered)."""
    rates: list[float] = []
    rows = 0
    for _ in range(repeats):
        began = time.perf_counter()
        rows = run()
        rates.append(rows / (time.perf_counter() - began))
    return statistics.median(rates), rows


def main(argv: list[str] | None = None) -> int:
    """Generate (or reuse) the file, then measure and print rows per second."""
    parser = argparse.ArgumentParser(prog="python -m bench.backfill")
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sample", type=int, default=100_000)
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "callwarden-bench"
    )
    args = parser.parse_args(argv)
    path = args.data / f"usage-{args.records}.csv"
    if not path.exists():
        began = time.perf_counter()
        generate(path, args.records)
        print(f"generated {path} in {time.perf_counter() - began:.0f} s")
    size = path.stat().st_size
    print(
        f"{path} ({size / 1e6:,.0f} MB, {args.records:,} calls, {TENANTS} tenants); "
        f"medians of {args.repeats}, rows per wall-clock second, {args.workers} worker(s)"
    )
    setup = bench_setup()
    detectors = list(setup.detectors())

    read_rate, rows = _median(lambda: read_usage_table(path).height, args.repeats)
    print(f"{'read (baseline)':24s} {read_rate:12,.0f} /s")

    kept = [0]

    def read_and_screen() -> int:
        table = read_usage_table(path)
        kept[0] = int((screen(table, detectors, setup) != 0).sum())
        return table.height

    screen_rate, _ = _median(read_and_screen, args.repeats)
    print(
        f"{'read + pre-screen':24s} {screen_rate:12,.0f} /s  "
        f"({screen_rate / read_rate:.2f}x read; {kept[0]:,} of {rows:,} rows kept)"
    )

    last: list[object] = []

    def whole() -> int:
        result = backfill_table(read_usage_table(path), setup, workers=args.workers)
        last[:] = [result]
        return result.rows

    backfill_rate, _ = _median(whole, args.repeats)
    result = last[0]
    assert hasattr(result, "summaries")
    print(
        f"{'backfill':24s} {backfill_rate:12,.0f} /s  ({backfill_rate / read_rate:.3f}x read, "
        f"{len(result.findings):,} findings, {result.evicted_keys:,} keys evicted)"
    )
    for summary in result.summaries.values():
        print(
            f"  {summary.detector:22s} {summary.rows_seen:12,} rows judged "
            f"{summary.findings:8,} findings"
        )

    def streaming() -> int:
        with path.open(encoding="utf-8") as lines:
            head = [next(lines) for _ in range(args.sample + 1)]
        records = [
            record
            for item in split(UsageFormat.CALLWARDEN_CSV, head)
            for record in normalise(UsageFormat.CALLWARDEN_CSV, item)
        ]
        DetectorSet(list(setup.detectors()), setup.context()).observe_all(records)
        return len(records)

    stream_rate, sample = _median(streaming, args.repeats)
    print(
        f"{'streaming (reference)':24s} {stream_rate:12,.0f} /s  on the first {sample:,} rows, "
        f"one process, normaliser + detector set (backfill {backfill_rate / stream_rate:.1f}x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
