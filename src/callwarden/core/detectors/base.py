"""The detector interface: feed one usage record, get the findings it caused.

In the spirit of online learning libraries (one small learn-and-predict step per event), a
:class:`Detector` has one method that matters, :meth:`Detector.observe`: it updates the
detector's bounded state with the record and returns a list of :class:`DetectorFinding`, almost
always empty. The same object runs in the embedded engine and in workers reading the usage
stream; it does no I/O and reads no clock, since time comes from the records.

Each detector has a frozen parameter dataclass with documented defaults (thresholds, which a
plan or tenant may override per call of ``observe``) and constructor bounds (``max_keys``,
``max_evidence``) that fix its memory whatever the traffic; :meth:`Detector.state_size` reports
what it holds, for the memory-bound tests and for metrics.

A finding is not repeated for the same key and window until that window has moved on
(:class:`Dedup`), unless it got more severe.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Final, Generic, TypeVar

from callwarden.core.admission.policy import RuleMode
from callwarden.core.detectors.windows import LruMap
from callwarden.core.errors import InvalidInput
from callwarden.core.usage.record import UsageKind, UsageRecord

if TYPE_CHECKING:
    from callwarden.core.detectors.context import EventContext

__all__ = [
    "DEFAULT_MAX_EVIDENCE",
    "DEFAULT_MAX_KEYS",
    "Dedup",
    "Detector",
    "DetectorFinding",
    "Evidence",
    "KeyKind",
    "Severity",
    "SuggestedAction",
    "check_params",
]

#: Default bound on the keys (tenants, users, numbers...) one detector structure tracks.
DEFAULT_MAX_KEYS: Final[int] = 50_000
#: Default bound on the call ids a finding carries as evidence.
DEFAULT_MAX_EVIDENCE: Final[int] = 20


class Severity(StrEnum):
    """How bad a finding is; automatic actions are bound to severities downstream (FRD-3)."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info up to 4 for critical, for comparisons."""
        return _RANK[self]


_RANK: Final[dict[Severity, int]] = {s: i for i, s in enumerate(Severity)}


class SuggestedAction(StrEnum):
    """What the detector suggests doing about a finding in enforce mode."""

    NONE = "none"
    BLOCK_PREFIX = "block_prefix"
    THROTTLE = "throttle"
    SUSPEND_USER = "suspend_user"
    SUSPEND_NUMBER = "suspend_number"
    SUSPEND_TENANT = "suspend_tenant"


class KeyKind(StrEnum):
    """What a finding is about."""

    TENANT = "tenant"
    USER = "user"
    NUMBER = "number"
    DESTINATION = "destination"
    TRUNK = "trunk"
    SOURCE_IP = "source_ip"
    CAMPAIGN = "campaign"


@dataclass(frozen=True, slots=True)
class DetectorFinding:
    """One detector's conclusion about one key, with the numbers and evidence behind it.

    ``statistic`` names what was measured and ``value`` is its measure; ``threshold`` is the
    level it crossed and ``baseline`` the norm it was compared with, when there is one.
    ``score`` is ``value / threshold`` (1 or more): how far past the line. ``window`` names the
    rolling window (``5m``, ``15m``, ``60m``, ``24h``, ``hour-of-week``). ``evidence`` holds the
    ids of the calls (or messages) behind it, the most recent last, at most the detector's
    ``max_evidence``. ``mode`` says whether the detector runs enforced or only observed for this
    tenant: an observed finding opens a case and triggers no action. ``at`` is the time of the
    record that raised it.
    """

    detector: str
    clause_ids: tuple[str, ...]
    tenant_id: str | None
    key_kind: KeyKind
    key: str
    severity: Severity
    score: float
    window: str
    statistic: str
    value: float
    threshold: float
    at: datetime
    summary: str
    baseline: float | None = None
    evidence: tuple[str, ...] = ()
    action: SuggestedAction = SuggestedAction.NONE
    mode: RuleMode = RuleMode.ENFORCE


class Evidence(deque[str]):
    """The most recent call ids of one key, at most ``size`` (a bounded queue)."""

    __slots__ = ()

    def __init__(self, size: int) -> None:
        super().__init__((), size)

    add = deque.append
    """Remember a call id (the oldest is forgotten when full)."""

    def ids(self) -> tuple[str, ...]:
        """The remembered ids, oldest first."""
        return tuple(self)

    def size(self) -> int:
        """Ids held."""
        return len(self)


