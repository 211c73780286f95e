"""Kamailio with callwarden in the path against Kamailio alone: completed calls per second.

Two Kamailio instances run integrations/kamailio/kamailio.cfg side by side in one run:

- **alone**: defined `CW_ADMISSION_OFF`, so callwarden is never asked and every call takes the
  local path (dialog tracking, the backstop tables, no limit set);
- **with callwarden**: every initial INVITE is suspended, sent to `callwarden serve` over evapi,
  decided (the full rule pipeline and in-process counters) and resumed; every answered and
  ended call is reported back over evapi.

A sipp caller places `--calls` calls through each in turn, at most `--concurrent` at once and
as fast as they complete (each call: INVITE, 200, ACK, then BYE, 200 at once), to one sipp
callee. The figure is completed calls per wall-clock second of the sipp run; runs alternate
between the two and the median of `--repeats` is reported with the ratio. A second figure
places `--serial-calls` calls one at a time: its inverse is the time one call takes, so the
difference is what asking callwarden adds to a call.

Run: `python -m bench.kamailio [--quick]` (needs `make sip-tools`).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tests.integrations.sip_stack import (
    Callee,
    Caller,
    Callwarden,
    Kamailio,
    tools_present,
)

from callwarden.core.model import Billing, Channel, NumberOwnership, PlanLimits, UserRole
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.settings import Settings

UNLIMITED = PlanLimits(
    concurrent_calls_per_tenant=None,
    concurrent_calls_per_user=None,
    attempts_per_second=None,
    attempts_per_minute=None,
    calls_per_destination_per_day=None,
    max_call_duration_s=None,
)
"""The benchmark tenant's plan: every rule runs, none refuses."""

CALLER_ID = "+442079460000"


def _seed(database_url: str) -> str:
    """One tenant with an unlimited plan and its caller ID; returns the tenant id."""
    platform = Platform.build(Settings(database_url=database_url))
    try:
        gov = platform.governance
        gov.create_user(
            SYSTEM, None, email="noc@provider.example", display_name="NOC", role=UserRole.OPERATOR
        )
        plan = gov.create_plan(
            SYSTEM,
            name="bench",
            billing=Billing.METERED,
            channels=[Channel.VOICE],
            currency="GBP",
            limits=UNLIMITED,
        )
        tenant = gov.create_tenant(
            SYSTEM, name="Bench", country="GB", timezone="Europe/London", plan_id=plan.id
        )
        gov.add_number(SYSTEM, tenant.id, e164=CALLER_ID, ownership=NumberOwnership.OWNED)
        return tenant.id
    finally:
        platform.close()


def _run(workdir: Path, kamailio: Kamailio, tenant: str, calls: int, concurrent: int) -> float:
    """One sipp run; completed calls per second. Every call must be answered."""
    started = time.perf_counter()
    caller = Caller(
        workdir,
        kamailio,
        destination="02079460123",
        tenant=tenant,
        caller=CALLER_ID,
        calls=calls,
        rate=100_000,
        hold_ms=1,
        concurrent=concurrent,
    )
    outcome = caller.wait(timeout_s=600)
    elapsed = time.perf_counter() - started
    answered = len(outcome.answered)
    if answered != calls:
        raise RuntimeError(
            f"{calls - answered} of {calls} calls not answered: {outcome.statuses()}"
        )
    return answered / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per sipp run")
    parser.add_argument("--concurrent", type=int, default=100, help="calls in progress at most")
    parser.add_argument("--serial-calls", type=int, default=300, help="calls placed one by one")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 repeat of 500 calls")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.serial_calls, args.repeats = 500, 100, 1
    if not tools_present():
        print("kamailio or sipp missing: run `make sip-tools`")
        return 1

    with tempfile.TemporaryDirectory(prefix="bench-kamailio-") as tmp:
        workdir = Path(tmp)
        database_url = f"sqlite:///{workdir / 'callwarden.db'}"
        tenant = _seed(database_url)
        callee = Callee(workdir)
        parts: list[Kamailio | Callwarden | Callee] = [callee]
        try:
            alone = Kamailio(
                workdir,
                callee.port,
                defines={"CW_BACKSTOP_CALLS": 0, "CW_BACKSTOP_CPS": 0},
                flags=("CW_ADMISSION_OFF",),
            )
            parts.append(alone)
            guarded = Kamailio(workdir, callee.port)
            parts.append(guarded)
            callwarden = Callwarden(workdir, database_url, guarded)
            parts.append(callwarden)

            # One short warm-up run each (snapshots, caches, sipp and Kamailio start-up).
            _run(workdir, alone, tenant, 200, args.concurrent)
            _run(workdir, guarded, tenant, 200, args.concurrent)
            figures: dict[str, list[float]] = {"alone": [], "with callwarden": []}
            serial: dict[str, list[float]] = {"alone": [], "with callwarden": []}
            for _ in range(args.repeats):
                for name, kamailio in (("alone", alone), ("with callwarden", guarded)):
                    figures[name].append(
                        _run(workdir, kamailio, tenant, args.calls, args.concurrent)
                    )
                    serial[name].append(_run(workdir, kamailio, tenant, args.serial_calls, 1))
        finally:
            for part in reversed(parts):
                part.stop()

    base = statistics.median(figures["alone"])
    with_cw = statistics.median(figures["with callwarden"])
    print(f"calls per run: {args.calls}, at most {args.concurrent} at once, {args.repeats} runs")
    for name, values in figures.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"  Kamailio {name:<16} {statistics.median(values):8,.0f} calls/s  ({runs})")
    ratio = with_cw / base
    verdict = "met" if ratio >= 0.5 else "NOT met"
    print(f"  ratio with callwarden / alone: {ratio:.2f} (goal >= 0.50: {verdict})")
    print(f"one call at a time ({args.serial_calls} calls per run):")
    per_call = {name: 1000 / statistics.median(values) for name, values in serial.items()}
    for name, ms in per_call.items():
        print(f"  Kamailio {name:<16} {ms:6.2f} ms per call")
    print(f"  added by callwarden: {per_call['with callwarden'] - per_call['alone']:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
