"""Real SIP peers on loopback for the Kamailio end-to-end tests and the Kamailio benchmark.

Kamailio (integrations/kamailio/kamailio.cfg, its values given with -A), callwarden
(`callwarden serve` connected to Kamailio's evapi) and sipp (a callee answering every call, and
callers placing calls from tests/integrations/sipp/caller.xml) run as subprocesses with ports
chosen free on 127.0.0.1; each is stopped by the code that started it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
KAMAILIO_CFG = ROOT / "integrations" / "kamailio" / "kamailio.cfg"
SCENARIOS = Path(__file__).resolve().parent / "sipp"
CALLWARDEN = Path(sys.executable).with_name("callwarden")
LOOPBACK = "127.0.0.1"


def tools_present() -> bool:
    """Whether Kamailio and sipp are installed (`make sip-tools`)."""
    return shutil.which("kamailio") is not None and shutil.which("sipp") is not None


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port nobody listens on at the moment, on loopback, for TCP or UDP."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free for both TCP and UDP."""
    found: list[int] = []
    while len(found) < count:
        port = free_port()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((LOOPBACK, port))
        except OSError:
            continue
        if port not in found:
            found.append(port)
    return found


def wait_for(what: str, check: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Poll `check` until it holds; raise naming `what` if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"gave up waiting for {what} after {timeout_s} s")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.2):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Process:
    """A subprocess in its own process group, its output in a log file; `stop` ends it."""

    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None):
        self.name = name
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            argv,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )

    def running(self) -> bool:
        """Whether the process is still alive."""
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL it if it lingers."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout_s)
            except ProcessLookupError:
                pass
        self._out.close()

    def tail(self) -> str:
        """The end of the process's log, for error messages."""
        return f"--- {self.name} ({self.log}) ---\n{_tail(self.log)}"


@dataclass
class KamailioPorts:
    """Where one Kamailio listens: SIP (UDP), JSON-RPC (TCP) and evapi (TCP)."""

    sip: int
    rpc: int
    evapi: int


