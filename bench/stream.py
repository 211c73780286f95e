"""Usage stream benchmarks: records per second through NATS JetStream into the store, beside the
in-process stream and bare JetStream, all in one run.

Every figure is a backlog drained by one consumer: the records are published first (that rate
is reported too), then the consumer is started and timed until the last record is handled.

1. **Bare JetStream** (the baseline): nats-py alone, the same JSON payloads published with
   `publish_async` and consumed by a durable pull consumer (`fetch` of `--batch`, ack each).
2. **Streams without storage**: `JetStreamStream` and `InProcessStream` carrying usage
   records to a handler that does nothing (what the record encoding and the consumer add).
3. **Into the store**, on SQLite and on PostgreSQL:
   - *no stream*: `UsageIngestion.ingest` of the raw units straight from memory (the storage
     ceiling, no stream at all);
   - *in-process* and *JetStream*: records through the stream, each batch stored by a consumer
     with `UsageIngestion.ingest_records`;
   - *NATS ingestion*: raw callwarden JSON sent to `<prefix>.in.callwarden-json`, one record
     per message or batch messages of 100 or 1,000 records as JSON lines; the ingestion
     consumer hands each fetched batch to `UsageIngestion.ingest`, which stores it and (in
     production, "+ publish") publishes the stored records to the record subject. Target
     ≥ 20,000 records/s.

Every path runs `--repeats` times; each run has its own bare JetStream baseline, and the
figures printed are medians (with the lowest and highest drain rate), the ratio being the
median of each run's ratio to its own baseline.

Run: `python -m bench.stream [--records N] [--repeats R] [--quick] [--no-postgres]`. Needs the
NATS server at 127.0.0.1:4222 (and PostgreSQL at 127.0.0.1:5432 unless --no-postgres); each run
uses streams and a database of its own and removes them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import psycopg
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from callwarden.adapters.store.usage import SqlUsageStore
from callwarden.adapters.stream.memory import InProcessStream
from callwarden.adapters.stream.nats import JetStreamStream
from callwarden.core.model import Billing, Channel, PlanLimits
from callwarden.core.usage.record import (
    CallRecord,
    Direction,
    Disposition,
    RawItem,
    UsageFormat,
    UsageRecord,
)
from callwarden.core.usage.schema import to_json
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.stream import UsageStream
from callwarden.services.usage import UsageIngestion
from callwarden.settings import Settings

NATS_URL = "nats://127.0.0.1:4222"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured path: records, seconds to publish them, seconds to drain them."""

    path: str
    records: int
    publish_s: float | None
    drain_s: float

    @property
    def drain_rate(self) -> float:
        return self.records / self.drain_s

    @property
    def publish_rate(self) -> float | None:
        return None if self.publish_s is None else self.records / self.publish_s


def _records(n: int, tenants: Sequence[str], tag: str) -> list[CallRecord]:
    """A contact centre's mix: two in three calls answered, the rest unanswered or busy."""
    out = []
    for i in range(n):
        start = T0 + timedelta(seconds=i)
        answered = i % 3 != 0
        out.append(
            CallRecord(
                call_id=f"{tag}-{i:08d}@pbx.example.net",
                tenant_id=tenants[i % len(tenants)],
                source_ip=f"198.51.100.{i % 250}",
                direction=Direction.OUTBOUND,
                caller="+442079460999",
                callee=f"+4420794{i % 100000:05d}",
                started_at=start,
                answered_at=start + timedelta(seconds=5) if answered else None,
                ended_at=start + timedelta(seconds=65),
                duration_s=60 if answered else 0,
                disposition=Disposition.ANSWERED
                if answered
                else (Disposition.NO_ANSWER if i % 2 else Disposition.BUSY),
                campaign="spring renewals",
                attestation="A",
                source_format="callwarden-json",
            )
        )
    return out


def _jetstream(**options: int) -> JetStreamStream:
    tag = uuid.uuid4().hex[:10]
    return JetStreamStream(
        NATS_URL,
        stream_name=f"CWBENCH_{tag}",
        subject_prefix=f"cwbench{tag}.usage",
        batch_size=options.get("batch_size", 500),
        fetch_timeout_s=0.5,
    )


async def _until(done: Callable[[], bool]) -> None:
    while not done():
        await asyncio.sleep(0.002)


# 1. bare JetStream


async def bare_jetstream(payloads: Sequence[bytes], batch: int) -> Figure:
    """nats-py alone: publish_async everything, then drain with a durable pull consumer."""
    nc = await nats.connect(NATS_URL)
    js = nc.jetstream(publish_async_max_pending=4 * batch)
    tag = uuid.uuid4().hex[:10]
    name, subject = f"CWBENCH_BARE_{tag}", f"cwbenchbare{tag}.x"
    await js.add_stream(StreamConfig(name=name, subjects=[subject]))
    try:
        start = time.perf_counter()
        futures = [await js.publish_async(subject, p) for p in payloads]
        await asyncio.gather(*futures)
        published = time.perf_counter() - start
        sub = await js.pull_subscribe(
            subject,
            durable="bare",
            stream=name,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_ack_pending=4 * batch),
        )
        start = time.perf_counter()
        got = 0
        while got < len(payloads):
            msgs = await sub.fetch(batch, timeout=2)
            for msg in msgs:
                json.loads(msg.data)
                await msg.ack()
            got += len(msgs)
        drained = time.perf_counter() - start
    finally:
        await js.delete_stream(name)
        await nc.close()
    return Figure("bare JetStream (nats-py, decode + ack)", len(payloads), published, drained)


