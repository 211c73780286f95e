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
from collections.abc import Coroutine
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from redis.crc import key_slot
from tests.adapters.counters.backends import (
    Backend,
    Loop,
    R,
    redis_keys,
    tenant,
)

from callwarden.adapters.counters import counters_from_url
from callwarden.adapters.counters.memory import MemoryCounters
from callwarden.adapters.counters.redis import RedisCounters
from callwarden.core.counters import (
    AdmitOutcome,
    AdmitPlan,
    Counters,
    CountersUnavailable,
    LeaseClaim,
    LeaseOutcome,
    RateCheck,
    RateOutcome,
    WindowCheck,
    WindowOutcome,
)
from callwarden.core.limits import Rate, from_micros, gcra_all, to_micros

T0 = 1_700_000_000.0
T0_US = to_micros(T0)


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


# -- every check of one attempt at once (admit) -----------------------------------------------

FULL_PLAN = AdmitPlan(
    rates=[RateCheck("s:tenant", Rate(100, 1.0))],
    claims=[LeaseClaim("tenant", 10)],
    ttl_s=60,
    window=WindowCheck("dest:+48221234567", 86400.0, 10),
)


def _plan(
    *,
    rate: Rate | None = None,
    lease_limit: int | None = None,
    window_limit: int | None = None,
    enforced: bool = True,
    ttl_s: float = 60.0,
    keys: tuple[str, ...] = ("tenant",),
) -> AdmitPlan:
    return AdmitPlan(
        rates=[RateCheck("s:tenant", rate)] if rate is not None else (),
        rates_enforced=enforced,
        claims=[LeaseClaim(k, lease_limit) for k in keys] if lease_limit is not None else (),
        ttl_s=ttl_s,
        leases_enforced=enforced,
        window=WindowCheck("dest:x", 3600.0, window_limit) if window_limit is not None else None,
        window_enforced=enforced,
    )


def test_admit_runs_every_stage_and_reports_each(counters: Counters, run: Loop) -> None:
    t = tenant()
    plan = AdmitPlan(
        rates=[RateCheck("s:tenant", Rate(5, 1.0)), RateCheck("s:user:1", Rate(5, 1.0))],
        claims=[LeaseClaim("tenant", 2), LeaseClaim("user:1", 1)],
        ttl_s=30,
        window=WindowCheck("dest:+48221234567", 86400.0, 3),
    )
    out = run(counters.admit(t, "c1", plan, T0))
    assert out == AdmitOutcome(
        True,
        None,
        RateOutcome(True, None, 0.0),
        LeaseOutcome(True, None, (1, 1), T0 + 30, False),
        WindowOutcome(True, 1, 3, 0.0),
    )
    assert run(counters.calls_holding(t, T0)) == ["c1"]
    # the same attempt retransmitted: rates and window count it again, leases do not
    again = run(counters.admit(t, "c1", plan, T0 + 1))
    assert again.leases == LeaseOutcome(True, None, (1, 1), T0 + 31, True)
    assert again.window == WindowOutcome(True, 2, 3, 0.0)


def test_admit_with_an_empty_plan_touches_nothing(counters: Counters, run: Loop) -> None:
    assert run(counters.admit(tenant(), "c1", AdmitPlan(), T0)) == AdmitOutcome(True)


def test_admit_skips_empty_stages(counters: Counters, run: Loop) -> None:
    t = tenant()
    out = run(counters.admit(t, "c1", _plan(window_limit=1), T0))
    assert out == AdmitOutcome(True, None, None, None, WindowOutcome(True, 1, 1, 0.0))
    out = run(counters.admit(t, "c2", _plan(lease_limit=1), T0))
    assert out == AdmitOutcome(True, None, None, LeaseOutcome(True, None, (1,), T0 + 60, False))
    out = run(counters.admit(t, "c3", _plan(rate=Rate(1, 1.0)), T0))
    assert out == AdmitOutcome(True, None, RateOutcome(True, None, 0.0))


def test_an_enforced_rate_refusal_touches_nothing_else(counters: Counters, run: Loop) -> None:
    t = tenant()
    plan = _plan(rate=Rate(1, 10.0), lease_limit=5, window_limit=5)
    assert run(counters.admit(t, "c1", plan, T0)).admitted
    out = run(counters.admit(t, "c2", plan, T0 + 1))
    assert out == AdmitOutcome(False, "rates", RateOutcome(False, "s:tenant", 9.0))
    assert run(counters.calls_holding(t, T0 + 1)) == ["c1"]
    assert run(counters.count_in_window(t, "dest:x", 3600.0, 5, T0 + 1, False)).count == 1


