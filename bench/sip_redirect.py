"""The SIP redirect interface alone: transactions per second and latency percentiles.

`callwarden serve` with the SIP interface on, pinned to one core; the load comes from another
process pinned to the other core. Every figure is measured beside its baseline in the same run:
the same server answering OPTIONS (parse, answer; no admission decision).

1. **Throughput**: sipp places calls with 32 in flight (INVITE, 302, ACK; or OPTIONS, 200) as
   fast as the server answers them; transactions per second and sipp's response times
   (sipp measures in whole milliseconds).
2. **Fixed load**: sipp at an offered rate (default 500 per second): what was served, and
   sipp's response-time percentiles.
3. **Latency**: one request at a time from a small UDP client in its own process, timed in
   microseconds, for the p50 and p99 of the interface without queueing.

Figures are medians of `--repeats` runs. Run: `python -m bench.sip_redirect [--quick]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.admission import BENCH_LIMITS

INVITE_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="bench invite">
  <send retrans="500" start_rtd="1">
    <![CDATA[

      INVITE sip:[field0]@[remote_ip]:[remote_port];user=phone SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]
      From: <sip:+442079460000@[local_ip]:[local_port]>;tag=[pid]-[call_number]
      To: <sip:[field0]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:+442079460000@[local_ip]:[local_port]>
      Max-Forwards: 70
      X-Callwarden-Tenant: [tenant]
      Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="302" rtd="1"/>
  <send>
    <![CDATA[

      ACK sip:[field0]@[remote_ip]:[remote_port];user=phone SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]
      From: <sip:+442079460000@[local_ip]:[local_port]>;tag=[pid]-[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
</scenario>
"""

