"""Measure HTTP framework overhead on the admission hot path and print a results table.

Each app in this folder serves the same two endpoints on 127.0.0.1:

* ``GET /trivial`` returning ``{"ok": true}``;
* ``POST /v1/admission/calls`` validating a call attempt into a typed model and returning a typed
  decision (no business logic: the cost measured is the framework's, plus validation and JSON).

For each variant the runner starts the server pinned to one core, checks both endpoints (a valid
body is admitted, an invalid one is refused with a 4xx), warms up, then runs wrk pinned to the
other core, alternating the two endpoints, ``--runs`` times each, and reports the median
requests/s and the median p50/p99 latency of those runs, then one single-connection run per
endpoint (``--single``) for the unqueued round trip. Before and during each run it measures the CPU
that other processes on the machine take; a run they disturbed (more than ``--max-foreign`` of a
core) is repeated, after waiting for the machine to go quiet. It also times, in-process, the
validation and serialisation alone (pydantic and msgspec) to separate codec cost from framework
cost.

Needs (not project dependencies; install into a throwaway virtualenv)::

    python3.11 -m venv /tmp/fwbench
    /tmp/fwbench/bin/pip install fastapi 'uvicorn[standard]' msgspec litestar granian
    apt-get install -y wrk          # Debian's wrk 4.x
    /tmp/fwbench/bin/python bench/frameworks/run.py     # all variants: ~13 min on a quiet machine
    /tmp/fwbench/bin/python bench/frameworks/run.py --only a,e --runs 1 --duration 5

``taskset`` (util-linux) pins the server to ``--server-cpu`` and wrk to ``--client-cpu``; on a
machine with one core, pass ``--no-pin``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
LUA = HERE / "admission.lua"
VALID_BODY = re.search(r"wrk\.body = '(.*)'", LUA.read_text()).group(1)  # type: ignore[union-attr]
INVALID_BODY = json.dumps({**json.loads(VALID_BODY), "call_id": "x" * 129, "direction": "sideways"})


@dataclass(frozen=True)
class Variant:
    key: str
    module: str
    server: str  # "uvicorn" or "granian"
    label: str
    lua: str = "admission.lua"  # the wrk script for the admission endpoint


VARIANTS = [
    Variant("a", "app_fastapi", "uvicorn", "FastAPI, pydantic body + response model"),
    Variant("a-granian", "app_fastapi", "granian", "FastAPI, pydantic body + response model"),
    Variant("b", "app_fastapi_raw", "uvicorn", "FastAPI path op, raw body, pydantic JSON in/out"),
    Variant(
        "e", "app_fastapi_route", "uvicorn", "FastAPI app, Starlette Route, pydantic JSON in/out"
    ),
    Variant(
        "e-granian",
        "app_fastapi_route",
        "granian",
        "FastAPI app, Starlette Route, pydantic JSON in/out",
    ),
    Variant("f", "app_fastapi_route_msgspec", "uvicorn", "FastAPI app, Starlette Route, msgspec"),
    Variant(
        "g",
        "app_fastapi_deps",
        "uvicorn",
        "as (a) + API-key and app-state dependencies, plain def",
        "admission_auth.lua",
    ),
    Variant(
        "h",
        "app_fastapi_deps_async",
        "uvicorn",
        "as (a) + API-key and app-state dependencies, async def",
        "admission_auth.lua",
    ),
    Variant("c", "app_starlette_msgspec", "uvicorn", "Starlette + msgspec"),
    Variant("d", "app_litestar_msgspec", "uvicorn", "Litestar + msgspec Struct"),
]


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    foreign_cores: float = 0.0  # CPU used by other processes on the machine during the run
    steal_cores: float = 0.0  # CPU the hypervisor took from this machine during the run
    server_us_per_request: float = 0.0  # the server's CPU time (user + system) per request


@dataclass
class VariantResult:
    variant: Variant
    trivial: list[WrkResult] = field(default_factory=list)
    admission: list[WrkResult] = field(default_factory=list)
    trivial_c1: WrkResult | None = None
    admission_c1: WrkResult | None = None
    error: str | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    return cmd if cpu is None else ["taskset", "-c", str(cpu), *cmd]


def server_cmd(v: Variant, port: int) -> list[str]:
    """One worker on 127.0.0.1, uvloop, no access log; httptools for uvicorn."""
    common = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    common += ["--workers", "1", "--loop", "uvloop", "--no-access-log"]
    if v.server == "uvicorn":
        opts = ["--app-dir", str(HERE), *common, "--http", "httptools"]
    else:
        opts = [
            "--working-dir",
            str(HERE),
            *common,
            "--interface",
            "asgi",
            "--runtime-threads",
            "1",
        ]
    return [sys.executable, "-m", v.server, f"{v.module}:app", *opts]


def request(port: int, method: str, path: str, body: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body.encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json", "Authorization": "Bearer cw_bench_key"},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if request(port, "GET", "/trivial")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not answer within 30s")


def smoke(port: int) -> None:
    status, body = request(port, "GET", "/trivial")
    assert status == 200 and json.loads(body) == {"ok": True}, (status, body)
    status, body = request(port, "POST", "/v1/admission/calls", VALID_BODY)
    decision = json.loads(body)
    assert status == 200 and decision["admit"] is True and decision["clause_ids"] == ["AUP-3.1"], (
        status,
        body,
    )
    assert set(decision) == {
        "admit",
        "sip_status",
        "reason",
        "clause_ids",
        "max_duration_s",
        "warnings",
        "degraded",
    }, decision
    status, body = request(port, "POST", "/v1/admission/calls", INVALID_BODY)
    assert 400 <= status < 500, ("invalid body was not refused", status, body)


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unparsed latency {text!r}")
    return float(m.group(1)) * _UNIT_MS[m.group(2)]


def parse_wrk(out: str) -> WrkResult:
    pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.M))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        rps=rps,
        p50_ms=_ms(pct["50"]),
        p99_ms=_ms(pct["99"]),
        requests=requests,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=sum(int(g) for g in sock.groups()) if sock else 0,
    )


HZ = os.sysconf("SC_CLK_TCK")


def _machine_ticks() -> tuple[int, int]:
    """(user + nice + system, steal) ticks of the whole machine."""
    f = [int(x) for x in Path("/proc/stat").read_text().split()[1:9]]
    return f[0] + f[1] + f[2], f[7]


def _children_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _process_ticks() -> dict[int, tuple[int, int]]:
    """pid -> (session, user + system ticks), for every process."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(d.name)] = (int(f[3]), int(f[11]) + int(f[12]))
    return out


