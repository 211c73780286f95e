"""Admission benchmarks: the pure pipeline, the service with its counters, and the HTTP endpoint.

Everything is measured in one run, each figure beside the baseline it is compared with:

1. **Pipeline**: decisions per second of the pure rule pipeline (`evaluate`) on one core, over a
   mix of ordinary, premium-rate, invalid, emergency and spoofed-caller attempts.
2. **Service**: decisions per second of `AdmissionService.decide` (pipeline plus counter rules:
   attempt rates, concurrency leases, repeat calls) with in-process counters and with Redis;
   the ratio is Redis / in-process.
3. **HTTP**: `callwarden serve` pinned to one core, wrk pinned to the other; throughput and
   p50/p99 latency of `POST /v1/admission/calls` against `GET /healthz` (the trivial endpoint on
   the same server), with in-process counters and with Redis.
4. **Fixed load**: p50/p99 of the admission endpoint at an offered 2,000 attempts per second
   (wrk's per-request `delay()` paces each connection).

Figures are medians of `--repeats` runs. Run: `python -m bench.admission [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from callwarden.core.admission.attempt import CallAttempt, Direction
from callwarden.core.admission.pipeline import evaluate
from callwarden.core.admission.snapshot import NumberState, TenantSnapshot, UserState
from callwarden.core.model import (
    Channel,
    NumberOwnership,
    NumberStatus,
    PlanLimits,
    TenantStatus,
    UserStatus,
)
from callwarden.core.numbering import default_numbering_plan
from callwarden.core.prefixes import PrefixList

HERE = Path(__file__).resolve().parent
RATED_CALLER = "+442079460001"
BENCH_LIMITS = PlanLimits(
    concurrent_calls_per_tenant=10_000_000,
    concurrent_calls_per_user=10_000_000,
    attempts_per_second=100_000,
    attempts_per_minute=6_000_000,
    calls_per_destination_per_day=10_000_000,
)


def _destinations(n: int) -> list[str]:
    """A mix like a contact center's: mostly ordinary national and international numbers."""
    ordinary = [f"+4420794{i:05d}" for i in range(0, 5000, 7)]
    ordinary += [f"+4822{i:07d}" for i in range(1000, 900_000, 9001)]
    ordinary += [f"+3120{i:07d}" for i in range(1000, 900_000, 9001)]
    special = ["+449098765432", "+881612345678", "999", "112", "not-a-number", "+4400"]
    mix = [
        ordinary[i % len(ordinary)] if i % 10 else special[(i // 10) % len(special)]
        for i in range(n)
    ]
    return mix


def _snapshot() -> TenantSnapshot:
    numbers = {
        f"+4420794600{i:02d}": NumberState(f"nm_{i}", NumberStatus.ACTIVE, NumberOwnership.OWNED)
        for i in range(50)
    }
    users = {f"us_{i:016x}": UserState(UserStatus.ACTIVE) for i in range(200)}
    return TenantSnapshot(
        tenant_id="tn_bench",
        country="GB",
        status=TenantStatus.ACTIVE,
        suspension=None,
        channels=frozenset({Channel.VOICE}),
        limits=BENCH_LIMITS,
        users=users,
        numbers=numbers,
    )


def _attempts(n: int) -> list[CallAttempt]:
    users = [f"us_{i:016x}" for i in range(200)]
    return [
        CallAttempt(
            call_id=f"bench-{i}",
            destination=d,
            direction=Direction.OUTBOUND,
            at=1_800_000_000.0 + i * 0.001,
            tenant_id="tn_bench",
            user_id=users[i % len(users)],
            caller=f"+4420794600{i % 60:02d}",
        )
        for i, d in enumerate(_destinations(n))
    ]


def bench_pipeline(repeats: int, seconds: float) -> float:
    """Median decisions per second of the pure pipeline."""
    numbering = default_numbering_plan()
    snap, attempts = _snapshot(), _attempts(5000)
    prefixes = PrefixList([("88216", "Thuraya"), ("4475", "mobile IRSF test range")])
    for a in attempts:  # warm the classification cache as production traffic would
        evaluate(a, snap, numbering, prefixes)
    rates = []
    for _ in range(repeats):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for a in attempts:
                evaluate(a, snap, numbering, prefixes)
            done += len(attempts)
        rates.append(done / (time.perf_counter() - start))
    return statistics.median(rates)


# -- the service with real counters -----------------------------------------------------------
def _seeded_platform(db: Path, counters_url: str):  # type: ignore[no-untyped-def]
    from callwarden.core.model import Billing, NumberOwnership, UserRole
    from callwarden.platform import Platform
    from callwarden.services.governance import SYSTEM
    from callwarden.settings import Settings

    platform = Platform.build(Settings(database_url=f"sqlite:///{db}", counters_url=counters_url))
    gov = platform.governance
    plan = gov.create_plan(
        SYSTEM,
        name="Bench",
        billing=Billing.METERED,
        channels=[Channel.VOICE],
        currency="EUR",
        limits=BENCH_LIMITS,
    )
    tenant = gov.create_tenant(
        SYSTEM, name="Bench", country="GB", timezone="Europe/London", plan_id=plan.id
    )
    gov.add_order(SYSTEM, tenant.id, seat_limit=10)
    user = gov.create_user(
        SYSTEM, tenant.id, email="agent@bench.example", display_name="A", role=UserRole.AGENT
    )
    gov.activate_user(SYSTEM, tenant.id, user.id)
    gov.add_number(SYSTEM, tenant.id, e164="+442079460000", ownership=NumberOwnership.OWNED)
    operator = gov.create_user(
        SYSTEM, None, email="bench@provider.example", display_name="B", role=UserRole.OPERATOR
    )
    key = platform.access.issue(SYSTEM, None, operator.id, "bench").secret
    return platform, tenant.id, user.id, key


def _rated_tenant(platform):  # type: ignore[no-untyped-def]
    """A second tenant like the first on a plan with a monthly charge limit (LIM-1) and a rate
    deck of 10,000 prefixes: every call is priced, reserved and held against the limit."""
    from callwarden.core.model import Billing, NumberOwnership, UserRole
    from callwarden.services.governance import SYSTEM

    gov = platform.governance
    plan = gov.create_plan(
        SYSTEM,
        name="Bench rated",
        billing=Billing.METERED,
        channels=[Channel.VOICE],
        currency="EUR",
        limits=dataclasses.replace(BENCH_LIMITS, monthly_charge_limit_minor=10**13),
    )
    tenant = gov.create_tenant(
        SYSTEM, name="Bench rated", country="GB", timezone="Europe/London", plan_id=plan.id
    )
    gov.add_order(SYSTEM, tenant.id, seat_limit=10)
    user = gov.create_user(
        SYSTEM, tenant.id, email="agent@rated.example", display_name="R", role=UserRole.AGENT
    )
    gov.activate_user(SYSTEM, tenant.id, user.id)
    gov.add_number(SYSTEM, tenant.id, e164=RATED_CALLER, ownership=NumberOwnership.OWNED)
    rows = ["prefix,description,rate,connection fee,increments,effective date,currency"]
    rows += [f"44{i:04d},UK {i},0.0{i % 90 + 10},0,60/60,2020-01-01,EUR" for i in range(10_000)]
    deck = platform.rating.create_deck(SYSTEM, name="Bench retail", currency="EUR")
    platform.rating.import_rates(SYSTEM, deck.id, rows)
    platform.rating.assign(SYSTEM, "plan", plan.id, deck.id)
    return tenant.id, user.id


async def _service_rate(  # type: ignore[no-untyped-def]
    platform, tenant_id: str, user_id: str, seconds: float, caller: str = "+442079460000"
) -> float:
    admission = platform.admission
    n, start = 0, time.perf_counter()
    prefix = secrets.token_hex(4)
    while time.perf_counter() - start < seconds:
        await admission.decide(
            CallAttempt(
                call_id=f"{prefix}-{n}",
                destination=f"+4420794{n % 100_000:05d}",
                direction=Direction.OUTBOUND,
                at=time.time(),
                tenant_id=tenant_id,
                user_id=user_id,
                caller=caller,
            )
        )
        n += 1
    return n / (time.perf_counter() - start)


def bench_service(redis_url: str, repeats: int, seconds: float) -> dict[str, float]:
    """Median decisions per second of the service, one at a time, per counters backend, and
    for a tenant whose calls are rated against a monthly charge limit (``rated``)."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, url in (("in-process", "memory://"), ("redis", redis_url)):
            platform, tenant, user, _ = _seeded_platform(Path(tmp) / f"{name}.db", url)
            rated, rated_user = _rated_tenant(platform)

            async def run(p=platform, t=tenant, u=user, rt=rated, ru=rated_user):  # type: ignore[no-untyped-def]
                await _service_rate(p, t, u, 0.3)  # warm-up: snapshot, scripts, caches
                await _service_rate(p, rt, ru, 0.3, RATED_CALLER)
                plain, with_rating = [], []
                for _ in range(repeats):  # interleaved, so noise hits both alike
                    plain.append(await _service_rate(p, t, u, seconds))
                    with_rating.append(await _service_rate(p, rt, ru, seconds, RATED_CALLER))
                await p.aclose()
                return plain, with_rating

            plain, with_rating = asyncio.run(run())
            out[name] = statistics.median(plain)
            out[f"{name} rated"] = statistics.median(with_rating)
    return out


# -- HTTP ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float = float("nan")
    """Server CPU time (user + system) per request answered, in microseconds."""


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _latency(text: str, pct: str) -> float:
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk(
    url: str, seconds: float, connections: int, script: Path | None, cpu: str | None
) -> WrkResult:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(url)
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        raise RuntimeError(f"wrk saw {non2xx.group(1)} failed requests:\n{text}")
    return WrkResult(float(m.group(1)) if m else 0.0, _latency(text, "50"), _latency(text, "99"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _admission_script(
    path: Path,
    key: str,
    tenant: str,
    user: str,
    delay_ms: float | None,
    caller: str = "+442079460000",
) -> None:
    delay = f"function delay() return {delay_ms} end\n" if delay_ms else ""
    path.write_text(
        f"""-- generated by bench/admission.py
local n = 0
local prefix = tostring(math.random(1, 1e9))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
request = function()
  n = n + 1
  local body = string.format(
    '{{"call_id":"%s-%d@pbx","tenant_id":"{tenant}","user_id":"{user}",' ..
    '"caller":"{caller}","destination":"+4420794%05d"}}', prefix, n, n % 100000)
  return wrk.format(nil, nil, nil, body)
end
{delay}"""
    )


class Server:
    """`callwarden serve` in a subprocess, pinned to one core."""

    def __init__(
        self, db: Path, counters_url: str, cpu: str | None, client_cpu: str | None = None
    ) -> None:
        self.port = _free_port()
        self.client_cpu = client_cpu
        env = {
            **os.environ,
            "CALLWARDEN_DATABASE_URL": f"sqlite:///{db}",
            "CALLWARDEN_COUNTERS_URL": counters_url,
            "CALLWARDEN_PORT": str(self.port),
            "CALLWARDEN_LOG_LEVEL": "WARNING",
        }
        cmd = [sys.executable, "-m", "callwarden.adapters.cli.main", "serve"]
        if cpu is not None:
            cmd = ["taskset", "-c", cpu, *cmd]
        self.proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(self.base + "/healthz", timeout=0.5).read()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("callwarden serve did not start")

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wrk(self, path: str, seconds: float, connections: int, script: Path | None) -> WrkResult:
        """wrk against ``path`` of this server, with the server's CPU time per request."""
        before = self.cpu_s()
        result = wrk(self.base + path, seconds, connections, script, self.client_cpu)
        used = self.cpu_s() - before
        answered = result.rps * int(seconds)
        cpu_us = used / answered * 1e6 if answered else float("nan")
        return dataclasses.replace(result, cpu_us=cpu_us)

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)


def bench_http(
    redis_url: str, repeats: int, seconds: float, pin: bool
) -> tuple[dict[str, dict[str, WrkResult]], dict[str, list[float]]]:
    """wrk against the trivial and the admission endpoint of one server, per counters backend:
    the median figures of each, and the admission / trivial ratio of each round (the two runs
    of a round are back to back, so they share the machine's load)."""
    server_cpu, client_cpu = ("0", "1") if pin else (None, None)
    results: dict[str, dict[str, WrkResult]] = {}
    pairs: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, url in (("in-process", "memory://"), ("redis", redis_url)):
            db = Path(tmp) / f"http-{name}.db"
            platform, tenant, user, key = _seeded_platform(db, "memory://")
            rated, rated_user = _rated_tenant(platform)
            platform.close()
            script = Path(tmp) / f"{name}.lua"
            rated_script = Path(tmp) / f"{name}-rated.lua"
            paced = Path(tmp) / f"{name}-paced.lua"
            _admission_script(script, key, tenant, user, None)
            _admission_script(rated_script, key, rated, rated_user, None, RATED_CALLER)
            # Many connections each pausing 50 ms between requests offer 2,000/s, with the
            # answer's own latency a small part of each connection's cycle.
            connections = 100
            _admission_script(paced, key, tenant, user, 1000.0 * connections / 2000.0)
            server = Server(db, url, server_cpu, client_cpu)
            try:
                admission = "/v1/admission/calls"
                server.wrk(admission, 2, 16, script)  # warm-up
                server.wrk("/healthz", 2, 16, None)
                server.wrk(admission, 2, 16, rated_script)  # loads the rate deck
                runs: dict[str, list[WrkResult]] = {
                    "trivial": [],
                    "admission": [],
                    "rated": [],
                    "paced": [],
                }
                for _ in range(repeats):
                    runs["trivial"].append(server.wrk("/healthz", seconds, 16, None))
                    runs["admission"].append(server.wrk(admission, seconds, 16, script))
                    runs["rated"].append(server.wrk(admission, seconds, 16, rated_script))
                    runs["paced"].append(server.wrk(admission, seconds, connections, paced))
            finally:
                server.stop()
            pairs[name] = [
                a.rps / t.rps for t, a in zip(runs["trivial"], runs["admission"], strict=True)
            ]
            results[name] = {
                k: WrkResult(
                    statistics.median(r.rps for r in v),
                    statistics.median(r.p50_ms for r in v),
                    statistics.median(r.p99_ms for r in v),
                    statistics.median(r.cpu_us for r in v),
                )
                for k, v in runs.items()
            }
    return results, pairs


def _line(r: WrkResult) -> str:
    return (
        f"{r.rps:>8,.0f} req/s  p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms  "
        f"server CPU {r.cpu_us:.0f} us/request"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="1 repeat of 2 s each")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and wrk to cores")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args(argv)
    repeats, seconds = (1, 2.0) if args.quick else (args.repeats, args.seconds)
    redis_url = f"{args.redis_url}?prefix=cwbench{secrets.token_hex(3)}"

    print("== admission ==")
    pipeline = bench_pipeline(repeats, min(seconds, 2.0))
    print(f"pure pipeline, one core:            {pipeline:>10,.0f} decisions/s  (target >= 50,000)")
    service = bench_service(redis_url, repeats, min(seconds, 2.0))
    for name, rate in service.items():
        print(f"service decide(), counters {name:<16} {rate:>8,.0f} decisions/s (one at a time)")
    print(f"  ratio redis / in-process:          {service['redis'] / service['in-process']:.2f}")
    for name in ("in-process", "redis"):
        ratio = service[f"{name} rated"] / service[name]
        print(f"  rating on / off, {name:<10}        {ratio:.2f}")
    if args.skip_http or shutil.which("wrk") is None:
        print("HTTP: skipped (--skip-http, or wrk is missing: apt-get install wrk)")
        return 0
    http, pairs = bench_http(
        redis_url, repeats, seconds, pin=not args.no_pin and (os.cpu_count() or 1) > 1
    )
    for name, r in http.items():
        t, a, rt, p = r["trivial"], r["admission"], r["rated"], r["paced"]
        print(f"HTTP, counters {name}:")
        print(f"  GET  /healthz (trivial)        {_line(t)}")
        print(f"  POST /v1/admission/calls       {_line(a)}")
        print(f"  ratio admission / trivial:     {a.rps / t.rps:.2f}  (target >= 0.70)")
        rounds = " ".join(f"{x:.2f}" for x in pairs[name])
        print(f"    per round: {rounds}; median {statistics.median(pairs[name]):.2f}")
        print(f"    by server CPU per request:   {t.cpu_us / a.cpu_us:.2f}")
        print(f"  the same, calls rated (LIM-1)  {_line(rt)}")
        print(f"  ratio rating on / off:         {rt.rps / a.rps:.2f}")
        print(f"  at offered 2,000/s:            {_line(p)}")
    ratio = http["redis"]["admission"].rps / http["in-process"]["admission"].rps
    print(f"HTTP admission, ratio redis / in-process: {ratio:.2f}  (target >= 0.50)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