def test_an_observed_rate_refusal_consumes_nothing_and_goes_on(
    counters: Counters, run: Loop
) -> None:
    t = tenant()
    plan = _plan(rate=Rate(1, 10.0), lease_limit=5, window_limit=5, enforced=False)
    assert run(counters.admit(t, "c1", plan, T0)).admitted
    out = run(counters.admit(t, "c2", plan, T0 + 1))
    assert out.admitted and out.refused_by is None
    assert out.rates == RateOutcome(False, "s:tenant", 9.0)
    assert out.leases is not None and out.leases.counts == (2,)
    assert out.window == WindowOutcome(True, 2, 5, 0.0)
    # nothing consumed by the refused rate: it still frees up at T0 + 10
    assert run(counters.hit_rates(t, [RateCheck("s:tenant", Rate(1, 10.0))], T0 + 10)).allowed


def test_an_enforced_lease_refusal_keeps_the_rates_and_skips_the_window(
    counters: Counters, run: Loop
) -> None:
    t = tenant()
    plan = _plan(rate=Rate(1, 1.0, burst=5), lease_limit=1, window_limit=5)
    assert run(counters.admit(t, "c1", plan, T0)).admitted
    out = run(counters.admit(t, "c2", plan, T0))
    assert out == AdmitOutcome(
        False,
        "leases",
        RateOutcome(True, None, 0.0),
        LeaseOutcome(False, "tenant", (1,), None),
    )
    # the attempt counted against the rate, not the window
    assert run(counters.count_in_window(t, "dest:x", 3600.0, 5, T0, False)).count == 1
    refused = [run(counters.admit(t, f"c{i}", plan, T0)).refused_by for i in range(3, 8)]
    assert refused == ["leases"] * 4 + ["rates"]


def test_an_observed_lease_refusal_takes_nothing_and_goes_on(counters: Counters, run: Loop) -> None:
    t = tenant()
    plan = _plan(lease_limit=1, window_limit=5, enforced=False)
    assert run(counters.admit(t, "c1", plan, T0)).admitted
    out = run(counters.admit(t, "c2", plan, T0))
    assert out.admitted and out.leases == LeaseOutcome(False, "tenant", (1,), None)
    assert out.window == WindowOutcome(True, 2, 5, 0.0)
    assert run(counters.calls_holding(t, T0)) == ["c1"]


def test_an_enforced_window_refusal_gives_back_the_leases_it_took(
    counters: Counters, run: Loop
) -> None:
    t = tenant()
    plan = _plan(lease_limit=5, window_limit=1, keys=("tenant", "user:1"))
    assert run(counters.admit(t, "c1", plan, T0)).admitted
    out = run(counters.admit(t, "c2", plan, T0 + 1))
    assert out == AdmitOutcome(
        False,
        "window",
        None,
        LeaseOutcome(True, None, (2, 2), T0 + 61, False),
        WindowOutcome(False, 1, 1, 3599.0),
        leases_undone=True,
    )
    assert run(counters.calls_holding(t, T0 + 1)) == ["c1"]
    assert run(counters.active_leases(t, "tenant", T0 + 1)) == 1
    assert run(counters.active_leases(t, "user:1", T0 + 1)) == 1


def test_a_window_refusal_keeps_leases_held_from_an_earlier_attempt(
    counters: Counters, run: Loop
) -> None:
    t = tenant()
    first = AdmitPlan(claims=[LeaseClaim("tenant", 5)], ttl_s=10)
    assert run(counters.admit(t, "c1", first, T0)).admitted
    run(counters.count_in_window(t, "dest:x", 3600.0, 1, T0, True))
    # retransmitted with one more key, refused by the window: the new key is not taken and the
    # old lease keeps its expiry
    plan = _plan(lease_limit=5, window_limit=1, keys=("tenant", "user:1"), ttl_s=30)
    out = run(counters.admit(t, "c1", plan, T0 + 5))
    assert out.refused_by == "window" and out.leases_undone
    assert out.leases == LeaseOutcome(True, None, (1, 1), T0 + 35, False)
    assert run(counters.active_leases(t, "user:1", T0 + 5)) == 0
    assert run(counters.active_leases(t, "tenant", T0 + 9.999)) == 1
    assert run(counters.active_leases(t, "tenant", T0 + 10)) == 0