class Foreign:
    """Over an interval: the CPU the server's session used, and what every other process used.

    "Other" leaves out this runner and its children (wrk). It is the larger of two estimates that
    both err low: the per-process sum (misses processes that ended within the interval) and the
    machine's busy time less ours (kernel time for our sockets may be charged to neither).
    """

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.cores = 0.0  # other processes, in cores
        self.steal = 0.0  # taken by the hypervisor, in cores
        self.server_seconds = 0.0  # CPU seconds of the server and its workers

    def __enter__(self) -> Foreign:
        self.t0 = time.monotonic()
        self.p0, self.m0 = _process_ticks(), _machine_ticks()
        self.c0 = _children_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self.t0
        p1, m1, me = _process_ticks(), _machine_ticks(), os.getpid()
        server = other = 0
        for pid, (sid, ticks) in p1.items():
            delta = ticks - self.p0.get(pid, (sid, 0))[1]
            if sid == self.sid:
                server += delta
            elif pid != me:
                other += max(0, delta)
        self.server_seconds = server / HZ
        ours = self.server_seconds + (_children_seconds() - self.c0) + self._own(p1, me)
        machine_other = (m1[0] - self.m0[0]) / HZ - ours
        self.cores = max(other / HZ, machine_other, 0.0) / wall
        self.steal = (m1[1] - self.m0[1]) / HZ / wall

    def _own(self, p1: dict[int, tuple[int, int]], me: int) -> float:
        return (p1.get(me, (0, 0))[1] - self.p0.get(me, (0, 0))[1]) / HZ


def wait_quiet(sid: int, limit: float, patience: float) -> None:
    """Wait (up to `patience` seconds) until other processes use less than `limit` of a core."""
    deadline = time.monotonic() + patience
    while True:
        with Foreign(sid) as f:
            time.sleep(1.0)
        if f.cores < limit or time.monotonic() > deadline:
            return
        print(f"    waiting: other processes use {f.cores:.2f} cores", file=sys.stderr, flush=True)


