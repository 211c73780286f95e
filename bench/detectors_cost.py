"""Machine instructions per usage record through the detectors, load-independent.

``bench.detectors`` reports records per CPU second, which moves by a third on this shared
machine with whatever else runs. The instructions a record costs do not. This benchmark runs
the same synthetic stream (``bench.detectors.generate``) under valgrind's callgrind twice: once
judging the first ``--warm`` records, once judging ``--warm + --records``; both runs generate
the same records, so the difference of their instruction totals, divided by ``--records``, is
what one record costs the detectors once their state is warm (generation, imports and start-up
cancel out). Each figure is printed with the records per second it would mean at the trivial
loop's instructions-per-second rate measured the same way, so figures can be set beside
``bench.detectors``'s.

``--detector`` measures one detector alone (``pass_through`` for the detector set's own cost);
the default is every detector and the pass-through baseline.

Run: ``python -m bench.detectors_cost [--records 20000] [--warm 5000] [--detector irsf]``
(a few minutes; valgrind is a Debian package, installed by ``make bench-tools``).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.detectors import PassThrough, _tenants, generate
from callwarden.core.detectors import DetectorContext, DetectorSet, default_detectors

TENANTS = 200


def _detectors(name: str) -> list[object]:
    if name == "all":
        return list(default_detectors())
    if name == "pass_through":
        return [PassThrough()]
    chosen = [d for d in default_detectors() if d.id == name]
    if not chosen:
        raise SystemExit(f"unknown detector {name!r}")
    return [type(chosen[0])()]


def _child(detector: str, judged: int, generated: int) -> None:
    """Generate ``generated`` records and judge the first ``judged`` of them."""
    records, context = generate(generated, TENANTS)
    gc.collect()
    gc.freeze()
    fresh = DetectorContext(
        context.numbering, high_risk=context.high_risk, tenants=_tenants(context, records)
    )
    if detector == "trivial":
        seen: dict[tuple[object, str | None], int] = {}
        for record in records[:judged]:
            key = (record.kind, record.tenant_id)
            seen[key] = seen.get(key, 0) + 1
        return
    engine = DetectorSet(_detectors(detector), fresh)  # type: ignore[arg-type]
    observe = engine.observe
    for record in records[:judged]:
        observe(record)


def _instructions(detector: str, judged: int, generated: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "bench.detectors_cost",
                "--child",
                detector,
                str(judged),
                str(generated),
            ],
            check=True,
            # string hashes decide dict probing: a fixed seed makes the two runs comparable
            env={**os.environ, "PYTHONHASHSEED": "0"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        text = out.read_text(errors="replace")
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if total is None:
            raise RuntimeError("callgrind wrote no totals")
        return int(total.group(1))


def per_record(detector: str, warm: int, records: int) -> float:
    """Instructions per record judged by ``detector`` past the first ``warm`` records."""
    generated = warm + records
    low = _instructions(detector, warm, generated)
    high = _instructions(detector, generated, generated)
    return (high - low) / records


def main(argv: list[str] | None = None) -> int:
    """Measure and print instructions per record."""
    parser = argparse.ArgumentParser(prog="python -m bench.detectors_cost")
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--warm", type=int, default=5_000)
    parser.add_argument("--detector", default=None, help="one detector id, or pass_through")
    parser.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        name, judged, generated = args.child
        _child(name, int(judged), int(generated))
        return 0
    print("== detectors cost in instructions ==")
    if shutil.which("valgrind") is None:
        print("skipped: valgrind is missing (make bench-tools installs it)")
        return 0
    names = [args.detector] if args.detector else ["pass_through", "all"]
    trivial = per_record("trivial", args.warm, args.records)
    print(
        f"{args.records:,} records after {args.warm:,} warm-up, {TENANTS} tenants; "
        f"trivial loop {trivial:,.0f} instructions/record"
    )
    for name in names:
        cost = per_record(name, args.warm, args.records)
        print(
            f"{name:24s} {cost:>10,.0f} instructions/record  "
            f"({trivial / cost:.4f}x the trivial loop)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
