"""Machine instructions per request of the admission endpoint against the trivial one.

Throughput on a shared machine moves with whatever else runs on it; the instructions a request
costs the server do not. This benchmark runs `callwarden serve` (uvicorn, the whole app) under
valgrind's callgrind, sends the same number of `GET /healthz` and `POST /v1/admission/calls`
requests over one keep-alive connection, twice each, alternating, and reads the instructions the
server executed for each batch (`callgrind_control` zeroes and dumps the counters between
batches). The ratio trivial / admission is what the throughput ratio would be if a request's time
were proportional to its instructions: a load-independent cross-check of `bench.admission`'s
HTTP figures, not a replacement for them (cache misses and system calls weigh differently).
The same is then measured with the counters on Redis: one request at a time, so the server's
Redis client pipelines nothing, which makes that figure pessimistic.

Run: `python -m bench.admission_cost [--requests 1500]` (about 3 minutes; valgrind is a Debian
package, installed by `make bench-tools`).
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from bench.admission import _free_port, _seeded_platform

Send = Callable[[http.client.HTTPConnection], None]


def _wait_until_serving(port: int) -> None:
    for _ in range(600):
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            probe.request("GET", "/healthz")
            probe.getresponse().read()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("callwarden serve did not start under valgrind")


def _senders(tenant: str, user: str, key: str) -> tuple[Send, Send]:
    prefix = secrets.token_hex(4)
    sent = 0
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}

    def trivial(conn: http.client.HTTPConnection) -> None:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"/healthz answered {response.status}")

    def admission(conn: http.client.HTTPConnection) -> None:
        nonlocal sent
        sent += 1
        body = orjson.dumps(
            {
                "call_id": f"{prefix}-{sent}@pbx",
                "tenant_id": tenant,
                "user_id": user,
                "caller": "+442079460000",
                "destination": f"+4420794{sent % 100000:05d}",
            }
        )
        conn.request("POST", "/v1/admission/calls", body, headers)
        response = conn.getresponse()
        answer = orjson.loads(response.read())
        if response.status != 200 or answer["admit"] is not True:
            raise RuntimeError(f"admission answered {response.status}: {answer}")

    return trivial, admission


def _control(command: str, pid: int) -> None:
    """Send callgrind in process ``pid`` a command (it exits 0 even when it fails)."""
    done = subprocess.run(
        ["callgrind_control", command, str(pid)], capture_output=True, text=True, check=True
    )
    if "Error" in done.stdout or "Error" in done.stderr:
        raise RuntimeError(f"callgrind_control {command}: {done.stdout}{done.stderr}")


def measure(requests: int, counters_url: str = "memory://") -> dict[str, list[float]]:
    """Thousands of instructions per request, per endpoint, for each of two batches, with the
    server's counters at ``counters_url``."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "cost.db"
        platform, tenant, user, key = _seeded_platform(db, "memory://")
        platform.close()
        port = _free_port()
        env = {
            **os.environ,
            "CALLWARDEN_DATABASE_URL": f"sqlite:///{db}",
            "CALLWARDEN_COUNTERS_URL": counters_url,
            "CALLWARDEN_PORT": str(port),
            "CALLWARDEN_LOG_LEVEL": "WARNING",
        }
        out = Path(tmp) / "callgrind.out"
        server = subprocess.Popen(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "callwarden.adapters.cli.main",
                "serve",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_until_serving(port)
            trivial, admission = _senders(tenant, user, key)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for _ in range(300):  # warm-up: caches, the tenant's snapshot, the key
                trivial(conn)
                admission(conn)
            batches = [("trivial", trivial), ("admission", admission)] * 2
            for n, (name, send) in enumerate(batches):
                _control("--zero", server.pid)
                for _ in range(requests):
                    send(conn)
                _control(f"--dump={n}-{name}", server.pid)
                time.sleep(1)  # callgrind takes the command at its next check
        finally:
            server.terminate()
            server.wait(timeout=120)
        figures: dict[str, list[float]] = {"trivial": [], "admission": []}
        for path in sorted(Path(tmp).glob("callgrind.out*")):
            text = path.read_text(errors="replace")
            trigger = re.search(r"^desc: Trigger: dump (\d+)-(\w+)$", text, re.M)
            total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
            if trigger and total:
                figures[trigger.group(2)].append(int(total.group(1)) / requests / 1000)
        return figures


def _figure(batches: list[float]) -> str:
    each = ", ".join(f"{x:,.0f}" for x in batches)
    return f"{statistics.median(batches):>8,.0f} k instructions/request  (batches: {each})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500, help="requests per batch")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)
    print("== admission cost in instructions ==")
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("skipped: valgrind is missing (make bench-tools installs it)")
        return 0
    figures = measure(args.requests)
    trivial, admission = figures["trivial"], figures["admission"]
    if len(trivial) != 2 or len(admission) != 2:
        print(f"callgrind dumps incomplete: {figures}")
        return 1
    print(f"GET  /healthz (trivial)            {_figure(trivial)}")
    print(f"POST /v1/admission/calls           {_figure(admission)}")
    ratio = statistics.median(trivial) / statistics.median(admission)
    print(f"ratio trivial / admission:  {ratio:.2f}  (the throughput target is >= 0.70)")
    redis_url = f"{args.redis_url}?prefix=cwcost{secrets.token_hex(3)}"
    on_redis = measure(args.requests, redis_url)["admission"]
    if len(on_redis) != 2:
        print("callgrind dumps incomplete for the Redis run")
        return 1
    print(f"POST /v1/admission/calls, Redis    {_figure(on_redis)}")
    ratio = statistics.median(admission) / statistics.median(on_redis)
    print(
        f"ratio in-process / Redis:   {ratio:.2f}  (the server's own instructions, one request "
        "at a time, so no pipelining; the throughput target is >= 0.50)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