OPTIONS_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="bench options">
  <send retrans="500" start_rtd="1">
    <![CDATA[

      OPTIONS sip:callwarden@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]
      From: <sip:probe@[local_ip]:[local_port]>;tag=[pid]-[call_number]
      To: <sip:callwarden@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" rtd="1"/>
</scenario>
"""


@dataclass(frozen=True)
class SippResult:
    """One sipp run: transactions per second served, failures, requests sipp had to
    retransmit (a lost datagram or an answer later than T1), response-time percentiles."""

    tps: float
    failed: int
    retransmitted: int
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Latency:
    """One-at-a-time round trips: p50 and p99 in microseconds."""

    p50_us: float
    p99_us: float


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def _seed(db: Path) -> str:
    """A tenant with limits high enough that nothing refuses; returns its id."""
    from callwarden.core.model import Billing, Channel, NumberOwnership
    from callwarden.platform import Platform
    from callwarden.services.governance import SYSTEM
    from callwarden.settings import Settings

    platform = Platform.build(Settings(database_url=f"sqlite:///{db}"))
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
    gov.add_number(SYSTEM, tenant.id, e164="+442079460000", ownership=NumberOwnership.OWNED)
    platform.close()
    return tenant.id


def _options_probe(port: int) -> bytes:
    return (
        f"OPTIONS sip:callwarden@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK-ready;rport\r\n"
        "From: <sip:probe@127.0.0.1>;tag=r\r\nTo: <sip:callwarden@127.0.0.1>\r\n"
        "Call-ID: ready@bench\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


class Server:
    """`callwarden serve` with the SIP interface on, in a subprocess pinned to one core."""

    def __init__(self, db: Path, cpu: str | None) -> None:
        self.sip_port = _free_port(socket.SOCK_DGRAM)
        env = {
            **os.environ,
            "CALLWARDEN_DATABASE_URL": f"sqlite:///{db}",
            "CALLWARDEN_PORT": str(_free_port()),
            "CALLWARDEN_SIP_PORT": str(self.sip_port),
            "CALLWARDEN_LOG_LEVEL": "WARNING",
        }
        cmd = [sys.executable, "-m", "callwarden.adapters.cli.main", "serve"]
        if cpu is not None:
            cmd = ["taskset", "-c", cpu, *cmd]
        self.proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(0.2)
            for _ in range(150):
                probe.sendto(_options_probe(self.sip_port), ("127.0.0.1", self.sip_port))
                try:
                    if b"SIP/2.0 200" in probe.recv(65535):
                        return
                except OSError:
                    time.sleep(0.05)
        self.stop()
        raise RuntimeError("the SIP interface did not start")

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)


def _last_stats(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    header = lines[0].split(";")
    return dict(zip(header, lines[-1].split(";"), strict=False))


def _epoch(stamp: str) -> float:
    """sipp's time stamps end with epoch seconds after a tab."""
    return float(stamp.split("\t")[-1])


def sipp(
    workdir: Path,
    scenario: Path,
    port: int,
    tenant: str,
    *,
    calls: int,
    rate: float,
    in_flight: int | None,
    cpu: str | None,
) -> SippResult:
    """Run sipp to completion; throughput from its statistics file, percentiles from its
    per-call response times."""
    for old in workdir.glob(f"{scenario.stem}_*"):
        old.unlink()
    stats = workdir / f"{scenario.stem}-stats.csv"
    stats.unlink(missing_ok=True)
    cmd = [
        "sipp",
        f"127.0.0.1:{port}",
        "-sf",
        str(scenario),
        "-inf",
        str(workdir / "destinations.csv"),
        "-key",
        "tenant",
        tenant,
        "-i",
        "127.0.0.1",
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-nostdin",
        "-trace_stat",
        "-stf",
        str(stats),
        "-trace_rtt",
        "-rtt_freq",
        "1",
        "-timeout",
        "120s",
    ]
    if in_flight is not None:
        cmd += ["-l", str(in_flight)]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    subprocess.run(cmd, cwd=workdir, capture_output=True, check=False)
    last = _last_stats(stats)
    done = int(last["SuccessfulCall(C)"])
    elapsed = _epoch(last["CurrentTime"]) - _epoch(last["StartTime"])
    times: list[float] = []
    for rtt in workdir.glob(f"{scenario.stem}_*_rtt.csv"):
        for line in rtt.read_text().splitlines()[1:]:
            fields = line.split(";")
            if len(fields) >= 2:
                times.append(float(fields[1]))
    return SippResult(
        done / elapsed if elapsed > 0 else 0.0,
        int(last["FailedCall(C)"]),
        int(last["Retransmissions(C)"]),
        _percentile(times, 50),
        _percentile(times, 99),
    )


# -- one request at a time, from a separate process -------------------------------------------
@dataclass(frozen=True)
class _Probe:
    """One request of the latency probe, with what its ACK needs."""

    data: bytes
    call_id: bytes
    ack_head: str


def _probe_requests(kind: str, tenant: str, port: int, n: int) -> list[_Probe]:
    out = []
    for i in range(n):
        call_id = f"probe-{os.getpid()}-{i}@bench"
        via = f"SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bK-p{os.getpid()}-{i};rport"
        if kind == "options":
            uri, method, extra = f"sip:callwarden@127.0.0.1:{port}", "OPTIONS", ""
        else:
            uri = f"sip:+4420794{i % 100_000:05d}@127.0.0.1;user=phone"
            method, extra = "INVITE", f"X-Callwarden-Tenant: {tenant}\r\n"
        common = f"Via: {via}\r\nFrom: <sip:+442079460000@127.0.0.1>;tag=p{i}\r\n"
        data = (
            f"{method} {uri} SIP/2.0\r\n{common}To: <{uri}>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
        ).encode()
        ack_head = f"ACK {uri} SIP/2.0\r\n{common}Call-ID: {call_id}\r\nCSeq: 1 ACK\r\n"
        out.append(_Probe(data, call_id.encode(), ack_head))
    return out


def _to_header(response: bytes) -> str:
    for line in response.split(b"\r\n"):
        if line[:3].lower() == b"to:":
            return line.decode()
    return "To: <sip:callwarden@127.0.0.1>"


def probe(kind: str, tenant: str, port: int, n: int) -> list[float]:
    """Round-trip times in microseconds of `n` requests sent one at a time over UDP, each
    INVITE's final response ACKed as a SIP server would (so none is retransmitted)."""
    requests = _probe_requests(kind, tenant, port, n)
    times: list[float] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("127.0.0.1", port))
        s.settimeout(2.0)
        for request in requests:
            start = time.perf_counter_ns()
            s.send(request.data)
            while True:  # this request's final response: skip 100 Trying and strays
                answer = s.recv(65535)
                if request.call_id in answer and not answer.startswith(b"SIP/2.0 1"):
                    break
            times.append((time.perf_counter_ns() - start) / 1000)
            if kind == "invite":
                ack = f"{request.ack_head}{_to_header(answer)}\r\nContent-Length: 0\r\n\r\n"
                s.send(ack.encode())
    return times


