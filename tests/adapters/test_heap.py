"""What a long-running process does to its heap before it serves or judges the stream."""

from __future__ import annotations

import gc

from callwarden.adapters.heap import LONG_RUNNING_GC_THRESHOLDS, settle_heap


def test_settling_the_heap_freezes_what_start_built_and_collects_young_objects_less_often() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == LONG_RUNNING_GC_THRESHOLDS
        assert LONG_RUNNING_GC_THRESHOLDS[0] > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