class Dedup:
    """Remembers which findings were raised, so one is not repeated while its window holds.

    A finding for (key, window) is let through when none was raised for it, when the last one
    was raised ``window_s`` or more before, or when the new one is more severe. Holds at most
    ``max_keys`` entries (the least recently raised go first).
    """

    __slots__ = ("_last",)

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self._last: LruMap[Hashable, list[float]] = LruMap(lambda: [-1.0, -1.0, -1.0], max_keys)

    def allow(self, key: Hashable, at: float, window_s: float, severity: Severity) -> bool:
        """True when a finding for ``key`` at ``at`` should be raised; records it if so."""
        held = self._last.peek(key)
        rank = severity.rank
        if held is not None and at < held[1] and rank <= held[2]:
            return False
        entry = self._last.get(key)
        entry[0], entry[1], entry[2] = at, at + window_s, rank
        return True

    def size(self) -> int:
        """Keys held."""
        return len(self._last)


P = TypeVar("P")


def check_params(detector_id: str, params: object) -> None:
    """Refuse parameters no detector can run with, naming the detector and the field.

    Every number must be finite and not negative (a threshold of 0 is allowed and means "any");
    shares and rates (fields ending in ``_share`` or ``_rate``) must lie between 0 and 1.
    """
    if not is_dataclass(params):
        return
    for item in fields(params):
        value = getattr(params, item.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        where = f"{detector_id}: {item.name}"
        if not math.isfinite(value) or value < 0:
            raise InvalidInput(
                f"{where} must be a number of 0 or more, got {value!r}", field=item.name
            )
        if item.name.endswith(("_share", "_rate")) and value > 1:
            raise InvalidInput(
                f"{where} is a share and must be at most 1, got {value!r}", field=item.name
            )


class Detector(ABC, Generic[P]):
    """A streaming detector: ``observe`` one record at a time, get findings.

    Subclasses set ``id`` (stable, used in configuration and findings), ``clause_ids`` (the
    clauses its findings cite), ``kinds`` (the record kinds it reads; others are never passed
    to it by a :class:`~callwarden.core.detectors.detector_set.DetectorSet`) and ``params_type``
    (its frozen parameter dataclass).
    """

    id: ClassVar[str]
    clause_ids: ClassVar[tuple[str, ...]]
    kinds: ClassVar[frozenset[UsageKind]]
    params_type: ClassVar[type]

    def __init__(
        self,
        params: P,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        max_evidence: int = DEFAULT_MAX_EVIDENCE,
    ) -> None:
        if not isinstance(params, self.params_type):
            raise TypeError(
                f"{self.id}: parameters must be {self.params_type.__name__}, "
                f"got {type(params).__name__}"
            )
        check_params(self.id, params)
        if max_keys < 1 or max_evidence < 0:
            raise ValueError(f"{self.id}: max_keys must be positive and max_evidence not negative")
        self.params = params
        self.max_keys = max_keys
        self.max_evidence = max_evidence
        self.dedup = Dedup(max_keys)

    @abstractmethod
    def observe(
        self, event: UsageRecord, ctx: EventContext, params: P | None = None
    ) -> list[DetectorFinding]:
        """Feed one record; return the findings it caused (usually none).

        ``params`` replaces the detector's own parameters for this record (a plan's or
        tenant's thresholds); ``None`` uses ``self.params``.
        """

    @abstractmethod
    def state_size(self) -> int:
        """How many entries (keys, buckets, values, ids) the detector holds now."""

    def _evidence(self) -> Evidence:
        return Evidence(self.max_evidence)

    def finding(
        self,
        ctx: EventContext,
        *,
        key_kind: KeyKind,
        key: str,
        severity: Severity,
        window: str,
        statistic: str,
        value: float,
        threshold: float,
        summary: str,
        baseline: float | None = None,
        evidence: tuple[str, ...] = (),
        action: SuggestedAction = SuggestedAction.NONE,
    ) -> DetectorFinding:
        """A finding of this detector about ``key``, for the record in ``ctx``."""
        return DetectorFinding(
            detector=self.id,
            clause_ids=self.clause_ids,
            tenant_id=ctx.tenant.tenant_id or None,
            key_kind=key_kind,
            key=key,
            severity=severity,
            score=round(value / threshold, 3) if threshold > 0 else float(value > 0),
            window=window,
            statistic=statistic,
            value=value,
            threshold=threshold,
            at=datetime.fromtimestamp(ctx.at, UTC),
            summary=summary,
            baseline=baseline,
            evidence=evidence[-self.max_evidence :] if self.max_evidence else (),
            action=action,
        )
