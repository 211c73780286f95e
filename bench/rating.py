"""Micro-benchmark of rating: deck lookups on the admission hot path, and rate-deck parsing.

Prints, each figure the median of several repeats, on one core:

- ``lookup``: :meth:`RateDeck.lookup` (longest-prefix match plus effective-date version) on a
  generated deck of 100,000 prefixes (2 to 9 digits, a fifth of them with three versions),
  for numbers that start with a deck prefix. Baseline in the same run: a plain ``dict.get`` of
  the full number, the cheapest lookup Python offers; the ratio says what the prefix search
  costs over it. Also ``cost`` and ``affordable_duration`` per call, for scale.
- ``parse``: :func:`parse_rate_deck` on a generated 1,000,000-row CSV deck written to a
  temporary file (header, quoted descriptions, 60/60-style increments, three effective
  dates), read from the open file. Baseline: ``csv.reader`` alone iterating the same file.
  Run twice: with prices drawn from a pool of 5,000 values (a real deck repeats its prices)
  and with every price distinct (the converters' caches cannot help).
- ``import``: :meth:`RatingService.import_rates` of the same kind of generated deck (prices
  from the pool) into a store, SQLite (a temporary file) and PostgreSQL (a temporary database
  on the server at ``--postgres``): a first import into an empty deck, a second import of the
  same file merged over it (every rate replaced), and loading the stored deck back into a
  ``RateDeck`` for lookups. Baseline in the same run, alternated with each figure:
  ``parse_rate_deck`` alone on the file, so the ratio is what storing adds to parsing. One run
  of each (an import takes seconds), in wall-clock seconds and in this process's CPU seconds,
  the steadier figure on a shared machine (for PostgreSQL it leaves out the server's work).

Run: ``python -m bench.rating [--prefixes 100000] [--rows 1000000] [--repeats 5]
[--import-rows 1000000] [--postgres URL | --no-postgres] [--only lookup|parse|import]``.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from callwarden.core.ratedeck import parse_rate_deck
from callwarden.core.rating import (
    Money,
    Rate,
    RateDeck,
    affordable_duration,
    cost,
    make_rate,
)
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.settings import Settings

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"

AT = 1_750_000_000.0  # mid-2025: after every generated effective date
DATES = ("2024-01-01", "2024-07-01", "2025-01-01")
EPOCHS = (1_704_067_200, 1_719_792_000, 1_735_689_600)
HEADER = (
    "Prefix",
    "Description",
    "Rate",
    "Connection Fee",
    "Increment",
    "Effective Date",
    "Currency",
)


def generate_rates(prefixes: int, rng: random.Random) -> list[Rate]:
    """``prefixes`` distinct prefixes of 2 to 9 digits; every fifth gets three versions."""
    seen: set[str] = set()
    rates: list[Rate] = []
    while len(seen) < prefixes:
        length = rng.choice((2, 3, 4, 5, 5, 6, 6, 7, 7, 8, 9))
        prefix = str(rng.randint(1, 9)) + "".join(rng.choices("0123456789", k=length - 1))
        if prefix in seen:
            continue
        seen.add(prefix)
        versions = EPOCHS if len(seen) % 5 == 0 else EPOCHS[:1]
        for effective in versions:
            rates.append(
                make_rate(
                    prefix,
                    rng.randrange(1, 2_000_000_000),
                    connection_fee=rng.choice((0, 0, 10_000_000)),
                    increments=rng.choice(((60, 60), (30, 6), (1, 1))),
                    effective_from=effective,
                    currency="USD",
                    description=f"destination {prefix[:3]}",
                )
            )
    return rates


def numbers_for(rates: list[Rate], count: int, rng: random.Random) -> list[str]:
    """``count`` E.164 numbers (with '+'), each extending a random deck prefix to 11-13 digits."""
    prefixes = sorted({rate.prefix for rate in rates})
    out = []
    for _ in range(count):
        prefix = rng.choice(prefixes)
        length = max(len(prefix) + 1, rng.randint(11, 13))
        out.append("+" + prefix + "".join(rng.choices("0123456789", k=length - len(prefix))))
    return out


def per_second(run: Callable[[], int], repeats: int) -> float:
    """Median operations per second of ``run`` (which returns how many operations it did)."""
    figures = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = run()
        figures.append(done / (time.perf_counter() - start))
    return statistics.median(figures)


def paired(
    baseline: Callable[[], int], subject: Callable[[], int], repeats: int
) -> tuple[float, float, float]:
    """Run baseline and subject alternately ``repeats`` times each; return the median rate of
    each and the median of the per-pair ratio baseline/subject (time the subject takes per
    operation, in baseline operations). Pairing keeps the ratio honest on a machine whose
    speed drifts during the run."""
    base_rates, subject_rates, ratios = [], [], []
    for _ in range(repeats):
        base_rate = per_second(baseline, 1)
        subject_rate = per_second(subject, 1)
        base_rates.append(base_rate)
        subject_rates.append(subject_rate)
        ratios.append(base_rate / subject_rate)
    return (
        statistics.median(base_rates),
        statistics.median(subject_rates),
        statistics.median(ratios),
    )


def bench_lookup(prefixes: int, lookups: int, repeats: int) -> None:
    """Print lookup, cost and affordable_duration rates against a dict.get baseline."""
    rng = random.Random(7)
    rates = generate_rates(prefixes, rng)
    start = time.perf_counter()
    deck = RateDeck(rates)
    built = time.perf_counter() - start
    numbers = numbers_for(rates, lookups, rng)
    plain = dict.fromkeys(numbers, rates[0])
    lengths = sorted({len(rate.prefix) for rate in rates})
    print(
        f"deck: {deck.prefix_count:,} prefixes, {len(deck):,} rates, prefix lengths "
        f"{lengths[0]}..{lengths[-1]}; RateDeck() built and checked in {built:.2f} s"
    )

    def baseline() -> int:
        get = plain.get
        for number in numbers:
            get(number)
        return len(numbers)

    def lookup() -> int:
        find = deck.lookup
        for number in numbers:
            find(number, AT)
        return len(numbers)

    found = [deck.lookup(number, AT) for number in numbers[:1000]]
    assert all(rate is not None for rate in found)
    matched = [rate for rate in found if rate is not None]
    budget = Money(5_000, "USD")

    def costs() -> int:
        for rate in matched:
            cost(rate, 137)
        return len(matched)

    def affordable() -> int:
        for rate in matched:
            affordable_duration(rate, budget)
        return len(matched)

    base, fast, ratio = paired(baseline, lookup, repeats)
    print(f"{'dict.get(full number) baseline':<34}{base:>14,.0f} /s")
    print(f"{'RateDeck.lookup':<34}{fast:>14,.0f} /s   {ratio:5.1f}x the baseline's time")
    print(f"{'cost(rate, 137 s)':<34}{per_second(costs, repeats * 20):>14,.0f} /s")
    spare = per_second(affordable, repeats * 20)
    print(f"{'affordable_duration(rate, 50 USD)':<34}{spare:>14,.0f} /s")


def write_deck(path: Path, rows: int, distinct_prices: bool, rng: random.Random) -> None:
    """A ``rows``-row carrier deck: NANP-style prefixes 1 + 6..9 digits, all distinct."""
    price_pool = [f"{rng.randrange(10, 2_000_000) / 1_000_000:.6f}" for _ in range(5_000)]
    increments = ("60/60", "6/6", "30/6", "1/1")
    names = [f"USA - Area {n}, Zone {n % 7}" for n in range(5_000)]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        base = 1_000_000
        for n in range(rows):
            prefix = "1" + str(base + n * 7)  # distinct, 7+ digits after the 1
            price = f"0.{n + 1:07d}" if distinct_prices else rng.choice(price_pool)
            writer.writerow(
                [
                    prefix,
                    rng.choice(names),
                    price,
                    "0" if n % 3 else "0.005",
                    rng.choice(increments),
                    DATES[n % 3],
                    "USD",
                ]
            )


def bench_parse(rows: int, repeats: int) -> None:
    """Print parse rates of a generated deck against csv.reader alone."""
    rng = random.Random(11)
    with tempfile.TemporaryDirectory() as tmp:
        for distinct in (False, True):
            path = Path(tmp) / f"deck-{int(distinct)}.csv"
            write_deck(path, rows, distinct, rng)
            size_mb = os.path.getsize(path) / 1e6

            def raw(path: Path = path) -> int:
                with path.open(newline="", encoding="utf-8-sig") as handle:
                    return sum(1 for _ in csv.reader(handle)) - 1

            def parse(path: Path = path) -> int:
                with path.open(newline="", encoding="utf-8-sig") as handle:
                    parsed = parse_rate_deck(handle, on_error="refuse")
                assert len(parsed.deck) == rows, (len(parsed.deck), rows)
                return parsed.rows

            base = per_second(raw, repeats)
            full = per_second(parse, max(1, repeats // 2))
            label = "every price distinct" if distinct else "prices from a pool of 5,000"
            print(f"deck: {rows:,} rows, {size_mb:.0f} MB, {label}")
            print(
                f"{'  csv.reader alone baseline':<34}{base:>14,.0f} rows/s  ({rows / base:.2f} s)"
            )
            print(
                f"{'  parse_rate_deck':<34}{full:>14,.0f} rows/s  ({rows / full:.2f} s, "
                f"{base / full:.1f}x the baseline's time)"
            )


def timed(run: Callable[[], int]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one ``run`` (CPU time is the steadier figure on
    a shared machine; for PostgreSQL it leaves out the server's share)."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new database on the PostgreSQL server, dropped afterwards; yields its URL."""
    name = f"callwarden_bench_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_import(rows: int, database_urls: dict[str, str], path: Path) -> None:
    """Print import and load rates into each store against parse_rate_deck alone."""

    def parse_only() -> int:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return parse_rate_deck(handle, on_error="refuse").rows

    for engine, url in database_urls.items():
        platform = Platform.build(Settings(database_url=url))
        try:
            deck_id = platform.rating.create_deck(SYSTEM, name="bench", currency="USD").id

            def import_once(deck_id: str = deck_id, platform: Platform = platform) -> int:
                with path.open(newline="", encoding="utf-8-sig") as handle:
                    result = platform.rating.import_rates(SYSTEM, deck_id, handle)
                assert result.deck.rate_count == rows, result.deck
                return result.rates_imported

            def load(deck_id: str = deck_id, platform: Platform = platform) -> int:
                with platform.store.transaction() as tx:
                    loaded = tx.load_rate_deck(deck_id)
                assert loaded is not None
                return len(loaded)

            print(f"{engine}: {rows:,}-row deck (wall s, and this process's CPU s)")
            for label, subject in (
                ("first import (empty deck)", import_once),
                ("merged re-import (all replaced)", import_once),
                ("load the stored deck", load),
            ):
                base_wall, base_cpu = timed(parse_only)
                wall, cpu = timed(subject)
                print(
                    f"  {label:<32}{rows / wall:>9,.0f} rows/s  {wall:5.1f} s (CPU {cpu:4.1f} s); "
                    f"parse alone {base_wall:4.1f} s (CPU {base_cpu:4.1f} s): "
                    f"{wall / base_wall:4.1f}x its time, CPU {cpu / base_cpu:4.1f}x"
                )
        finally:
            platform.close()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print their figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.rating", description=__doc__)
    parser.add_argument("--prefixes", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7, help="lookup runs; parse runs half")
    parser.add_argument("--import-rows", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=POSTGRES_ADMIN, help="server for the import run")
    parser.add_argument("--no-postgres", action="store_true", help="import into SQLite only")
    parser.add_argument(
        "--only", choices=("lookup", "parse", "import"), help="run one benchmark of the three"
    )
    args = parser.parse_args(argv)
    if args.only in (None, "lookup"):
        print("== rating: RateDeck.lookup (one core) ==")
        bench_lookup(args.prefixes, args.lookups, args.repeats)
    if args.only in (None, "parse"):
        print("\n== rating: parse_rate_deck ==")
        bench_parse(args.rows, args.repeats)
    if args.only not in (None, "import"):
        return 0
    print("\n== rating: import into the store (RatingService.import_rates) ==")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "deck.csv"
        write_deck(path, args.import_rows, False, random.Random(13))
        urls = {"SQLite": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        if args.no_postgres:
            bench_import(args.import_rows, urls, path)
        else:
            with postgres_database(args.postgres) as url:
                bench_import(args.import_rows, {**urls, "PostgreSQL": url}, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
