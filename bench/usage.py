"""Usage ingestion and storage benchmarks, on SQLite and PostgreSQL.

Prints, each figure the median of `--repeats` runs, in wall-clock records per second (the
database works in its own process, so CPU time of this one would flatter it):

- ``normalise``: the in-run baseline. A generated callwarden CSV file of `--records` answered
  and unanswered calls over 20 tenants is cut into units and normalised, nothing stored: the
  ceiling for any ingestion path. Measured before each ingestion figure, so a busy machine
  weighs on both alike.
- ``prepare``: a second baseline, what bulk ingestion does per unit in one process before
  storing (`LocalPreparer`: the quick path for callwarden CSV, the storable checks, rows).
- ``file``: `callwarden ingest FILE` without the progress bar (`ingest_file`): read, prepare,
  check tenants, store (binary COPY straight into the table on PostgreSQL, staged and moved
  with ON CONFLICT DO NOTHING once a batch meets stored keys; one executemany per batch on
  SQLite), publish to the in-process stream. Once with everything in this process
  (`--workers 0`) and once with `--file-workers` worker processes (default: what the command
  uses on PostgreSQL): on PostgreSQL they prepare and store whole batches on their own
  connections (`StoringPool`), on SQLite they only prepare units (`ProcessPreparer`). Each run
  ingests the file into an empty store. Also ``store-only``: the same records already
  normalised (`ingest_records`), i.e. what checking and storing cost alone. Target: at least
  50,000 records per second from a file into PostgreSQL.

Every rate is printed as records per wall-clock second, records per CPU second of this process,
and microseconds of CPU per record of this process and its worker processes together
(PostgreSQL's own processes are not counted).
- ``http``: `callwarden serve` in a subprocess; `--clients` concurrent clients POST the same
  records as CSV bodies of `--batch` records to /v1/usage/records; records per second until
  the last answer (each answer comes after its commit).
- ``month``: a store of `--month-rows` usage records (20 tenants, 12 months of 2025) loaded
  with the fast bulk path (COPY on PostgreSQL; executemany batches in one transaction on
  SQLite) and analysed (VACUUM ANALYZE on PostgreSQL, as autovacuum would), then one tenant's
  month: the summary (counts, seconds, cost), the first page of 100 records with the month's
  total, and reading every record of that month. Milliseconds, median of `--repeats`.

Run: ``python -m bench.usage [--quick] [--only file|http|month] [--no-postgres] [--no-sqlite]``.
The whole run with 10,000,000 rows takes a while (tens of minutes on two cores); `--quick` uses
20,000 records and a 200,000-row month store.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import psycopg

from callwarden.adapters.store.usage import COLUMNS, COPY_TYPES, SqlUsageStore, sqlite_values
from callwarden.adapters.usage_files import ingest_file
from callwarden.adapters.usage_pool import DEFAULT_STORING_WORKERS
from callwarden.core.model import Billing, Channel, PlanLimits, Tenant, TenantStatus, UserRole
from callwarden.core.usage.normalise import normalise, split
from callwarden.core.usage.record import UsageFormat, UsageRecord
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import PageRequest
from callwarden.services.usage import UsageQuery
from callwarden.services.usage_prepare import LocalPreparer
from callwarden.settings import Settings

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
FMT = UsageFormat.CALLWARDEN_CSV
TENANTS = tuple(f"tn_bench{i:08x}" for i in range(20))
HEADER = (
    "call_id,leg,tenant_id,direction,caller,callee,started_at,answered_at,ended_at,"
    "duration_s,disposition,cost_minor,currency\n"
)
START = 1_735_689_600  # 2025-01-01T00:00:00Z


def _csv_line(i: int, prefix: str) -> str:
    start = START + i * 7
    tenant = TENANTS[i % len(TENANTS)]
    callee = f"+4420794{i % 100_000:05d}"
    if i % 4 == 0:
        return (
            f"{prefix}{i},a,{tenant},outbound,+442079460999,{callee},{start},,{start + 30},"
            "0,no_answer,,\n"
        )
    return (
        f"{prefix}{i},a,{tenant},outbound,+442079460999,{callee},{start},{start + 5},"
        f"{start + 5 + i % 600},{i % 600},answered,{i % 97},EUR\n"
    )


def write_calls(path: Path, n: int, prefix: str = "bench-") -> None:
    """A callwarden CSV file of `n` calls, a quarter unanswered, over the bench tenants."""
    with path.open("w", encoding="utf-8") as f:
        f.write(HEADER)
        for start in range(0, n, 10_000):
            f.write("".join(_csv_line(i, prefix) for i in range(start, min(n, start + 10_000))))


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server, dropped afterwards."""
    name = f"callwarden_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def store_url(kind: str, admin_url: str) -> Iterator[str]:
    """An empty database of `kind` (sqlite or postgres)."""
    if kind == "postgres":
        with postgres_database(admin_url) as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{Path(tmp) / 'bench.db'}"