def measured(
    sid: int,
    port: int,
    endpoint: str,
    args: argparse.Namespace,
    duration: int,
    connections: int | None = None,
    script: Path = LUA,
) -> WrkResult:
    """One wrk run, repeated while other processes took more than --max-foreign cores."""
    best: WrkResult | None = None
    for _ in range(args.retries + 1):
        wait_quiet(sid, args.max_foreign, args.patience)
        with Foreign(sid) as f:
            r = wrk(port, endpoint, args, duration, connections, script)
        r.foreign_cores, r.steal_cores = f.cores, f.steal
        r.server_us_per_request = f.server_seconds / max(1, r.requests) * 1e6
        if best is None or r.foreign_cores < best.foreign_cores:
            best = r
        if r.foreign_cores <= args.max_foreign:
            break
        print(
            f"    {endpoint}: other processes used {f.cores:.2f} cores; run again",
            file=sys.stderr,
            flush=True,
        )
    assert best is not None
    return best


def wrk(
    port: int,
    endpoint: str,
    args: argparse.Namespace,
    duration: int,
    connections: int | None = None,
    script: Path = LUA,
) -> WrkResult:
    conns = connections or args.connections
    cmd = ["wrk", f"-t{min(args.threads, conns)}", f"-c{conns}", f"-d{duration}s", "--latency"]
    if endpoint == "admission":
        cmd += ["-s", str(script), f"http://127.0.0.1:{port}/v1/admission/calls"]
    else:
        cmd += [f"http://127.0.0.1:{port}/trivial"]
    out = subprocess.run(
        pinned(cmd, args.client_cpu),
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
    ).stdout
    result = parse_wrk(out)
    if result.non_2xx:
        raise RuntimeError(f"{endpoint}: {result.non_2xx} non-2xx responses\n{out}")
    return result


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)  # our own session: the server and its workers only
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_variant(v: Variant, args: argparse.Namespace) -> VariantResult:
    result = VariantResult(v)
    port = free_port()
    proc = subprocess.Popen(
        pinned(server_cmd(v, port), args.server_cpu), cwd=HERE, start_new_session=True
    )
    try:
        wait_ready(port, proc)
        smoke(port)
        lua = HERE / v.lua
        for endpoint in ("trivial", "admission"):
            wrk(port, endpoint, args, args.warmup, script=lua)
        sid = proc.pid
        for _ in range(args.runs):
            result.trivial.append(measured(sid, port, "trivial", args, args.duration))
            result.admission.append(
                measured(sid, port, "admission", args, args.duration, script=lua)
            )
        if args.single:
            result.trivial_c1 = measured(sid, port, "trivial", args, args.single, connections=1)
            result.admission_c1 = measured(
                sid, port, "admission", args, args.single, connections=1, script=lua
            )
    except Exception as exc:  # report and go on to the next variant
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        stop(proc)
    return result


def med(rs: list[WrkResult], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in rs)