def test_an_observed_window_refusal_keeps_the_leases(counters: Counters, run: Loop) -> None:
    t = tenant()
    plan = _plan(lease_limit=5, window_limit=1, enforced=False)
    assert run(counters.admit(t, "c1", plan, T0)).admitted
    out = run(counters.admit(t, "c2", plan, T0))
    assert out.admitted and not out.leases_undone
    assert out.window == WindowOutcome(False, 1, 1, 3600.0)
    assert run(counters.calls_holding(t, T0)) == ["c1", "c2"]


def test_an_invalid_plan_changes_nothing(counters: Counters, run: Loop) -> None:
    t = tenant()
    plan = AdmitPlan(
        rates=[RateCheck("s:tenant", Rate(1, 10.0))],
        claims=[LeaseClaim("tenant", 1)],
        ttl_s=10,
        window=WindowCheck("dest:x", 3600.0, 0),
    )
    with pytest.raises(ValueError):
        run(counters.admit(t, "c1", plan, T0))
    assert run(counters.calls_holding(t, T0)) == []
    assert run(counters.hit_rates(t, [RateCheck("s:tenant", Rate(1, 10.0))], T0)).allowed


def test_admit_uses_the_keys_of_the_separate_operations(counters: Counters, run: Loop) -> None:
    t = tenant()
    odd = 'user:\u017c\u00f3\u0142w "q" \\ \n\t\U0001f600'
    plan = AdmitPlan(
        rates=[RateCheck(f"s:{odd}", Rate(1, 10.0))],
        claims=[LeaseClaim(odd, 1)],
        ttl_s=30,
        window=WindowCheck(f"dest:{odd}", 60.0, 1),
    )
    assert run(counters.admit(t, f"call {odd}", plan, T0)).admitted
    assert run(counters.active_leases(t, odd, T0)) == 1
    assert run(counters.calls_holding(t, T0)) == [f"call {odd}"]
    assert run(counters.count_in_window(t, f"dest:{odd}", 60.0, 1, T0, False)).count == 1
    assert not run(counters.hit_rates(t, [RateCheck(f"s:{odd}", Rate(1, 10.0))], T0)).allowed
    assert run(counters.release_leases(t, f"call {odd}"))


def test_concurrent_admits_from_two_instances_never_exceed_the_lease_limit(
    backend: Backend, run: Loop
) -> None:
    a, b = backend.new(), backend.new()
    t = tenant()

    def plan(i: int) -> AdmitPlan:
        return AdmitPlan(
            rates=[RateCheck("s:tenant", Rate(1000, 1.0, burst=1000))],
            claims=[LeaseClaim("tenant", 7), LeaseClaim("trunk", 100)],
            ttl_s=60,
            window=WindowCheck(f"dest:{i % 3}", 3600.0, 4),
        )

    async def storm() -> list[AdmitOutcome]:
        jobs = [(a if i % 2 else b).admit(t, f"c{i}", plan(i), T0 + i * 1e-4) for i in range(60)]
        return list(await asyncio.gather(*jobs))

    outcomes = run(storm())
    admitted = [i for i, o in enumerate(outcomes) if o.admitted]
    assert len(admitted) == 7
    assert {o.refused_by for o in outcomes} <= {None, "leases", "window"}
    assert run(a.active_leases(t, "tenant", T0 + 1)) == 7
    assert run(b.active_leases(t, "trunk", T0 + 1)) == 7
    assert run(a.calls_holding(t, T0 + 1)) == sorted(f"c{i}" for i in admitted)


@pytest.mark.redis
def test_redis_admit_is_one_round_trip_in_one_slot(run: Loop) -> None:
    backend = Backend("redis", ttl_slack_s=5.0)
    counters = backend.new()
    assert isinstance(counters, RedisCounters)
    t = "tenant-42"
    commands = count_round_trips(counters)
    try:
        run(counters.admit(t, "c0", FULL_PLAN, T0))  # loads the script
        commands.clear()
        assert run(counters.admit(t, "c1", FULL_PLAN, T0 + 1)).admitted
        assert commands == [["EVALSHA"]]
        keys = run(redis_keys(backend.prefix))
        assert len(keys) == 6  # rate, lease key, two call records, calls index, window
        assert len({key_slot(k) for k in keys}) == 1
        assert all(run(counters.client.pttl(k)) > 0 for k in keys)
    finally:
        run(backend.aclose())


def count_round_trips(counters: RedisCounters) -> list[list[str]]:
    """Record the commands of each round trip the counters' client makes from now on."""
    trips: list[list[str]] = []
    client: Any = counters.client
    execute, pipeline = client.execute_command, client.pipeline

    async def one(*args: Any, **options: Any) -> Any:
        trips.append([str(args[0])])
        return await execute(*args, **options)

    def batched(*args: Any, **options: Any) -> Any:
        pipe = pipeline(*args, **options)
        send = pipe.execute

        async def counted(*a: Any, **k: Any) -> Any:
            trips.append([str(cmd[0]) for cmd, _ in pipe.command_stack])
            return await send(*a, **k)

        pipe.execute = counted
        return pipe

    client.execute_command, client.pipeline = one, batched
    return trips