def seeded(url: str) -> Platform:
    """A migrated platform whose tenants are the ones the generated records name."""
    platform = Platform.build(Settings(database_url=url, log_level="WARNING"))
    plan = platform.governance.create_plan(
        SYSTEM,
        name="Bench",
        billing=Billing.METERED,
        channels=[Channel.VOICE],
        currency="EUR",
        limits=PlanLimits(),
    )
    with platform.store.transaction() as tx:
        for tenant_id in TENANTS:
            tx.add_tenant(
                Tenant(
                    tenant_id,
                    tenant_id,
                    "GB",
                    "Europe/London",
                    plan.id,
                    TenantStatus.ACTIVE,
                    None,
                    datetime.now(UTC),
                )
            )
    return platform


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _medians(rates: list[Rate]) -> Rate:
    return (
        _median([r[0] for r in rates]),
        _median([r[1] for r in rates]),
        _median([r[2] for r in rates]),
    )


def _ratio(rate: Rate, baseline: Rate) -> str:
    return f"{rate[0] / baseline[0]:>9.2f} {rate[1] / baseline[1]:>9.2f}"


def _pair(rate: Rate) -> str:
    return f"{rate[0]:>9,.0f} {rate[1]:>9,.0f} {rate[2]:>7.1f} us"


# -- normalise (baseline), file, store-only -------------------------------------------------------
Rate = tuple[float, float, float]
"""Records per wall-clock second, records per CPU second of this process, and microseconds of
CPU per record of this process and its (finished) worker processes together."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _rate(n: int, work: Callable[[], object]) -> Rate:
    wall, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
    work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, n / cpu, (cpu + _children_cpu() - children) / n * 1e6


def normalise_rate(path: Path) -> Rate:
    """Records per second cut and normalised from the file, nothing stored."""

    def run() -> None:
        with path.open(encoding="utf-8") as f:
            for item in split(FMT, f):
                normalise(FMT, item)

    return _rate(sum(1 for _ in path.open()) - 1, run)


def prepare_rate(path: Path) -> Rate:
    """Records per second cut and prepared for storage (the quick path) in this process."""

    def run() -> None:
        with path.open(encoding="utf-8") as f:
            for _ in LocalPreparer().prepare(FMT, split(FMT, f), UTC):
                pass

    return _rate(sum(1 for _ in path.open()) - 1, run)


def file_rate(url: str, path: Path, n: int, workers: int = 0) -> Rate:
    """Records per second ingested from the file into an empty store at `url`, normalised
    in this process (`workers` 0) or by that many worker processes."""
    platform = seeded(url)
    results = []

    async def ingest() -> None:
        results.append(await ingest_file(platform.usage, path, FMT, workers=workers))

    try:
        rate = _rate(n, lambda: anyio.run(ingest))
    finally:
        anyio.run(platform.aclose)
    assert results[0].stored == n, results
    return rate


def store_only_rate(url: str, records: list[UsageRecord]) -> Rate:
    """Records per second checked and stored when they arrive already normalised."""
    platform = seeded(url)
    results = []
    try:
        rate = _rate(
            len(records), lambda: results.append(anyio.run(platform.usage.ingest_records, records))
        )
    finally:
        anyio.run(platform.aclose)
    assert results[0].stored == len(records), results
    return rate


def bench_file(kinds: list[str], admin: str, n: int, repeats: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calls.csv"
        write_calls(path, n)
        records = [r for item in split(FMT, path.read_text("utf-8")) for r in normalise(FMT, item)]
        print(f"file of {n:,} calls ({path.stat().st_size / 1e6:.1f} MB), callwarden-csv")
        print(
            "  records/s: wall clock, per CPU second of this process; "
            "CPU per record of this process and its workers"
        )
        for kind in kinds:
            base: list[Rate] = []
            prepared: list[Rate] = []
            files: list[Rate] = []
            pooled: list[Rate] = []
            stores: list[Rate] = []
            for _ in range(repeats):
                base.append(normalise_rate(path))
                prepared.append(prepare_rate(path))
                with store_url(kind, admin) as url:
                    files.append(file_rate(url, path, n))
                with store_url(kind, admin) as url:
                    pooled.append(file_rate(url, path, n, workers))
                with store_url(kind, admin) as url:
                    stores.append(store_only_rate(url, records))
            b, q, f = _medians(base), _medians(prepared), _medians(files)
            p, s = _medians(pooled), _medians(stores)
            target = "  (target >= 50,000)" if kind == "postgres" else ""
            print(f"  {kind:<8} normalise only (baseline)      {_pair(b)}")
            print(f"  {kind:<8} prepare only, quick path       {_pair(q)}")
            print(f"  {kind:<8} file -> store, in process      {_pair(f)}{target}")
            how = "storing" if kind == "postgres" else "preparing"
            print(f"  {kind:<8} file -> store, {workers} {how} workers {_pair(p)}{target}")
            print(f"  {kind:<8} store only (normalised)        {_pair(s)}")
            print(f"  {kind:<8} ratio file / normalise         {_ratio(f, b)}")
            print(f"  {kind:<8} ratio file, workers / normalise {_ratio(p, b)}")


# -- HTTP ----------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """`callwarden serve` in a subprocess on a store."""

    def __init__(self, url: str) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "CALLWARDEN_DATABASE_URL": url,
            "CALLWARDEN_PORT": str(self.port),
            "CALLWARDEN_LOG_LEVEL": "WARNING",
        }
        cmd = [sys.executable, "-m", "callwarden.adapters.cli.main", "serve"]
        self.proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(400):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=0.5).read()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("callwarden serve did not start")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=20)


async def _post_all(base: str, key: str, bodies: list[str], clients: int) -> None:
    queue = list(reversed(bodies))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}

    async def client(http: httpx.AsyncClient) -> None:
        while queue:
            body = queue.pop()
            response = await http.post(
                "/v1/usage/records", params={"format": FMT.value}, content=body, headers=headers
            )
            assert response.status_code == 200, response.text

    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))


def http_rate(url: str, n: int, batch: int, clients: int) -> float:
    """Records per second POSTed in CSV batches to a server on an empty store."""
    platform = seeded(url)
    operator = platform.governance.create_user(
        SYSTEM, None, email="bench@provider.example", display_name="Bench", role=UserRole.OPERATOR
    )
    key = platform.access.issue(SYSTEM, None, operator.id, "bench").secret
    platform.close()
    lines = [_csv_line(i, "http-") for i in range(n)]
    bodies = [HEADER + "".join(lines[i : i + batch]) for i in range(0, n, batch)]
    server = Server(url)
    try:
        began = time.perf_counter()
        asyncio.run(_post_all(server.base, key, bodies, clients))
        return n / (time.perf_counter() - began)
    finally:
        server.stop()


def bench_http(
    kinds: list[str], admin: str, n: int, batch: int, clients: int, repeats: int
) -> None:
    print(f"HTTP: {n:,} calls in CSV bodies of {batch:,}, {clients} concurrent clients")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "calls.csv"
        write_calls(path, n, "http-")
        for kind in kinds:
            base: list[float] = []
            rates: list[float] = []
            for _ in range(repeats):
                base.append(normalise_rate(path)[0])
                with store_url(kind, admin) as url:
                    rates.append(http_rate(url, n, batch, clients))
            b, r = _median(base), _median(rates)
            print(f"  {kind:<8} normalise only (baseline) {b:>9,.0f} records/s")
            print(f"  {kind:<8} POST /v1/usage/records    {r:>9,.0f} records/s")
            print(f"  {kind:<8} ratio HTTP / normalise    {r / b:>9.2f}")


# -- a tenant's month among 10,000,000 records -----------------------------------------------------
def _month_rows(n: int) -> Iterator[tuple[object, ...]]:
    """`n` calls spread evenly over 2025 and the bench tenants, in time order."""
    year_s = 365 * 86_400
    for i in range(n):
        at = datetime.fromtimestamp(START + i * year_s // n, UTC)
        answered = i % 4 != 0
        yield (
            f"m{i:09d}",
            "a",
            "call",
            TENANTS[i % len(TENANTS)],
            None,
            at,
            "callwarden-csv",
            None,
            None,
            "outbound",
            "+442079460999",
            f"+4420794{i % 100_000:05d}",
            at + timedelta(seconds=5) if answered else None,
            at + timedelta(seconds=65 if answered else 30),
            60 if answered else 0,
            "answered" if answered else "no_answer",
            i % 97 if answered else None,
            "EUR" if answered else None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        )


def load_month_store(url: str, n: int) -> float:
    """Fill the store with the bulk path; return the seconds it took."""
    platform = seeded(url)
    engine = platform.store.engine
    began = time.perf_counter()
    chunk: list[list[object]] = []
    with engine.begin() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        if engine.dialect.name == "postgresql":
            assert isinstance(raw, psycopg.Connection)
            sql = f"COPY usage_records ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"
            with raw.cursor() as cur, cur.copy(sql) as copy:
                copy.set_types(list(COPY_TYPES))
                for row in _month_rows(n):
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(COLUMNS))
            sql = f"INSERT INTO usage_records ({', '.join(COLUMNS)}) VALUES ({marks})"
            cur = raw.cursor()
            for row in _month_rows(n):
                chunk.append(sqlite_values(row))
                if len(chunk) == 50_000:
                    cur.executemany(sql, chunk)
                    chunk.clear()
            cur.executemany(sql, chunk)
    # What autovacuum does in the days after such a load: statistics, and the visibility map
    # that lets counting a tenant's month read the index alone.
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE usage_records")
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    elapsed = time.perf_counter() - began
    platform.close()
    return elapsed


def _timed(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return _median(times)


def report_month(platform: Platform, kind: str, repeats: int) -> None:
    """Time the queries of one tenant's month and print them."""
    usage, store = platform.usage, SqlUsageStore(platform.store.engine)
    month = UsageQuery(
        TENANTS[3], datetime(2025, 6, 1, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)
    )

    def read_all() -> int:
        with store.transaction() as tx:
            return sum(1 for _ in tx.iter_records(month))

    rows = read_all()
    summary = _timed(lambda: usage.summarise(SYSTEM, month), repeats)
    first = _timed(lambda: usage.list_records(SYSTEM, month, PageRequest(100)), repeats)
    every = _timed(read_all, repeats)
    print(f"  {kind:<8} month summary             {summary:>9,.1f} ms  ({rows:,} records)")
    print(f"  {kind:<8} month, first 100 records  {first:>9,.1f} ms")
    print(f"  {kind:<8} month, every record       {every:>9,.1f} ms")