# 2. streams without storage, 3. streams into the store


async def through(
    stream: UsageStream,
    label: str,
    records: Sequence[UsageRecord],
    handle: Callable[[Sequence[UsageRecord]], Awaitable[int]],
) -> Figure:
    """Publish every record to a subscribed but held consumer, then time it draining them."""
    handled = 0
    gate = asyncio.Event()

    async def consumer(batch: Sequence[UsageRecord]) -> None:
        nonlocal handled
        await gate.wait()
        handled += await handle(batch)

    subscription = await stream.subscribe("bench", consumer)
    start = time.perf_counter()
    for i in range(0, len(records), 5000):
        await stream.publish(records[i : i + 5000])
    published = time.perf_counter() - start
    start = time.perf_counter()
    gate.set()
    await _until(lambda: handled >= len(records))
    drained = time.perf_counter() - start
    await subscription.stop()
    return Figure(label, len(records), published, drained)


async def nothing(batch: Sequence[UsageRecord]) -> int:
    return len(batch)


def storing(usage: UsageIngestion) -> Callable[[Sequence[UsageRecord]], Awaitable[int]]:
    async def handle(batch: Sequence[UsageRecord]) -> int:
        result = await usage.ingest_records(batch)
        return result.stored + result.duplicates

    return handle


async def nats_ingestion(
    usage: UsageIngestion,
    records: Sequence[CallRecord],
    *,
    per_message: int = 1,
    publish_stored: bool = True,
) -> Figure:
    """Raw callwarden JSON to the input subject (one record per message, or a JSON array of
    `per_message`), drained by the ingestion consumer into the store, which publishes what it
    stored to the record subject as in production unless `publish_stored` is off."""
    stream = _jetstream()
    usage.publisher = stream if publish_stored else None
    lines = [json.dumps(to_json(r)) for r in records]
    texts = ["\n".join(lines[i : i + per_message]) for i in range(0, len(lines), per_message)]
    try:
        start = time.perf_counter()
        for i in range(0, len(texts), 5000):
            await stream.publish_raw(UsageFormat.CALLWARDEN_JSON, texts[i : i + 5000])
        published = time.perf_counter() - start
        stored = 0

        async def ingest(fmt: UsageFormat, items: Sequence[RawItem]) -> None:
            nonlocal stored
            result = await usage.ingest(fmt, items)
            stored += result.stored + result.duplicates

        start = time.perf_counter()
        subscription = await stream.consume_raw(ingest)
        await _until(lambda: stored >= len(records))
        drained = time.perf_counter() - start
        await subscription.stop()
    finally:
        usage.publisher = None
        await stream.delete()
    unit = "1 record" if per_message == 1 else f"{per_message:,} records"
    then = "store + publish" if publish_stored else "store"
    return Figure(f"NATS ingestion, {unit}/message -> {then}", len(records), published, drained)


async def direct(usage: UsageIngestion, records: Sequence[CallRecord]) -> Figure:
    """No stream: the raw units ingested straight from memory."""
    items = [RawItem(json.dumps(to_json(r)), f"item {i}") for i, r in enumerate(records)]
    start = time.perf_counter()
    stored = 0
    for i in range(0, len(items), 500):
        result = await usage.ingest(UsageFormat.CALLWARDEN_JSON, items[i : i + 500])
        stored += result.stored
    drained = time.perf_counter() - start
    assert stored == len(records), f"stored {stored} of {len(records)}"
    return Figure(
        "no stream (ingest raw JSON from memory, batches of 500)", len(records), None, drained
    )


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A fresh SQLite file or PostgreSQL database, removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    name = f"callwarden_bench_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _seed(platform: Platform, tenants: int) -> list[str]:
    gov = platform.governance
    plan = gov.create_plan(
        SYSTEM,
        name="Bench",
        billing=Billing.METERED,
        channels=[Channel.VOICE],
        currency="EUR",
        limits=PlanLimits(),
    )
    return [
        gov.create_tenant(
            SYSTEM, name=f"Tenant {i}", country="GB", timezone="Europe/London", plan_id=plan.id
        ).id
        for i in range(tenants)
    ]


INGESTION_PATHS: tuple[tuple[int, bool], ...] = (
    (1, False),
    (100, False),
    (1000, False),
    (1, True),
    (100, True),
    (1000, True),
)
"""(records per input message, stored records published on) for each NATS ingestion path."""