def test_redis_concurrent_admits_share_one_round_trip(run: Loop) -> None:
    backend = Backend("redis", ttl_slack_s=5.0)
    counters = backend.new()
    assert isinstance(counters, RedisCounters)
    try:
        run(counters.admit("tenant-42", "warm", FULL_PLAN, T0))
        trips = count_round_trips(counters)

        async def burst() -> list[AdmitOutcome]:
            return list(
                await asyncio.gather(
                    *(counters.admit(f"tenant-{i}", f"c{i}", FULL_PLAN, T0 + 1) for i in range(8))
                )
            )

        outcomes = run(burst())
        assert all(o.admitted for o in outcomes)
        assert trips == [["EVALSHA"] * 8]
    finally:
        run(backend.aclose())


def test_redis_admit_survives_a_flushed_script_cache(run: Loop) -> None:
    backend = Backend("redis", ttl_slack_s=5.0)
    counters = backend.new()
    assert isinstance(counters, RedisCounters)
    try:
        run(counters.admit("tenant-42", "c0", FULL_PLAN, T0))
        run(counters.client.script_flush())
        outcome = run(counters.admit("tenant-42", "c1", FULL_PLAN, T0 + 1))
        assert outcome.admitted and outcome.leases is not None
        assert outcome.leases.counts == (2,)
    finally:
        run(backend.aclose())


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
        lambda c: c.admit("", "c", AdmitPlan(rates=[RateCheck("k", Rate(1, 1))]), T0),
        lambda c: c.admit("t", "", AdmitPlan(rates=[RateCheck("k", Rate(1, 1))]), T0),
        lambda c: c.admit("t", "c", AdmitPlan(claims=[LeaseClaim("k", 1)]), T0),
        lambda c: c.admit("t", "c", AdmitPlan(claims=[LeaseClaim("k", -1)], ttl_s=10), T0),
        lambda c: c.admit(
            "t", "c", AdmitPlan(rates=[RateCheck("k", Rate(1, 1)), RateCheck("k", Rate(1, 1))]), T0
        ),
        lambda c: c.admit("t", "c", AdmitPlan(window=WindowCheck("k", 10, 0)), T0),
        lambda c: c.admit("t", "c", AdmitPlan(window=WindowCheck("", 10, 1)), T0),
        lambda c: c.admit("t", "c", AdmitPlan(window=WindowCheck("k", 10, 1)), float("inf")),
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
        counters.admit("t", "c", FULL_PLAN, T0),
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
    assert run(_every_operation(counters)) == ["unavailable"] * 8
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
        assert run(_every_operation(counters)) == ["unavailable"] * 8
        elapsed = time.perf_counter() - start
        run(counters.close())
    assert elapsed < 8 * 0.1 * 2 + 1.0, elapsed


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


ADMIT_RATES = [RateCheck("s:tenant", Rate(3, 1.0, burst=1)), RateCheck("s:user:a", Rate(2, 1.0))]
ADMIT_WINDOWS = [WindowCheck("dest:a", 2.0, 2), WindowCheck("dest:b", 1.0, 1)]
_BIG = 1_000_000_000

admit_steps = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "gap_ms": st.integers(0, 700),
                "call": st.sampled_from(CALLS),
                "rates": st.lists(st.sampled_from(ADMIT_RATES), max_size=2, unique=True),
                "rates_enforced": st.booleans(),
                "claims": st.lists(st.sampled_from(sorted(LIMITS)), max_size=3, unique=True),
                "leases_enforced": st.booleans(),
                "ttl_s": st.sampled_from(TTLS),
                "window": st.sampled_from([None, *ADMIT_WINDOWS]),
                "window_enforced": st.booleans(),
            }
        ),
        st.fixed_dictionaries(
            {"gap_ms": st.integers(0, 700), "call": st.sampled_from(CALLS), "end": st.just(True)}
        ),
        st.fixed_dictionaries({"gap_ms": st.integers(0, 700), "probe": st.just(True)}),
    ),
    min_size=1,
    max_size=25,
)


