"""The garbage collector's settings for long-running processes: the API server and the
surveillance worker.

Both build a large, long-lived heap at start (numbering metadata, modules, the platform) and
then, per call attempt or usage record, many short-lived objects and a slowly growing detector
state that is never garbage. Python's defaults suit neither: a young collection every 700 net
allocations runs several times per request or record, and every full collection walks the whole
heap, start-up objects included.
"""

from __future__ import annotations

import gc
from typing import Final

from callwarden.core.numbering import default_numbering_plan

__all__ = ["LONG_RUNNING_GC_THRESHOLDS", "settle_heap"]

LONG_RUNNING_GC_THRESHOLDS: Final = (20_000, 20, 20)
"""The collector's thresholds while serving or judging the usage stream. At 20,000 net
allocations the objects of the requests or records in flight have died before a young
collection looks, and older generations are walked far less often (bench.admission's service
figures and bench.detectors' worker line, with and without; docs/performance.md)."""


def settle_heap() -> None:
    """Move everything built at start out of the garbage collector's reach and collect young
    objects less often: full collections then walk only what the process creates afterwards,
    instead of pausing it for tens of milliseconds over objects that live as long as it does
    (docs/performance.md shows the p99 and the records per second this buys)."""
    default_numbering_plan()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*LONG_RUNNING_GC_THRESHOLDS)