def latency(kind: str, tenant: str, port: int, n: int, cpu: str | None) -> Latency:
    """The probe in its own process (pinned to `cpu`), warm-up excluded."""
    cmd = [sys.executable, "-m", "bench.sip_redirect", "--probe", kind, tenant, str(port), str(n)]
    if cpu is not None:
        cmd = ["taskset", "-c", cpu, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    times = json.loads(out)[n // 10 :]
    return Latency(_percentile(times, 50), _percentile(times, 99))


# -- the run ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Figures:
    """Medians per request kind ("invite", "options") of each measurement."""

    saturated: dict[str, SippResult]
    paced: dict[str, SippResult]
    latency: dict[str, Latency]


def run(repeats: int, calls: int, rate: float, probes: int, pin: bool) -> Figures:
    """Everything, `repeats` times; medians."""
    server_cpu, client_cpu = ("0", "1") if pin else (None, None)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tenant = _seed(work / "bench.db")
        (work / "destinations.csv").write_text(
            "SEQUENTIAL\n" + "".join(f"+4420794{i:05d}\n" for i in range(0, 100_000, 7))
        )
        invite, options = work / "invite.xml", work / "options.xml"
        invite.write_text(INVITE_SCENARIO)
        options.write_text(OPTIONS_SCENARIO)
        server = Server(work / "bench.db", server_cpu)
        runs: dict[str, list[SippResult]] = {k: [] for k in ("invite", "options")}
        paced: dict[str, list[SippResult]] = {k: [] for k in ("invite", "options")}
        probed: dict[str, list[Latency]] = {k: [] for k in ("invite", "options")}
        try:

            def load(scenario: Path, calls: int, rate: float, in_flight: int | None) -> SippResult:
                return sipp(
                    work,
                    scenario,
                    server.sip_port,
                    tenant,
                    calls=calls,
                    rate=rate,
                    in_flight=in_flight,
                    cpu=client_cpu,
                )

            load(invite, 500, 10_000, 32)  # warm-up: snapshot, caches
            for _ in range(repeats):
                for name, scenario in (("options", options), ("invite", invite)):
                    runs[name].append(load(scenario, calls, 100_000, 32))
                    paced[name].append(load(scenario, int(rate * 5), rate, None))
                    probed[name].append(latency(name, tenant, server.sip_port, probes, client_cpu))
        finally:
            server.stop()

    def median_sipp(results: list[SippResult]) -> SippResult:
        return SippResult(
            statistics.median(r.tps for r in results),
            max(r.failed for r in results),
            max(r.retransmitted for r in results),
            statistics.median(r.p50_ms for r in results),
            statistics.median(r.p99_ms for r in results),
        )

    def median_latency(results: list[Latency]) -> Latency:
        return Latency(
            statistics.median(r.p50_us for r in results),
            statistics.median(r.p99_us for r in results),
        )

    return Figures(
        saturated={k: median_sipp(v) for k, v in runs.items()},
        paced={k: median_sipp(v) for k, v in paced.items()},
        latency={k: median_latency(v) for k, v in probed.items()},
    )


def _line(r: SippResult) -> str:
    return (
        f"{r.tps:>8,.0f} tx/s  p50 {r.p50_ms:.0f} ms  p99 {r.p99_ms:.0f} ms"
        f"  ({r.failed} failed, {r.retransmitted} retransmitted)"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures with their ratios to the OPTIONS baseline."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20_000, help="transactions per sipp run")
    parser.add_argument("--rate", type=float, default=500.0, help="offered rate, per second")
    parser.add_argument("--probes", type=int, default=3_000, help="one-at-a-time requests")
    parser.add_argument("--quick", action="store_true", help="1 repeat, fewer transactions")
    parser.add_argument("--no-pin", action="store_true", help="do not pin server and load")
    parser.add_argument("--probe", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        kind, tenant, port, n = args.probe
        print(json.dumps(probe(kind, tenant, int(port), int(n))))
        return 0
    print("== SIP redirect interface ==")
    if shutil.which("sipp") is None:
        print("skipped: sipp is missing (make sip-tools)")
        return 0
    repeats, calls, probes = (
        (1, 5_000, 1_000) if args.quick else (args.repeats, args.calls, args.probes)
    )
    pin = not args.no_pin and (os.cpu_count() or 1) > 1 and shutil.which("taskset") is not None
    out = run(repeats, calls, args.rate, probes, pin)
    sat, paced, lat = out.saturated, out.paced, out.latency
    print("sipp, 32 transactions in flight:")
    print(f"  OPTIONS -> 200 (baseline)       {_line(sat['options'])}")
    print(f"  INVITE  -> 302 (decision)       {_line(sat['invite'])}")
    print(f"  ratio INVITE / OPTIONS:         {sat['invite'].tps / sat['options'].tps:.2f}")
    print(f"sipp at an offered {args.rate:,.0f}/s:")
    print(f"  OPTIONS                         {_line(paced['options'])}")
    print(f"  INVITE                          {_line(paced['invite'])}")
    print("one request at a time (UDP client in its own process):")
    for name in ("options", "invite"):
        r = lat[name]
        print(f"  {name.upper():<8} p50 {r.p50_us:7.0f} us   p99 {r.p99_us:7.0f} us")
    ratio = lat["invite"].p50_us / lat["options"].p50_us
    print(f"  ratio INVITE / OPTIONS p50:     {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
