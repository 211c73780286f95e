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

The pieces every detector repeats live here once: which party a record is keyed on
(:func:`key_for` with a :data:`KeyOrder`), two-level thresholds (:func:`tier`), the action
against a party (:func:`suspend_action`), per-key state bounded by ``max_keys`` with its own
evidence (:meth:`Detector.per_key`, :func:`held`) and "dedup, then build the finding"
(:meth:`Detector.raise_once`). A detector module keeps only its own rule.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Protocol, TypeVar

from callwarden.core.admission.policy import RuleMode
from callwarden.core.detectors.windows import LruMap, Window
from callwarden.core.errors import InvalidInput
from callwarden.core.usage.record import UsageKind, UsageRecord

if TYPE_CHECKING:
    from callwarden.core.detectors.context import EventContext

__all__ = [
    "DEFAULT_MAX_EVIDENCE",
    "DEFAULT_MAX_KEYS",
    "NUMBER_THEN_USER",
    "USER_THEN_NUMBER",
    "Dedup",
    "Detector",
    "DetectorFinding",
    "Evidence",
    "KeyKind",
    "KeyOrder",
    "Severity",
    "SuggestedAction",
    "check_params",
    "held",
    "key_for",
    "suspend_action",
    "tier",
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
S = TypeVar("S")
K = TypeVar("K", bound=Hashable)


class _Sized(Protocol):
    def size(self) -> int: ...


Z = TypeVar("Z", bound=_Sized)


KeyOrder = tuple[tuple[KeyKind, str], ...]
"""A detector's order of preference for the party it keys a record on: (kind, record field)."""

#: The user, else the presenting number (else the tenant).
USER_THEN_NUMBER: Final[KeyOrder] = ((KeyKind.USER, "user_id"), (KeyKind.NUMBER, "caller"))
#: The presenting number, else the user (else the tenant).
NUMBER_THEN_USER: Final[KeyOrder] = ((KeyKind.NUMBER, "caller"), (KeyKind.USER, "user_id"))


def key_for(record: object, tenant: str, order: KeyOrder) -> tuple[KeyKind, str]:
    """The first ``(kind, key)`` in ``order`` whose field is set on ``record``, else the tenant.

    Each detector keys its state on the narrowest party a record names (a user, a number, a
    trunk...), in its own order of preference, and falls back to the whole tenant when the
    record names none of them. A field the record's type does not have counts as unset.
    """
    for kind, field in order:
        key: str | None = getattr(record, field, None)
        if key:
            return kind, key
    return KeyKind.TENANT, tenant


def tier(value: float, warn: float, high: float) -> tuple[Severity, float]:
    """The severity of ``value`` against a warning and a high level, with the level it crossed.

    For the two-level rules (warn at one count, escalate at a larger one): high with ``high``
    once ``value`` reaches it, else medium with ``warn``. The caller checks ``warn`` first.
    """
    if value >= high:
        return Severity.HIGH, high
    return Severity.MEDIUM, warn


def suspend_action(key_kind: KeyKind) -> SuggestedAction:
    """The strongest action against the party a finding is about.

    A number or a user can be suspended on its own; a trunk, an address or a whole tenant is
    only throttled, since suspending it would stop innocent traffic behind it.
    """
    if key_kind is KeyKind.NUMBER:
        return SuggestedAction.SUSPEND_NUMBER
    if key_kind is KeyKind.USER:
        return SuggestedAction.SUSPEND_USER
    return SuggestedAction.THROTTLE


def held(states: LruMap[K, Z]) -> int:
    """Keys of a per-key map plus what their states hold, for :meth:`Detector.state_size`."""
    size = len(states)
    for state in states.values():
        size += state.size()
    return size


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
    clauses its findings cite), ``params_type`` (its frozen parameter dataclass, whose defaults
    apply when no parameters are given) and, when they read more than calls, ``kinds`` (the
    record kinds they read; others are never passed to them by a
    :class:`~callwarden.core.detectors.detector_set.DetectorSet`).
    """

    id: ClassVar[str]
    clause_ids: ClassVar[tuple[str, ...]]
    kinds: ClassVar[frozenset[UsageKind]] = frozenset({UsageKind.CALL})
    params_type: ClassVar[type]

    def __init__(
        self,
        params: P | None = None,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        max_evidence: int = DEFAULT_MAX_EVIDENCE,
    ) -> None:
        chosen: P = self.params_type() if params is None else params
        if not isinstance(chosen, self.params_type):
            raise TypeError(
                f"{self.id}: parameters must be {self.params_type.__name__}, "
                f"got {type(chosen).__name__}"
            )
        check_params(self.id, chosen)
        if max_keys < 1 or max_evidence < 0:
            raise ValueError(f"{self.id}: max_keys must be positive and max_evidence not negative")
        self.params = chosen
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

    def per_key(self, factory: Callable[[Evidence], S]) -> LruMap[Any, S]:
        """A map of per-key state bounded by ``max_keys``, each state made by ``factory`` with
        its own evidence queue of ``max_evidence`` ids: the memory bound every detector keeps.
        """
        evidence = self._evidence
        return LruMap(lambda: factory(evidence()), self.max_keys)

    def raise_once(
        self,
        ctx: EventContext,
        topic: str,
        key_kind: KeyKind,
        key: str,
        severity: Severity,
        window: Window,
        *,
        statistic: str,
        value: float,
        threshold: float,
        summary: str | Callable[[], str],
        evidence: Sequence[str] = (),
        action: SuggestedAction = SuggestedAction.NONE,
        hold_s: float | None = None,
    ) -> list[DetectorFinding]:
        """The finding (see :meth:`finding`) in a list, or none while an as severe one stands.

        :class:`Dedup` holds a raised finding for ``(topic, tenant, key)`` for ``hold_s``
        seconds (the window's span by default), so a rule that stays true does not repeat
        itself on every record; a more severe one goes through at once. ``summary`` may be a
        function making the text: it is then called only when the finding is raised, so a rule
        that stays true over many records pays for no formatting on each of them.
        """
        hold = window.span_s if hold_s is None else hold_s
        if not self.dedup.allow((topic, ctx.tenant.tenant_id, key), ctx.at, hold, severity):
            return []
        return [
            self.finding(
                ctx,
                key_kind=key_kind,
                key=key,
                severity=severity,
                window=window.name,
                statistic=statistic,
                value=value,
                threshold=threshold,
                summary=summary if isinstance(summary, str) else summary(),
                evidence=tuple(evidence),
                action=action,
            )
        ]

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