class Kamailio:
    """Kamailio running integrations/kamailio/kamailio.cfg, with the harness's values."""

    def __init__(
        self,
        workdir: Path,
        next_hop_port: int,
        *,
        defines: dict[str, str | int] | None = None,
        flags: tuple[str, ...] = (),
    ) -> None:
        sip, rpc, evapi = free_ports(3)
        self.ports = KamailioPorts(sip, rpc, evapi)
        rundir = workdir / f"kamailio-{sip}"
        rundir.mkdir(parents=True, exist_ok=True)
        values: dict[str, str | int] = {
            "CW_SIP_PORT": sip,
            "CW_RPC_PORT": rpc,
            "CW_EVAPI_ADDR": f'"{LOOPBACK}:{evapi}"',
            "CW_NEXT_HOP": f'"sip:{LOOPBACK}:{next_hop_port}"',
            "CW_CHILDREN": 4,
            **(defines or {}),
        }
        argv = ["kamailio", "-DD", "-E", "-f", str(KAMAILIO_CFG), "-Y", str(rundir)]
        argv += ["-m", "256", "-M", "16"]
        for name, value in values.items():
            argv += ["-A", f"{name}={value}"]
        for flag in flags:
            argv += ["-A", flag]
        self.process = Process("kamailio", argv, rundir / "kamailio.log")
        try:
            wait_for("Kamailio to listen", lambda: _accepts(rpc) and _accepts(evapi))
        except TimeoutError:
            self.process.stop()
            raise RuntimeError(self.process.tail()) from None

    @property
    def rpc_url(self) -> str:
        """Kamailio's JSON-RPC over HTTP."""
        return f"http://{LOOPBACK}:{self.ports.rpc}/RPC"

    def rpc(self, method: str, *params: str | int) -> Any:
        """Run one RPC command; its result, or None when Kamailio answers with an error."""
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1})
        request = urllib.request.Request(
            self.rpc_url, body.encode(), {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError:  # jsonrpcs answers a failed command with an HTTP error
            return None
        return answer.get("result")

    def evapi_links(self) -> int:
        """How many callwarden connections Kamailio holds (its $shv(cw_links))."""
        result = self.rpc("pv.shvGet", "cw_links")
        return int(result.get("value", 0)) if isinstance(result, dict) else 0

    def htable(self, table: str, key: str) -> Any:
        """`$sht(table=>key)`, or None when absent."""
        result = self.rpc("htable.get", table, key)
        if isinstance(result, dict) and "item" in result:
            return result["item"].get("value")
        return None

    def stop(self) -> None:
        """End Kamailio and its children."""
        self.process.stop()


class Callwarden:
    """`callwarden serve` on a SQLite store, connected to one Kamailio's evapi and RPC."""

    def __init__(self, workdir: Path, database_url: str, kamailio: Kamailio) -> None:
        self.port = free_port()
        self.kamailio = kamailio
        env = {
            **os.environ,
            "CALLWARDEN_EVAPI_HOST": LOOPBACK,
            "CALLWARDEN_EVAPI_PORT": str(kamailio.ports.evapi),
            "CALLWARDEN_KAMAILIO_JSONRPC_URL": kamailio.rpc_url,
            "CALLWARDEN_LOG_LEVEL": "WARNING",
            "CALLWARDEN_API_KEY_CACHE_TTL_S": "0",
        }
        argv = [str(CALLWARDEN), "serve", "--port", str(self.port)]
        argv += ["--database-url", database_url]
        self.process = Process("callwarden", argv, workdir / f"callwarden-{self.port}.log", env)
        try:
            wait_for("callwarden to serve", self._healthy, timeout_s=30)
            wait_for("callwarden to connect to Kamailio", lambda: kamailio.evapi_links() > 0)
        except TimeoutError:
            self.process.stop()
            raise RuntimeError(self.process.tail() + "\n" + kamailio.process.tail()) from None

    def _healthy(self) -> bool:
        if not self.process.running():
            raise RuntimeError(self.process.tail())
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.port}/healthz", timeout=1):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def api(self, method: str, path: str, key: str, body: object | None = None) -> Any:
        """One HTTP API request with an API key; the decoded JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://{LOOPBACK}:{self.port}{path}",
            data,
            {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            method=method,
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def leases(self, tenant_id: str, key: str) -> list[str]:
        """The calls holding concurrency leases for the tenant."""
        calls: list[str] = self.api("GET", f"/v1/admission/tenants/{tenant_id}/leases", key)[
            "calls"
        ]
        return calls

    def stop(self) -> None:
        """End callwarden."""
        self.process.stop()


class Callee:
    """sipp answering every call at `port` (tests/integrations/sipp/callee.xml)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_ports(1)[0]
        argv = ["sipp", "-sf", str(SCENARIOS / "callee.xml"), "-i", LOOPBACK]
        argv += ["-p", str(self.port), "-nostdin", "-max_socket", "1000"]
        self.process = Process("sipp callee", argv, workdir / f"callee-{self.port}.log")
        time.sleep(0.2)
        if not self.process.running():
            raise RuntimeError(self.process.tail())

    def stop(self) -> None:
        """End the callee."""
        self.process.stop()


@dataclass
class Call:
    """What became of one call placed by sipp."""

    call_id: str
    answered: bool = False
    ended_by: str | None = None
    """"caller" when the caller hung up, "proxy" when a BYE came from Kamailio."""
    status: int | None = None
    """The final status of a refused call."""
    reason: str = ""
    """The Reason header of the refusal or of the proxy's BYE."""


@dataclass
class Calls:
    """The calls of one sipp run."""

    calls: list[Call] = field(default_factory=list)

    @property
    def answered(self) -> list[Call]:
        """The answered calls."""
        return [c for c in self.calls if c.answered]

    @property
    def refused(self) -> list[Call]:
        """The refused calls."""
        return [c for c in self.calls if c.status is not None]

    def statuses(self) -> dict[int, int]:
        """How many calls were refused with each status."""
        counts: dict[int, int] = {}
        for call in self.refused:
            assert call.status is not None
            counts[call.status] = counts.get(call.status, 0) + 1
        return counts


def read_call_log(path: Path) -> Calls:
    """The outcome of every call from the caller scenario's log lines."""
    by_id: dict[str, Call] = {}
    for line in path.read_text(errors="replace").splitlines():
        word, _, rest = line.strip().partition(" ")
        call_id, _, detail = rest.partition(" ")
        if word not in ("ANSWERED", "HUNGUP", "CUT", "REFUSED") or not call_id:
            continue
        call = by_id.setdefault(call_id, Call(call_id))
        if word == "ANSWERED":
            call.answered = True
        elif word == "HUNGUP":
            call.ended_by = "caller"
        elif word == "CUT":
            call.ended_by = "proxy"
            call.reason = detail.strip()
        else:
            status, _, reason = detail.partition(" ")
            call.status = int(status)
            call.reason = reason.strip()
    return Calls(list(by_id.values()))


class Caller:
    """One sipp run placing calls through Kamailio (tests/integrations/sipp/caller.xml)."""

    def __init__(
        self,
        workdir: Path,
        kamailio: Kamailio,
        *,
        destination: str,
        tenant: str,
        caller: str,
        calls: int = 1,
        rate: float = 100.0,
        hold_ms: int = 1000,
        concurrent: int | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="caller-", dir=workdir))
        scenario = self.workdir / "caller.xml"
        scenario.write_text((SCENARIOS / "caller.xml").read_text().replace("HOLD_MS", str(hold_ms)))
        self.log = self.workdir / "calls.log"
        argv = ["sipp", f"{LOOPBACK}:{kamailio.ports.sip}", "-sf", str(scenario)]
        argv += ["-i", LOOPBACK, "-p", str(free_ports(1)[0]), "-nostdin"]
        argv += ["-m", str(calls), "-r", str(rate), "-rp", "1000"]
        argv += ["-l", str(concurrent or calls), "-s", destination]
        argv += ["-key", "tenant", tenant, "-key", "caller", caller]
        self.errors = self.workdir / "errors.log"
        argv += ["-trace_logs", "-log_file", str(self.log), "-max_socket", "1000"]
        argv += ["-trace_err", "-error_file", str(self.errors), *extra]
        self.expected = calls
        self.process = Process("sipp caller", argv, self.workdir / "sipp.out")

    def wait(self, timeout_s: float = 60.0) -> Calls:
        """Wait for every call to finish; their outcomes (one per call, or an error)."""
        try:
            self.process.proc.wait(timeout_s)
        finally:
            self.process.stop()
        found = read_call_log(self.log) if self.log.exists() else Calls()
        if len(found.calls) != self.expected:
            raise AssertionError(
                f"{len(found.calls)} of {self.expected} calls logged an outcome "
                f"({self.workdir})\n{_tail(self.errors)[-2000:]}"
            )
        return found


def place_calls(workdir: Path, kamailio: Kamailio, **options: Any) -> Calls:
    """Place calls with `Caller(**options)` and wait for all of them to finish."""
    return Caller(workdir, kamailio, **options).wait()