async def _probe_rates(counters: Counters, t: str, now: float) -> list[RateOutcome]:
    """Reveal the stored rate states: hit each rate until it refuses (whose retry_after then
    pins the theoretical arrival time down). Changes both tenants alike when run on both."""
    seen: list[RateOutcome] = []
    for check in ADMIT_RATES:
        for _ in range(check.rate.burst + 2):
            seen.append(await counters.hit_rates(t, [check], now))
            if not seen[-1].allowed:
                break
    return seen


async def _composed(
    counters: Counters,
    t: str,
    call_id: str,
    plan: AdmitPlan,
    now_us: int,
    held: dict[str, tuple[int, frozenset[str]]],
) -> AdmitOutcome:
    """What ``admit`` must do, made of the separate operations: hit_rates, acquire_leases,
    count_in_window, and for a window refusal a release that restores what the call held before
    (``held`` tracks each call's keys and expiry from the outcomes)."""
    now = from_micros(now_us)
    rates = leases = window = None
    if plan.rates:
        rates = await counters.hit_rates(t, plan.rates, now)
        if not rates.allowed and plan.rates_enforced:
            return AdmitOutcome(False, "rates", rates)
    before = held.get(call_id)
    if before is not None and before[0] <= now_us:
        before = None
    if plan.claims:
        leases = await counters.acquire_leases(t, call_id, plan.claims, plan.ttl_s, now)
        if not leases.acquired and plan.leases_enforced:
            return AdmitOutcome(False, "leases", rates, leases)
        if leases.acquired:
            assert leases.expires_at is not None
            keys = (before[1] if before else frozenset()) | {c.key for c in plan.claims}
            held[call_id] = (to_micros(leases.expires_at), keys)
    if plan.window is not None:
        w = plan.window
        window = await counters.count_in_window(t, w.key, w.window_s, w.limit, now, True)
        if not window.admitted and plan.window_enforced:
            undone = leases is not None and leases.acquired
            if undone:
                await counters.release_leases(t, call_id)
                held.pop(call_id, None)
                if before is not None:
                    restore = [LeaseClaim(k, _BIG) for k in sorted(before[1])]
                    ttl = from_micros(before[0] - now_us)
                    assert (await counters.acquire_leases(t, call_id, restore, ttl, now)).acquired
                    held[call_id] = before
            return AdmitOutcome(False, "window", rates, leases, window, undone)
    return AdmitOutcome(True, None, rates, leases, window)


@PROPERTY
@given(steps=admit_steps)
def test_admit_matches_the_separate_operations(
    counters: Counters, run: Loop, steps: list[dict[str, Any]]
) -> None:
    """``admit`` on one tenant and the composition of the separate operations on another, step
    by step: same outcomes, and afterwards the same leases and windows."""
    one, other = tenant(), tenant()
    held: dict[str, tuple[int, frozenset[str]]] = {}
    now_us = T0_US
    for step in steps:
        now_us += step["gap_ms"] * 1000
        now = from_micros(now_us)
        if "probe" in step:
            assert run(_probe_rates(counters, one, now)) == run(_probe_rates(counters, other, now))
        elif "end" in step:
            ended = run(counters.release_leases(one, step["call"], now))
            assert ended == run(counters.release_leases(other, step["call"], now))
            held.pop(step["call"], None)
        else:
            plan = AdmitPlan(
                rates=step["rates"],
                rates_enforced=step["rates_enforced"],
                claims=[LeaseClaim(k, LIMITS[k]) for k in step["claims"]],
                ttl_s=step["ttl_s"],
                leases_enforced=step["leases_enforced"],
                window=step["window"],
                window_enforced=step["window_enforced"],
            )
            got = run(counters.admit(one, step["call"], plan, now))
            event(f"refused by {got.refused_by}" + (", leases undone" if got.leases_undone else ""))
            observed = (
                (got.rates is not None and not got.rates.allowed)
                or (got.leases is not None and not got.leases.acquired)
                or (got.window is not None and not got.window.admitted)
            )
            if got.admitted and observed:
                event("admitted with an observed refusal")
            assert got == run(_composed(counters, other, step["call"], plan, now_us, held))
        for key, limit in LIMITS.items():
            active = run(counters.active_leases(one, key, now))
            assert active == run(counters.active_leases(other, key, now))
            assert active <= limit
        assert run(counters.calls_holding(one, now)) == run(counters.calls_holding(other, now))
        for w in ADMIT_WINDOWS:
            seen = run(counters.count_in_window(one, w.key, w.window_s, w.limit, now, False))
            assert seen == run(
                counters.count_in_window(other, w.key, w.window_s, w.limit, now, False)
            )
    now = from_micros(now_us)
    assert run(_probe_rates(counters, one, now)) == run(_probe_rates(counters, other, now))
