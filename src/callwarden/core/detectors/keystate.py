"""Per-key state shapes that several detectors share.

A detector keeps one state per key (a user, a number, a range...) in a map bounded by
``max_keys`` (:meth:`~callwarden.core.detectors.base.Detector.per_key`); each state holds the
key's rolling structures and its evidence, and reports what it holds with ``size()`` so that
:func:`~callwarden.core.detectors.base.held` can add it up for ``state_size``. Rules that need
only a rolling sum, or rolling totals with distinct numbers, use the shapes here; a rule with
its own bookkeeping keeps its own class.
"""

from __future__ import annotations

from callwarden.core.detectors.base import Evidence
from callwarden.core.detectors.windows import SlidingDistinct, SlidingSum, SlidingTotals, Window

__all__ = ["KeySum", "KeyTally"]


class KeySum:
    """A rolling sum (a count, or minutes) of one key over ``window``, and its evidence."""

    __slots__ = ("evidence", "sum")

    def __init__(self, window: Window, evidence: Evidence) -> None:
        self.sum = SlidingSum(window)
        self.evidence = evidence

    def size(self) -> int:
        """Buckets and evidence ids held."""
        return self.sum.size() + self.evidence.size()


class KeyTally:
    """Rolling totals of ``fields`` values of one key over ``window``, the distinct numbers it
    reached (at most ``cap``), and its evidence."""

    __slots__ = ("destinations", "evidence", "totals")

    def __init__(self, window: Window, fields: int, cap: int, evidence: Evidence) -> None:
        self.totals = SlidingTotals(window, fields)
        self.destinations: SlidingDistinct[str] = SlidingDistinct(window, cap=cap)
        self.evidence = evidence

    def size(self) -> int:
        """Buckets, distinct numbers and evidence ids held."""
        return self.totals.size() + self.destinations.size() + self.evidence.size()