def bench_month(kinds: list[str], admin: str, n: int, repeats: int) -> None:
    print(f"a tenant's month among {n:,} records ({len(TENANTS)} tenants x 12 months)")
    for kind in kinds:
        with store_url(kind, admin) as url:
            seconds = load_month_store(url, n)
            print(f"  {kind:<8} bulk load                 {n / seconds:>9,.0f} records/s")
            platform = Platform.build(Settings(database_url=url, log_level="WARNING"))
            report_month(platform, kind, repeats)
            platform.close()


def main(argv: list[str] | None = None) -> int:
    """Run the usage benchmarks and print their figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.usage", description=__doc__)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--http-records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000, help="records per HTTP body")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--month-rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--file-workers",
        type=int,
        default=DEFAULT_STORING_WORKERS,
        help="worker processes of the second file run",
    )
    parser.add_argument("--postgres", default=POSTGRES_ADMIN)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--only", choices=("file", "http", "month"))
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.http_records, args.month_rows, args.repeats = 20_000, 20_000, 200_000, 1
    kinds = [
        kind
        for kind, skipped in (("sqlite", args.no_sqlite), ("postgres", args.no_postgres))
        if not skipped
    ]
    print(f"== usage ingestion ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}) ==")
    if args.only in (None, "file"):
        bench_file(kinds, args.postgres, args.records, args.repeats, args.file_workers)
    if args.only in (None, "http"):
        bench_http(kinds, args.postgres, args.http_records, args.batch, args.clients, args.repeats)
    if args.only in (None, "month"):
        bench_month(kinds, args.postgres, args.month_rows, max(args.repeats, 5))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
