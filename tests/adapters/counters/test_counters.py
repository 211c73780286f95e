"""Counters (LIM-2 leases, LIM-5 rates, DIA-4 repeat windows) on both backends.

Every behavioural test runs on the in-process counters and on the Redis counters against the
real server at 127.0.0.1:6379 (a random key prefix per test, deleted afterwards; nothing else on
the server is touched). Async code is driven by one ``asyncio.Runner`` per test, because a
redis.asyncio connection pool belongs to the loop that opened it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from redis.asyncio import Redis
from redis.crc import key_slot

from callwarden.adapters.counters import counters_from_url
from callwarden.adapters.counters.memory import MemoryCounters
from callwarden.adapters.counters.redis import RedisCounters
from callwarden.core.counters import (
    Counters,
    CountersUnavailable,
    LeaseClaim,
    LeaseOutcome,
    RateCheck,
    RateOutcome,
    WindowOutcome,
)
from callwarden.core.limits import Rate, from_micros, gcra_all, to_micros

REDIS_URL = "redis://127.0.0.1:6379/0"
T0 = 1_700_000_000.0
T0_US = to_micros(T0)
KINDS = ["memory", pytest.param("redis", marks=pytest.mark.redis)]

R = TypeVar("R")


class Backend:
    """Makes counters of one kind that share state (two Redis clients on one prefix, or the
    same in-process object) and removes everything they stored afterwards."""

    def __init__(self, kind: str, *, ttl_slack_s: float = 600.0) -> None:
        self.kind = kind
        self.prefix = f"cwtest-{uuid.uuid4().hex[:16]}"
        self.ttl_slack_s = ttl_slack_s
        self.instances: list[Counters] = []
        self._memory: MemoryCounters | None = None

    def new(self) -> Counters:
        if self.kind == "memory":
            if self._memory is None:
                self._memory = MemoryCounters()
                self.instances.append(self._memory)
            return self._memory
        counters = RedisCounters.from_url(
            REDIS_URL, socket_timeout=2.0, prefix=self.prefix, ttl_slack_s=self.ttl_slack_s
        )
        self.instances.append(counters)
        return counters

    async def aclose(self) -> None:
        for counters in self.instances:
            await counters.close()
        if self.kind == "redis":
            await purge(self.prefix)


async def redis_keys(prefix: str) -> list[bytes]:
    client = Redis.from_url(REDIS_URL)
    try:
        return [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    finally:
        await client.aclose()


async def purge(prefix: str) -> None:
    keys = await redis_keys(prefix)
    if keys:
        client = Redis.from_url(REDIS_URL)
        try:
            await client.delete(*keys)
        finally:
            await client.aclose()


class Loop:
    """Runs coroutines on one event loop for the whole test."""

    def __init__(self, runner: asyncio.Runner) -> None:
        self._runner = runner

    def __call__(self, awaitable: Awaitable[R]) -> R:
        return self._runner.run(_wait(awaitable))


async def _wait(awaitable: Awaitable[R]) -> R:
    return await awaitable


@pytest.fixture
def run() -> Iterator[Loop]:
    with asyncio.Runner() as runner:
        yield Loop(runner)


@pytest.fixture(params=KINDS)
def backend(request: pytest.FixtureRequest, run: Loop) -> Iterator[Backend]:
    b = Backend(request.param)
    yield b
    run(b.aclose())


@pytest.fixture
def counters(backend: Backend) -> Counters:
    return backend.new()


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


# -- leases (LIM-2) --------------------------------------------------------------------------


def test_acquire_counts_and_names_the_first_full_key(counters: Counters, run: Loop) -> None:
    t = tenant()
    claims = [LeaseClaim("tenant", 2), LeaseClaim("user:1", 1)]
    first = run(counters.acquire_leases(t, "c1", claims, 60, T0))
    assert first == LeaseOutcome(True, None, (1, 1), T0 + 60, False)
    second = run(counters.acquire_leases(t, "c2", claims, 60, T0))
    assert second == LeaseOutcome(False, "user:1", (1, 1), None, False)
    third = run(counters.acquire_leases(t, "c3", [LeaseClaim("tenant", 2)], 60, T0))
    assert third.acquired and third.counts == (2,)
    fourth = run(counters.acquire_leases(t, "c4", [LeaseClaim("tenant", 2)], 60, T0))
    assert fourth.full_key == "tenant"
    assert run(counters.calls_holding(t, T0)) == ["c1", "c3"]


def test_acquire_is_all_or_nothing(counters: Counters, run: Loop) -> None:
    t = tenant()
    run(counters.acquire_leases(t, "c1", [LeaseClaim("trunk:7", 1)], 60, T0))
    claims = [LeaseClaim("tenant", 5), LeaseClaim("user:1", 5), LeaseClaim("trunk:7", 1)]
    out = run(counters.acquire_leases(t, "c2", claims, 60, T0))
    assert not out.acquired and out.full_key == "trunk:7"
    assert run(counters.active_leases(t, "tenant", T0)) == 0
    assert run(counters.active_leases(t, "user:1", T0)) == 0
    assert run(counters.calls_holding(t, T0)) == ["c1"]


def test_acquire_is_idempotent_per_call_id(counters: Counters, run: Loop) -> None:
    t = tenant()
    claims = [LeaseClaim("tenant", 1), LeaseClaim("number:+48221234567", 1)]
    assert run(counters.acquire_leases(t, "c1", claims, 30, T0)).acquired
    again = run(counters.acquire_leases(t, "c1", claims, 30, T0 + 1))
    assert again == LeaseOutcome(True, None, (1, 1), T0 + 31, True)
    assert run(counters.active_leases(t, "tenant", T0 + 1)) == 1
    assert run(counters.release_leases(t, "c1"))
    assert run(counters.active_leases(t, "tenant", T0 + 1)) == 0


def test_reacquire_adds_only_new_keys(counters: Counters, run: Loop) -> None:
    t = tenant()
    assert run(counters.acquire_leases(t, "c1", [LeaseClaim("tenant", 1)], 30, T0)).acquired
    out = run(
        counters.acquire_leases(
            t, "c1", [LeaseClaim("user:1", 1), LeaseClaim("tenant", 1)], 30, T0 + 1
        )
    )
    assert out == LeaseOutcome(True, None, (1, 1), T0 + 31, False)
    assert run(counters.release_leases(t, "c1"))
    assert run(counters.active_leases(t, "user:1", T0 + 1)) == 0
    assert run(counters.active_leases(t, "tenant", T0 + 1)) == 0


def test_reacquire_moves_every_lease_of_the_call_to_the_new_expiry(
    counters: Counters, run: Loop
) -> None:
    t = tenant()
    assert run(counters.acquire_leases(t, "c1", [LeaseClaim("tenant", 5)], 10, T0)).acquired
    out = run(counters.acquire_leases(t, "c1", [LeaseClaim("trunk", 5)], 30, T0 + 5))
    assert out.expires_at == T0 + 35
    assert run(counters.active_leases(t, "tenant", T0 + 34)) == 1
    out = run(counters.acquire_leases(t, "c1", [LeaseClaim("trunk", 5)], 1, T0 + 6))
    assert out.already_held
    assert run(counters.active_leases(t, "tenant", T0 + 7)) == 0
    assert run(counters.active_leases(t, "trunk", T0 + 7)) == 0


def test_a_refusal_does_not_extend_held_leases(counters: Counters, run: Loop) -> None:
    t = tenant()
    assert run(counters.acquire_leases(t, "c1", [LeaseClaim("tenant", 5)], 10, T0)).acquired
    claims = [LeaseClaim("tenant", 5), LeaseClaim("blocked", 0)]
    assert run(counters.acquire_leases(t, "c1", claims, 10, T0 + 5)).full_key == "blocked"
    assert run(counters.active_leases(t, "tenant", T0 + 9.999)) == 1
    assert run(counters.active_leases(t, "tenant", T0 + 10)) == 0


def test_leases_expire_unless_renewed(counters: Counters, run: Loop) -> None:
    t = tenant()
    claims = [LeaseClaim("tenant", 1)]
    assert run(counters.acquire_leases(t, "c1", claims, 10, T0)).acquired
    assert run(counters.renew_leases(t, "c1", 10, T0 + 9))
    assert run(counters.active_leases(t, "tenant", T0 + 18.9)) == 1
    assert run(counters.acquire_leases(t, "c2", claims, 10, T0 + 18.9)).full_key == "tenant"
    # the call-end event was lost: capacity comes back at the expiry
    assert run(counters.active_leases(t, "tenant", T0 + 19)) == 0
    assert run(counters.calls_holding(t, T0 + 19)) == []
    assert not run(counters.renew_leases(t, "c1", 10, T0 + 19))
    assert run(counters.acquire_leases(t, "c2", claims, 10, T0 + 19)).acquired


def test_release_is_exact_and_repeatable(counters: Counters, run: Loop) -> None:
    t = tenant()
    c1 = [LeaseClaim("tenant", 5), LeaseClaim("user:1", 5)]
    c2 = [LeaseClaim("tenant", 5), LeaseClaim("user:2", 5)]
    assert run(counters.acquire_leases(t, "c1", c1, 60, T0)).acquired
    assert run(counters.acquire_leases(t, "c2", c2, 60, T0)).acquired
    assert run(counters.release_leases(t, "c1"))
    assert not run(counters.release_leases(t, "c1"))
    assert not run(counters.release_leases(t, "never-seen", T0))
    assert run(counters.active_leases(t, "tenant", T0)) == 1
    assert run(counters.active_leases(t, "user:1", T0)) == 0
    assert run(counters.active_leases(t, "user:2", T0)) == 1
    assert not run(counters.renew_leases(t, "c1", 60, T0))


def test_release_with_now_does_not_count_expired_leases(counters: Counters, run: Loop) -> None:
    t = tenant()
    assert run(counters.acquire_leases(t, "c1", [LeaseClaim("tenant", 1)], 5, T0)).acquired
    assert not run(counters.release_leases(t, "c1", T0 + 5))
    assert not run(counters.release_leases(t, "c1"))


def test_tenants_are_isolated(counters: Counters, run: Loop) -> None:
    a, b = tenant(), tenant()
    claims = [LeaseClaim("tenant", 1)]
    assert run(counters.acquire_leases(a, "c1", claims, 60, T0)).acquired
    assert run(counters.acquire_leases(b, "c1", claims, 60, T0)).acquired
    assert run(counters.release_leases(a, "c1"))
    assert run(counters.calls_holding(b, T0)) == ["c1"]


def test_concurrent_acquires_from_two_instances_never_exceed_the_limit(
    backend: Backend, run: Loop
) -> None:
    a, b = backend.new(), backend.new()
    t = tenant()
    claims = [LeaseClaim("tenant", 7), LeaseClaim("trunk", 100)]

    async def storm() -> list[LeaseOutcome]:
        jobs = [
            (a if i % 2 else b).acquire_leases(t, f"c{i}", claims, 60, T0 + i * 1e-4)
            for i in range(60)
        ]
        return list(await asyncio.gather(*jobs))

    outcomes = run(storm())
    assert sum(o.acquired for o in outcomes) == 7
    assert run(a.active_leases(t, "tenant", T0 + 1)) == 7
    assert run(b.active_leases(t, "trunk", T0 + 1)) == 7


def test_memory_counters_are_thread_safe() -> None:
    counters = MemoryCounters()
    results: list[bool] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        async def go() -> list[bool]:
            out = []
            for i in range(40):
                cid = f"w{n}-{i}"
                got = await counters.acquire_leases("t", cid, [LeaseClaim("k", 10)], 60, T0)
                out.append(got.acquired)
                if got.acquired and i % 3 == 0:
                    assert await counters.release_leases("t", cid)
            return out

        res = asyncio.run(go())
        with lock:
            results.extend(res)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    held = asyncio.run(counters.active_leases("t", "k", T0))
    assert held == 10
    assert len(asyncio.run(counters.calls_holding("t", T0))) == 10


# -- rates (LIM-5) ---------------------------------------------------------------------------


def test_hit_rates_consumes_nothing_when_refused(counters: Counters, run: Loop) -> None:
    t = tenant()
    checks = [RateCheck("tenant", Rate(10, 1.0)), RateCheck("ip:192.0.2.1", Rate(1, 1.0))]
    assert run(counters.hit_rates(t, checks, T0)) == RateOutcome(True, None, 0.0)
    refused = run(counters.hit_rates(t, checks, T0 + 0.1))
    assert refused.key == "ip:192.0.2.1"
    assert refused.retry_after == pytest.approx(0.9)
    # the tenant rate was not consumed by the refused attempt
    assert run(counters.hit_rates(t, checks[:1], T0 + 0.1)).allowed
    assert not run(counters.hit_rates(t, checks[:1], T0 + 0.1)).allowed


def test_hit_rates_retry_after_covers_every_refusing_check(counters: Counters, run: Loop) -> None:
    t = tenant()
    checks = [RateCheck("user:1", Rate(2, 1.0)), RateCheck("tenant", Rate(1, 10.0))]
    assert run(counters.hit_rates(t, checks, T0)).allowed
    out = run(counters.hit_rates(t, checks, T0))
    assert out.key == "user:1"
    assert out.retry_after == pytest.approx(10.0)
    assert run(counters.hit_rates(t, checks, T0 + 10)).allowed


def test_hit_rates_retry_after_is_exact(counters: Counters, run: Loop) -> None:
    t = tenant()
    checks = [RateCheck("user:1", Rate(3, 1.0, burst=1))]
    assert run(counters.hit_rates(t, checks, T0)).allowed
    assert run(counters.hit_rates(t, checks, T0)).allowed
    refused = run(counters.hit_rates(t, checks, T0))
    assert refused.retry_after == 0.333334
    assert not run(counters.hit_rates(t, checks, T0 + 0.333333)).allowed
    assert run(counters.hit_rates(t, checks, T0 + 0.333334)).allowed


def test_hit_rates_burst(counters: Counters, run: Loop) -> None:
    t = tenant()
    checks = [RateCheck("tenant", Rate.parse("60/minute+4"))]
    got = [run(counters.hit_rates(t, checks, T0)).allowed for _ in range(7)]
    assert got == [True] * 5 + [False] * 2


# -- rolling windows (DIA-4) -----------------------------------------------------------------


def test_window_caps_repeat_calls_and_rolls(counters: Counters, run: Loop) -> None:
    t = tenant()
    day = 86400.0
    midnight = 1_700_006_400.0  # 2023-11-15 00:00:00 UTC
    key = "dst:+48221234567"
    first = run(counters.count_in_window(t, key, day, 2, midnight - 60, True))
    assert first == WindowOutcome(True, 1, 2, 0.0)
    assert run(counters.count_in_window(t, key, day, 2, midnight - 30, True)).count == 2
    # no reset at midnight: the window is the 24 hours before now
    late = run(counters.count_in_window(t, key, day, 2, midnight + 60, True))
    assert late == WindowOutcome(False, 2, 2, day - 120)
    assert run(counters.count_in_window(t, key, day, 2, midnight - 60 + day, True)).admitted


def test_window_without_record_only_looks(counters: Counters, run: Loop) -> None:
    t = tenant()
    for _ in range(3):
        out = run(counters.count_in_window(t, "dst", 60.0, 1, T0, False))
        assert out == WindowOutcome(True, 0, 1, 0.0)
    assert run(counters.count_in_window(t, "dst", 60.0, 1, T0, True)).admitted
    assert not run(counters.count_in_window(t, "dst", 60.0, 1, T0, False)).admitted


def test_window_storage_is_bounded_by_the_limit(backend: Backend, run: Loop) -> None:
    counters = backend.new()
    t = tenant()
    for i in range(10):
        run(counters.count_in_window(t, "dst", 3600.0, 5, T0 + i, True))
    # a lower limit trims to the newest entries; the count never exceeds it
    out = run(counters.count_in_window(t, "dst", 3600.0, 2, T0 + 20, True))
    assert out == WindowOutcome(False, 2, 2, 3600.0 - 17)
    if isinstance(counters, RedisCounters):
        key = counters.tenant_prefix(t) + "win:dst"
        assert run(counters.client.zcard(key)) == 2


# -- validation, URL selection ---------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.acquire_leases("", "c", [LeaseClaim("k", 1)], 10, T0),
        lambda c: c.acquire_leases("t{x}", "c", [LeaseClaim("k", 1)], 10, T0),
        lambda c: c.acquire_leases("t", "", [LeaseClaim("k", 1)], 10, T0),
        lambda c: c.acquire_leases("t", "c", [], 10, T0),
        lambda c: c.acquire_leases("t", "c", [LeaseClaim("k", 1), LeaseClaim("k", 2)], 10, T0),
        lambda c: c.acquire_leases("t", "c", [LeaseClaim("k", -1)], 10, T0),
        lambda c: c.acquire_leases("t", "c", [LeaseClaim("k", 1)], 0, T0),
        lambda c: c.acquire_leases("t", "c", [LeaseClaim("k", 1)], 10, float("nan")),
        lambda c: c.renew_leases("t", "c", float("inf"), T0),
        lambda c: c.active_leases("t", "", T0),
        lambda c: c.hit_rates("t", [], T0),
        lambda c: c.hit_rates("t", [RateCheck("k", Rate(1, 1)), RateCheck("k", Rate(2, 1))], T0),
        lambda c: c.count_in_window("t", "k", 0, 1, T0, True),
        lambda c: c.count_in_window("t", "k", 10, 0, T0, True),
    ],
)
def test_invalid_arguments_raise_value_error(counters: Counters, run: Loop, call: Any) -> None:
    with pytest.raises(ValueError):
        run(call(counters))


def test_counters_from_url(run: Loop) -> None:
    memory = counters_from_url("memory://")
    assert isinstance(memory, MemoryCounters)
    redis = counters_from_url("redis://127.0.0.1:6379/3?socket_timeout=0.05&prefix=cwx")
    assert isinstance(redis, RedisCounters)
    assert redis.prefix == "cwx"
    kwargs = redis.client.connection_pool.connection_kwargs
    assert (kwargs["db"], kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (
        3,
        0.05,
        0.05,
    )
    run(redis.close())
    run(memory.close())
    for bad in ["postgresql://localhost/x", "redis:///0", "memory://?prefix=x", "bogus"]:
        with pytest.raises(ValueError):
            counters_from_url(bad)
    with pytest.raises(ValueError, match="option"):
        counters_from_url("redis://localhost?socket_timeout=soon")


def test_closed_memory_counters_are_unavailable(run: Loop) -> None:
    counters = MemoryCounters()
    run(counters.close())
    with pytest.raises(CountersUnavailable):
        run(counters.active_leases("t", "k", T0))


def test_memory_forgets_everything_expired(run: Loop) -> None:
    counters = MemoryCounters(sweep_interval_s=30)
    for i in range(50):
        t = f"t{i}"
        run(counters.acquire_leases(t, "c", [LeaseClaim("k", 1)], 10, T0))
        run(counters.hit_rates(t, [RateCheck(f"ip:{i}", Rate(1, 5.0))], T0))
        run(counters.count_in_window(t, "dst", 20.0, 3, T0, True))
    assert counters.size() == 200
    # untouched keys go at the next periodic sweep, driven by any caller's clock
    run(counters.active_leases("other", "k", T0 + 31))
    assert counters.size() == 0


# -- Redis specifics -------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_keys_share_one_slot_and_all_expire(run: Loop) -> None:
    backend = Backend("redis", ttl_slack_s=5.0)
    counters = backend.new()
    assert isinstance(counters, RedisCounters)
    t = "tenant-42"
    try:
        claims = [LeaseClaim("tenant", 5), LeaseClaim("user:1", 1)]
        run(counters.acquire_leases(t, "c1", claims, 30, T0))
        run(counters.acquire_leases(t, "c2", claims[:1], 30, T0))
        run(counters.release_leases(t, "c2"))
        run(counters.hit_rates(t, [RateCheck("ip:192.0.2.1", Rate(10, 1.0))], T0))
        run(counters.count_in_window(t, "dst:1", 86400.0, 3, T0, True))
        keys = run(redis_keys(backend.prefix))
        assert len(keys) == 6  # 2 lease keys, call record, calls index, rate, window
        assert all(k.startswith(f"{backend.prefix}:{{t:{t}}}:".encode()) for k in keys)
        assert len({key_slot(k) for k in keys}) == 1
        ttls: dict[bytes, int] = {k: run(counters.client.pttl(k)) for k in keys}
        assert all(ms > 0 for ms in ttls.values()), ttls
        assert all(ms <= 86400_000 + 5_000 for ms in ttls.values()), ttls
        run(counters.release_leases(t, "c1"))
        assert len(run(redis_keys(backend.prefix))) == 2  # leases leave no key behind
    finally:
        run(backend.aclose())


async def _every_operation(counters: Counters) -> list[str]:
    failures = []
    ops = [
        counters.acquire_leases("t", "c", [LeaseClaim("k", 1)], 10, T0),
        counters.renew_leases("t", "c", 10, T0),
        counters.release_leases("t", "c"),
        counters.active_leases("t", "k", T0),
        counters.calls_holding("t", T0),
        counters.hit_rates("t", [RateCheck("k", Rate(1, 1))], T0),
        counters.count_in_window("t", "k", 10, 1, T0, True),
    ]
    for op in ops:
        try:
            await op
        except CountersUnavailable:
            failures.append("unavailable")
    return failures


def test_redis_down_raises_counters_unavailable_promptly(run: Loop) -> None:
    counters = counters_from_url("redis://127.0.0.1:1/0?socket_timeout=0.2")
    start = time.perf_counter()
    assert run(_every_operation(counters)) == ["unavailable"] * 7
    assert time.perf_counter() - start < 2.0
    run(counters.close())


def test_redis_hung_server_times_out_into_counters_unavailable(run: Loop) -> None:
    # A listening socket that never answers: connects succeed, replies never come.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(64)
        port = hung.getsockname()[1]
        counters = RedisCounters.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=0.1)
        start = time.perf_counter()
        assert run(_every_operation(counters)) == ["unavailable"] * 7
        elapsed = time.perf_counter() - start
        run(counters.close())
    assert elapsed < 7 * 0.1 * 2 + 1.0, elapsed


# -- property tests on both backends ---------------------------------------------------------

LIMITS = {"tenant": 3, "user:a": 1, "user:b": 2, "trunk": 2, "blocked": 0}
CALLS = [f"call-{i}" for i in range(4)]
TTLS = [0.5, 1.0, 3.0]


class LeaseMachine(RuleBasedStateMachine):
    """Random acquires, renews, releases, clock advances and expiries, on two instances that
    share state, checked after every step against a plain reference model."""

    kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.backend = Backend(self.kind)
        self.instances = [self.backend.new(), self.backend.new()]
        self.tenant = tenant()
        self.now_us = T0_US
        self.model: dict[str, tuple[int, frozenset[str]]] = {}

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        return self.runner.run(coro)

    @property
    def now(self) -> float:
        return from_micros(self.now_us)

    def live(self, call: str) -> bool:
        rec = self.model.get(call)
        return rec is not None and rec[0] > self.now_us

    def count(self, key: str) -> int:
        return sum(1 for exp, keys in self.model.values() if exp > self.now_us and key in keys)

    @rule(
        call=st.sampled_from(CALLS),
        keys=st.lists(st.sampled_from(sorted(LIMITS)), min_size=1, max_size=4, unique=True),
        ttl=st.sampled_from(TTLS),
        inst=st.integers(0, 1),
    )
    def acquire(self, call: str, keys: list[str], ttl: float, inst: int) -> None:
        claims = [LeaseClaim(k, LIMITS[k]) for k in keys]
        got = self.run(
            self.instances[inst].acquire_leases(self.tenant, call, claims, ttl, self.now)
        )
        if not self.live(call):
            self.model.pop(call, None)
        held = self.model[call][1] if call in self.model else frozenset()
        full = next((k for k in keys if k not in held and self.count(k) >= LIMITS[k]), None)
        if full is not None:
            expected = LeaseOutcome(False, full, tuple(self.count(k) for k in keys), None)
        else:
            expires = self.now_us + to_micros(ttl)
            already = all(k in held for k in keys)
            self.model[call] = (expires, held | frozenset(keys))
            counts = tuple(self.count(k) for k in keys)
            expected = LeaseOutcome(True, None, counts, from_micros(expires), already)
        assert got == expected

    @rule(call=st.sampled_from(CALLS), ttl=st.sampled_from(TTLS), inst=st.integers(0, 1))
    def renew(self, call: str, ttl: float, inst: int) -> None:
        got = self.run(self.instances[inst].renew_leases(self.tenant, call, ttl, self.now))
        if self.live(call):
            self.model[call] = (self.now_us + to_micros(ttl), self.model[call][1])
            assert got
        else:
            self.model.pop(call, None)
            assert not got

    @rule(call=st.sampled_from(CALLS), with_now=st.booleans(), inst=st.integers(0, 1))
    def release(self, call: str, with_now: bool, inst: int) -> None:
        now = self.now if with_now else None
        got = self.run(self.instances[inst].release_leases(self.tenant, call, now))
        was_live = self.live(call)
        rec = self.model.pop(call, None)
        if was_live:
            assert got
        elif rec is None or with_now:
            assert not got
        # an expired record released without a clock may still be reported as stored

    @rule(ms=st.integers(0, 1500))
    def advance(self, ms: int) -> None:
        self.now_us += ms * 1000

    @precondition(lambda self: any(exp > self.now_us for exp, _ in self.model.values()))
    @rule(data=st.data())
    def advance_to_an_expiry(self, data: st.DataObject) -> None:
        future = sorted(exp for exp, _ in self.model.values() if exp > self.now_us)
        self.now_us = data.draw(st.sampled_from(future)) - data.draw(st.sampled_from([0, 1]))

    @invariant()
    def counts_match_the_model_and_never_exceed_limits(self) -> None:
        for key, limit in LIMITS.items():
            active = self.run(self.instances[0].active_leases(self.tenant, key, self.now))
            assert active == self.count(key)
            assert active <= limit
        holding = self.run(self.instances[1].calls_holding(self.tenant, self.now))
        assert holding == sorted(c for c in self.model if self.live(c))

    def teardown(self) -> None:
        try:
            self.run(self.backend.aclose())
        finally:
            self.runner.close()


class RedisLeaseMachine(LeaseMachine):
    kind = "redis"


MACHINE_SETTINGS = settings(max_examples=35, stateful_step_count=30, deadline=None)
TestLeasesMemory = LeaseMachine.TestCase
TestLeasesMemory.settings = MACHINE_SETTINGS
TestLeasesRedis = pytest.mark.redis(RedisLeaseMachine.TestCase)
TestLeasesRedis.settings = MACHINE_SETTINGS

PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
rates = st.builds(
    Rate,
    count=st.integers(1, 10),
    period_s=st.sampled_from([0.5, 1.0, 2.0]),
    burst=st.integers(0, 4),
)


@PROPERTY
@given(
    rate_a=rates,
    rate_b=rates,
    steps=st.lists(
        st.tuples(
            st.one_of(st.integers(0, 300_000), st.sampled_from(["retry", "retry-1us"])),
            st.booleans(),
        ),
        min_size=1,
        max_size=50,
    ),
)
def test_gcra_never_admits_more_than_count_plus_burst(
    counters: Counters,
    run: Loop,
    rate_a: Rate,
    rate_b: Rate,
    steps: list[tuple[int | str, bool]],
) -> None:
    """Steps advance the clock by a gap in us, or jump exactly to (or 1 us before) the moment
    the last refusal said to retry: the boundary where an off-by-one would show."""
    t = tenant()
    both = [RateCheck("user:a", rate_a), RateCheck("ip:b", rate_b)]
    tats: dict[str, int | None] = {"user:a": None, "ip:b": None}
    admitted: dict[str, list[int]] = {"user:a": [], "ip:b": []}
    now_us = T0_US
    retry_at = now_us
    for gap, with_b in steps:
        if isinstance(gap, int):
            now_us += gap
        else:
            now_us = max(now_us, retry_at - (1 if gap == "retry-1us" else 0))
        checks = both if with_b else both[:1]
        got = run(counters.hit_rates(t, checks, from_micros(now_us)))
        ref = gcra_all(
            [tats[c.key] for c in checks],
            now_us,
            [(c.rate.interval_us, c.rate.tolerance_us) for c in checks],
        )
        if ref.allowed:
            assert got == RateOutcome(True, None, 0.0)
            for c, tat in zip(checks, ref.tats_us, strict=True):
                tats[c.key] = tat
                admitted[c.key].append(now_us)
        else:
            assert ref.refused_index is not None
            key = checks[ref.refused_index].key
            assert got == RateOutcome(False, key, from_micros(ref.retry_after_us))
            retry_at = now_us + ref.retry_after_us
    for c in both:
        times, period = admitted[c.key], to_micros(c.rate.period_s)
        for i, start in enumerate(times):
            in_window = sum(1 for x in times[i:] if x < start + period)
            assert in_window <= c.rate.count + c.rate.burst


@PROPERTY
@given(
    limit=st.integers(1, 5),
    window_ms=st.sampled_from([1, 250, 1000, 2500]),
    steps=st.lists(st.tuples(st.integers(0, 1200), st.booleans()), min_size=1, max_size=50),
)
def test_window_never_admits_more_than_the_limit(
    counters: Counters,
    run: Loop,
    limit: int,
    window_ms: int,
    steps: list[tuple[int, bool]],
) -> None:
    t = tenant()
    window_us = window_ms * 1000
    recorded: list[int] = []
    now_us = T0_US
    for gap_ms, record in steps:
        now_us += gap_ms * 1000
        got = run(
            counters.count_in_window(t, "dst", window_ms / 1000, limit, from_micros(now_us), record)
        )
        live = [x for x in recorded if x > now_us - window_us]
        naive = len(live)
        admitted = naive < limit
        count = naive + 1 if admitted and record else min(naive, limit)
        retry = 0 if admitted else live[naive - limit] + window_us - now_us
        assert got == WindowOutcome(admitted, count, limit, from_micros(retry))
        if admitted and record:
            recorded.append(now_us)
    for i, start in enumerate(recorded):
        assert sum(1 for x in recorded[i:] if x < start + window_us) <= limit