def table(results: list[VariantResult]) -> str:
    head = (
        "| variant | server | what | trivial req/s | trivial p50 / p99 ms "
        "| admission req/s | admission p50 / p99 ms | admission / trivial req/s "
        "| server CPU µs/req, trivial / admission | trivial / admission CPU "
        "| one connection p50 ms, trivial / admission |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        v = r.variant
        if r.error or not r.trivial:
            lines.append(f"| {v.key} | {v.server} | {v.label} | failed: {r.error} |")
            continue
        t, a = med(r.trivial, "rps"), med(r.admission, "rps")
        tc = med(r.trivial, "server_us_per_request")
        ac = med(r.admission, "server_us_per_request")
        lines.append(
            f"| {v.key} | {v.server} | {v.label} "
            f"| {t:,.0f} | {med(r.trivial, 'p50_ms'):.2f} / {med(r.trivial, 'p99_ms'):.2f} "
            f"| {a:,.0f} | {med(r.admission, 'p50_ms'):.2f} / {med(r.admission, 'p99_ms'):.2f} "
            f"| {a / t:.0%} | {tc:.0f} / {ac:.0f} | {tc / ac:.0%} "
            f"| {_c1(r.trivial_c1)} / {_c1(r.admission_c1)} |"
        )
    return "\n".join(lines)


def _c1(r: WrkResult | None) -> str:
    return "-" if r is None else f"{r.p50_ms:.2f}"


def codec_costs(n: int = 20000) -> str:
    """In-process cost of validating the body and serialising the decision, without HTTP."""
    import timeit

    sys.path.insert(0, str(HERE))
    import app_fastapi_route as pyd
    import app_starlette_msgspec as ms

    body = VALID_BODY.encode()
    fields = dict(
        admit=True,
        sip_status=200,
        reason="outbound call admitted",
        clause_ids=["AUP-3.1"],
        max_duration_s=3600,
        warnings=[],
        degraded=False,
    )

    def pydantic_round() -> bytes:
        pyd.CallAttempt.model_validate_json(body)
        return pyd.AdmissionDecision(**fields).model_dump_json().encode()

    def msgspec_round() -> bytes:
        ms._decode(body)
        return ms._encode(ms.AdmissionDecision(**fields))

    out = []
    for name, fn in (("pydantic", pydantic_round), ("msgspec", msgspec_round)):
        best = min(timeit.repeat(fn, number=n, repeat=5)) / n
        out.append(f"{name} validate+serialise: {best * 1e6:.1f} µs")
    return "; ".join(out)


def spread(results: list[VariantResult]) -> str:
    lines = [
        "| variant | trivial req/s, each run | admission req/s, each run "
        "| most CPU other processes took in a run (cores) | most steal in a run (cores) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        if r.trivial:
            runs = [*r.trivial, *r.admission]
            lines.append(
                f"| {r.variant.key} | {', '.join(f'{x.rps:,.0f}' for x in r.trivial)} "
                f"| {', '.join(f'{x.rps:,.0f}' for x in r.admission)} "
                f"| {max(x.foreign_cores for x in runs):.2f} "
                f"| {max(x.steal_cores for x in runs):.2f} |"
            )
    return "\n".join(lines)


def machine() -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for pkg in (
        "fastapi",
        "starlette",
        "pydantic",
        "pydantic-core",
        "msgspec",
        "litestar",
        "uvicorn",
        "uvloop",
        "httptools",
        "granian",
    ):
        try:
            versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{pkg} (missing)")
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[
        0
    ]
    return (
        f"cores: {os.cpu_count()}; cpu: {cpu}; python: {platform.python_version()}; "
        f"{wrk_version.strip()}\n" + ", ".join(versions)
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--only",
        help="comma-separated variant keys (default: all): " + ", ".join(v.key for v in VARIANTS),
    )
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    p.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per endpoint")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument(
        "--single",
        type=int,
        default=5,
        help="seconds of a one-connection run per endpoint (0: skip)",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    p.add_argument(
        "--max-foreign",
        type=float,
        default=0.05,
        help="repeat a run when other processes took more than this many cores",
    )
    p.add_argument("--retries", type=int, default=3, help="repeats of a disturbed run")
    p.add_argument(
        "--patience",
        type=float,
        default=60.0,
        help="seconds to wait for a quiet machine before each run",
    )
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--json", type=Path, help="also write raw per-run results here")
    args = p.parse_args()
    if args.no_pin:
        args.server_cpu = args.client_cpu = None
    for tool in ("wrk", *(() if args.no_pin else ("taskset",))):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found; see this script's docstring")
    chosen = VARIANTS
    if args.only:
        keys = args.only.split(",")
        chosen = [v for v in VARIANTS if v.key in keys]
        if unknown := set(keys) - {v.key for v in chosen}:
            sys.exit(f"unknown variant(s): {', '.join(sorted(unknown))}")

    print(machine(), flush=True)
    load1 = os.getloadavg()[0]
    if load1 > 0.5:
        print(
            f"warning: load average {load1:.2f} before starting; other work on this machine "
            "will make the numbers noisy",
            flush=True,
        )
    print(codec_costs(), flush=True)
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency; "
        f"{args.runs} runs per endpoint, medians shown",
        flush=True,
    )
    results = []
    for v in chosen:
        print(f"... {v.key}: {v.label} on {v.server}", file=sys.stderr, flush=True)
        results.append(run_variant(v, args))
    print()
    print(table(results))
    print()
    print(spread(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
