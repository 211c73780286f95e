"""Micro-benchmark of the counters hot path: in-process against Redis, in one run.

Measures, on each backend:

- ``acquire+release``: one call's concurrency leases on four keys (tenant, user, number, trunk),
  then their release: the per-call LIM-2 work of admission (two scripts on Redis);
- ``hit_rates``: one attempt against three GCRA rates (tenant, user, source address), LIM-5;
- ``count_in_window``: one repeat-call check with recording, DIA-4.

Each is run two ways: sequentially (one call awaited at a time, no pipelining, so Redis pays a
full round trip per script: this is the single-call latency admission sees) and with 32 calls in
flight (throughput of one instance). Every figure is the median of several repeats; the last
column is the ratio Redis / in-process for the same measurement.

A bare PING through the same client stack is printed as the floor every Redis call pays.

Run: ``python -m bench.counters [--redis-url redis://127.0.0.1:6379/0] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from callwarden.adapters.counters.memory import MemoryCounters
from callwarden.adapters.counters.redis import RedisCounters
from callwarden.core.counters import Counters, CountersUnavailable, LeaseClaim, RateCheck
from callwarden.core.limits import Rate

CLAIMS = [
    LeaseClaim("tenant", 1_000_000),
    LeaseClaim("user:42", 1_000_000),
    LeaseClaim("number:+48221234567", 1_000_000),
    LeaseClaim("trunk:7", 1_000_000),
]
CHECKS = [
    RateCheck("tenant", Rate(1_000_000, 1.0, burst=1000)),
    RateCheck("user:42", Rate(1_000_000, 1.0, burst=1000)),
    RateCheck("ip:192.0.2.1", Rate(1_000_000, 1.0, burst=1000)),
]
CONCURRENCY = 32

Op = Callable[[Counters, int], Awaitable[None]]


async def acquire_release(counters: Counters, i: int) -> None:
    """One call's leases on four keys, then their release."""
    call_id = f"call-{i}"
    now = time.time()
    out = await counters.acquire_leases("bench", call_id, CLAIMS, 60.0, now)
    assert out.acquired
    await counters.release_leases("bench", call_id)


async def hit_rates(counters: Counters, i: int) -> None:
    """One attempt against three rates."""
    await counters.hit_rates("bench", CHECKS, time.time())


async def count_in_window(counters: Counters, i: int) -> None:
    """One repeat-call check on one of 1000 destinations, recording it."""
    await counters.count_in_window(
        "bench", f"dst:{i % 1000}", 86400.0, 1_000_000, time.time(), True
    )


OPS: dict[str, Op] = {
    "acquire+release": acquire_release,
    "hit_rates": hit_rates,
    "count_in_window": count_in_window,
}


async def sequential(counters: Counters, op: Op, seconds: float) -> tuple[float, list[float]]:
    """Run ``op`` one at a time for about ``seconds``; return ops/s and per-op latencies."""
    latencies: list[float] = []
    start = time.perf_counter()
    i = 0
    while True:
        t = time.perf_counter()
        await op(counters, i)
        latencies.append(time.perf_counter() - t)
        i += 1
        if i % 64 == 0 and time.perf_counter() - start >= seconds:
            break
    return i / (time.perf_counter() - start), latencies


async def concurrent(counters: Counters, op: Op, seconds: float) -> float:
    """Run ``op`` from ``CONCURRENCY`` tasks for about ``seconds``; return ops/s."""
    deadline = time.perf_counter() + seconds
    done = 0

    async def worker(w: int) -> None:
        nonlocal done
        i = w * 10_000_000
        while time.perf_counter() < deadline:
            await op(counters, i)
            i += 1
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    return done / (time.perf_counter() - start)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(counters: Counters, repeats: int, seconds: float) -> dict[str, dict[str, float]]:
    """Median figures per operation for one backend."""
    results: dict[str, dict[str, float]] = {}
    for name, op in OPS.items():
        await sequential(counters, op, seconds / 4)  # warm-up: connections, script cache
        seq, conc, p50, p99 = [], [], [], []
        for _ in range(repeats):
            rate, lat = await sequential(counters, op, seconds)
            seq.append(rate)
            p50.append(percentile(lat, 0.50) * 1e6)
            p99.append(percentile(lat, 0.99) * 1e6)
            conc.append(await concurrent(counters, op, seconds))
        results[name] = {
            "seq_ops": statistics.median(seq),
            "p50_us": statistics.median(p50),
            "p99_us": statistics.median(p99),
            "conc_ops": statistics.median(conc),
        }
    return results


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="per repeat and measurement")
    args = parser.parse_args(argv)

    memory = MemoryCounters()
    figures = {"memory": await measure(memory, args.repeats, args.seconds)}
    await memory.close()

    prefix = f"cwbench-{uuid.uuid4().hex[:12]}"
    redis = RedisCounters.from_url(args.redis_url, socket_timeout=2.0, prefix=prefix)
    try:
        figures["redis"] = await measure(redis, args.repeats, args.seconds)
    except CountersUnavailable as exc:
        print(f"redis: unavailable ({exc}); in-process figures only", file=sys.stderr)
    finally:
        keys = [k async for k in redis.client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await redis.client.delete(*keys)
        await redis.close()

    ping_floor = None
    if "redis" in figures:
        ping_floor = await ping_latency(args.redis_url, args.repeats, args.seconds)

    print(
        f"counters micro-benchmark: median of {args.repeats} repeats x {args.seconds}s; "
        f"concurrent = {CONCURRENCY} calls in flight"
    )
    header = f"{'operation':<17} {'backend':<8} {'seq ops/s':>11} {'p50 us':>8} {'p99 us':>8}"
    print(header + f" {'conc ops/s':>11}")
    for name in OPS:
        for backend, res in figures.items():
            r = res[name]
            print(
                f"{name:<17} {backend:<8} {r['seq_ops']:>11,.0f} {r['p50_us']:>8.1f} "
                f"{r['p99_us']:>8.1f} {r['conc_ops']:>11,.0f}"
            )
        if "redis" in figures:
            m, r = figures["memory"][name], figures["redis"][name]
            print(
                f"{'':<17} {'ratio':<8} {r['seq_ops'] / m['seq_ops']:>11.3f} "
                f"{r['p50_us'] / m['p50_us']:>8.1f} {r['p99_us'] / m['p99_us']:>8.1f} "
                f"{r['conc_ops'] / m['conc_ops']:>11.3f}   (redis / in-process)"
            )
    if ping_floor is not None:
        print(
            f"floor: redis-py asyncio PING round trip, sequential: p50 {ping_floor[0]:.1f} us, "
            f"p99 {ping_floor[1]:.1f} us (client + network cost every script call pays)"
        )
    return 0


async def ping_latency(url: str, repeats: int, seconds: float) -> tuple[float, float]:
    """Median p50/p99 of a bare PING through the same client stack: the round-trip floor."""
    counters = RedisCounters.from_url(url, socket_timeout=2.0)
    p50, p99 = [], []
    try:
        for _ in range(repeats):
            latencies: list[float] = []
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                t = time.perf_counter()
                await counters.client.ping()
                latencies.append(time.perf_counter() - t)
            p50.append(percentile(latencies, 0.50) * 1e6)
            p99.append(percentile(latencies, 0.99) * 1e6)
    finally:
        await counters.close()
    return statistics.median(p50), statistics.median(p99)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