async def into_store(kind: str, n: int, batch: int, run_no: int) -> list[Figure]:
    """Every storing path on one kind of database, each with records of its own."""
    figures: list[Figure] = []
    with database(kind) as url:
        platform = Platform.build(Settings(database_url=url))
        try:
            tenants = _seed(platform, 20)
            usage = UsageIngestion(SqlUsageStore(platform.store.engine), batch_size=10_000)
            figures.append(await direct(usage, _records(n, tenants, f"direct{run_no}")))
            memory = InProcessStream(max_pending=n, batch_size=batch)
            figures.append(
                await through(
                    memory,
                    "in-process stream -> ingest_records",
                    _records(n, tenants, f"mem{run_no}"),
                    storing(usage),
                )
            )
            await memory.close()
            js = _jetstream(batch_size=batch)
            try:
                figures.append(
                    await through(
                        js,
                        "JetStream -> ingest_records",
                        _records(n, tenants, f"js{run_no}"),
                        storing(usage),
                    )
                )
            finally:
                await js.delete()
            for per_message, publish_stored in INGESTION_PATHS:
                figures.append(
                    await nats_ingestion(
                        usage,
                        _records(n, tenants, f"raw{run_no}-{per_message}{publish_stored:d}"),
                        per_message=per_message,
                        publish_stored=publish_stored,
                    )
                )
        finally:
            platform.close()
    return figures


@dataclass(frozen=True, slots=True)
class Summary:
    """One path over every repeat: median rates and the median ratio to the same run's
    bare JetStream drain."""

    path: str
    publish_rate: float | None
    drain_rate: float
    drain_low: float
    drain_high: float
    ratio: float


def _summaries(runs: Sequence[tuple[Figure, Sequence[Figure]]]) -> list[Summary]:
    """Medians per path over the repeats; each run's ratio is to its own baseline."""
    by_path: dict[str, list[tuple[Figure, Figure]]] = {}
    for baseline, figures in runs:
        for f in figures:
            by_path.setdefault(f.path, []).append((f, baseline))
    out = []
    for path, pairs in by_path.items():
        drains = [f.drain_rate for f, _ in pairs]
        publishes = [f.publish_rate for f, _ in pairs if f.publish_rate is not None]
        out.append(
            Summary(
                path,
                statistics.median(publishes) if publishes else None,
                statistics.median(drains),
                min(drains),
                max(drains),
                statistics.median(f.drain_rate / b.drain_rate for f, b in pairs),
            )
        )
    return out


def _print(title: str, summaries: Sequence[Summary]) -> None:
    print(f"\n{title}")
    print(f"{'path':52} {'publish/s':>10} {'drain/s':>9} {'(lowest-highest)':>17} {'x bare':>7}")
    for f in summaries:
        pub = f"{f.publish_rate:,.0f}" if f.publish_rate else "-"
        spread = f"{f.drain_low:,.0f}-{f.drain_high:,.0f}"
        print(f"{f.path:52} {pub:>10} {f.drain_rate:>9,.0f} {spread:>17} {f.ratio:>7.2f}")


async def run(n: int, batch: int, postgres: bool, repeats: int) -> int:
    """Every path `repeats` times (each repeat with its own baseline), then the medians."""
    print(
        f"{n:,} call records per path, consumer batches of {batch} messages, "
        f"medians of {repeats} runs (load {os.getloadavg()[0]:.1f} at the start)"
    )
    records = _records(n, ["tn_bench"], "plain")
    payloads = [json.dumps(to_json(r)).encode() for r in records]
    kinds = ("sqlite", "postgres") if postgres else ("sqlite",)
    bare_runs: list[tuple[Figure, Sequence[Figure]]] = []
    store_runs: dict[str, list[tuple[Figure, Sequence[Figure]]]] = {k: [] for k in kinds}
    for run_no in range(repeats):
        bare = await bare_jetstream(payloads, batch)
        js = _jetstream(batch_size=batch)
        try:
            js_only = await through(js, "JetStreamStream (no storage)", records, nothing)
        finally:
            await js.delete()
        memory = InProcessStream(max_pending=n, batch_size=batch)
        memory_only = await through(memory, "InProcessStream (no storage)", records, nothing)
        await memory.close()
        bare_runs.append((bare, [bare, js_only, memory_only]))
        for kind in kinds:
            store_runs[kind].append((bare, await into_store(kind, n, batch, run_no)))
    _print(
        "Streams without storage (x bare: to bare JetStream in the same run)", _summaries(bare_runs)
    )
    for kind in kinds:
        summaries = _summaries(store_runs[kind])
        _print(f"Into the store on {kind} (x bare: to bare JetStream in the same run)", summaries)
        for f in summaries:
            if f.path.startswith("NATS ingestion"):
                verdict = "met" if f.drain_rate >= 20_000 else "not met"
                print(f"target >= 20,000/s into {kind}, {f.path}: {verdict}")
    print(f"load {os.getloadavg()[0]:.1f} at the end")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the options and run every path."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=50_000, help="records per path")
    parser.add_argument("--batch", type=int, default=500, help="consumer batch size")
    parser.add_argument("--quick", action="store_true", help="10,000 records per path")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every path (medians)")
    args = parser.parse_args(argv)
    n, repeats = (10_000, 1) if args.quick else (args.records, args.repeats)
    return asyncio.run(run(n, args.batch, not args.no_postgres, repeats))


if __name__ == "__main__":
    raise SystemExit(main())
