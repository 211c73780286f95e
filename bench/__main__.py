"""`python -m bench`: every hot-path benchmark, one after another, each with its own baseline."""

from __future__ import annotations

import asyncio
import importlib


def main() -> int:
    """Run the benchmarks that exist, each with its default settings."""
    status = 0
    for name in (
        "bench.admission",
        "bench.admission_cost",
        "bench.counters",
        "bench.rating",
        "bench.usage_normalise",
        "bench.usage",
        "bench.stream",
        "bench.sip_redirect",
        "bench.kamailio",
        "bench.detectors",
        "bench.detectors_cost",
        "bench.backfill",
    ):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        print(f"\n######## {name} ########", flush=True)
        result = module.main([])
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        status |= int(result or 0)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
