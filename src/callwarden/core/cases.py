"""Surveillance cases: what a detector finding becomes once people have to look at it (FRD-3).

A :class:`Case` gathers the findings one detector raises about one key of one tenant while the
case is active (open or acknowledged): the first finding opens it, later ones update its last
sighting, count, severity (the highest seen) and evidence instead of opening another. People move
it to acknowledged, resolved or false positive. A case carries the clause ids of its detector,
the evidence (call ids, the statistic, its value, the threshold, the baseline) and the automatic
actions taken because of it, each reversible and possibly expiring.

:class:`ActionPolicy` says which findings trigger an automatic action: only findings raised in
enforce mode whose severity reaches ``threshold``; the action is the one the policy binds to the
severity, else the detector's suggestion.

Pure core: no I/O and no clock; times are handed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from callwarden.core.admission.policy import RuleMode
from callwarden.core.detectors.base import DetectorFinding, KeyKind, Severity, SuggestedAction
from callwarden.core.errors import Conflict, InvalidInput
from callwarden.core.model import ThrottleRates
from callwarden.core.validation import check_choice, check_fields

__all__ = [
    "ACTIVE_STATUSES",
    "DEFAULT_THROTTLE",
    "MAX_CASE_EVIDENCE",
    "ActionPolicy",
    "ActionStatus",
    "Case",
    "CaseAction",
    "CaseEvidence",
    "CaseStatus",
    "action_policy_from_json",
    "action_policy_to_json",
    "change_status",
    "merge_finding",
    "open_case",
]

#: How a ``throttle`` action tightens attempt rates unless the action policy says otherwise: to a
#: tenth of the plan's (an engineering default: 10 attempts a second become 1, 300 a minute 30).
DEFAULT_THROTTLE: Final[ThrottleRates] = ThrottleRates(fraction=0.1)

#: The call ids a case keeps as evidence (the most recent), whatever the number of findings.
MAX_CASE_EVIDENCE: Final[int] = 50


class CaseStatus(StrEnum):
    """Where a case stands in its review."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    FALSE_POSITIVE = "false_positive"


#: Statuses in which a new finding for the same key updates the case rather than opening one.
ACTIVE_STATUSES: Final[frozenset[CaseStatus]] = frozenset(
    {CaseStatus.OPEN, CaseStatus.ACKNOWLEDGED}
)

_NEXT: Final[dict[CaseStatus, frozenset[CaseStatus]]] = {
    CaseStatus.OPEN: frozenset(
        {CaseStatus.ACKNOWLEDGED, CaseStatus.RESOLVED, CaseStatus.FALSE_POSITIVE}
    ),
    CaseStatus.ACKNOWLEDGED: frozenset({CaseStatus.RESOLVED, CaseStatus.FALSE_POSITIVE}),
    CaseStatus.RESOLVED: frozenset(),
    CaseStatus.FALSE_POSITIVE: frozenset(),
}


class ActionStatus(StrEnum):
    """What became of an automatic action.

    ``applied``: in force. ``reverted``: undone by a person. ``expired``: undone when its
    ``expires_at`` passed. ``skipped``: not taken, with the reason in ``note`` (the target was
    already suspended or blocked, or nothing identifies it).
    """

    APPLIED = "applied"
    REVERTED = "reverted"
    EXPIRED = "expired"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class CaseEvidence:
    """The numbers behind a case, from its latest finding, and the call ids of all of them."""

    statistic: str
    value: float
    threshold: float
    score: float
    summary: str
    baseline: float | None = None
    call_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CaseAction:
    """One automatic action taken because of a case.

    ``kind`` is what was done; ``target`` what it was done to: a tenant id, a user id, a number
    id or a destination prefix (E.164 digits). ``reference`` holds what the action needs to be
    undone (the number's E.164 form, the prefix's label).
    """

    id: str
    case_id: str
    kind: SuggestedAction
    target: str
    status: ActionStatus
    created_at: datetime
    severity: Severity
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    reference: str | None = None
    note: str | None = None

    @property
    def in_force(self) -> bool:
        """True while the action is applied and not yet reverted or expired."""
        return self.status is ActionStatus.APPLIED


@dataclass(frozen=True, slots=True)
class Case:
    """Findings of one detector about one key of one tenant, under review."""

    id: str
    tenant_id: str | None
    detector: str
    clause_ids: tuple[str, ...]
    key_kind: KeyKind
    key: str
    window: str
    severity: Severity
    status: CaseStatus
    mode: RuleMode
    first_seen: datetime
    last_seen: datetime
    finding_count: int
    evidence: CaseEvidence
    created_at: datetime
    updated_at: datetime
    note: str | None = None
    actions: tuple[CaseAction, ...] = field(default=())

    @property
    def active(self) -> bool:
        """True while new findings for its key update it (open or acknowledged)."""
        return self.status in ACTIVE_STATUSES


def _evidence(finding: DetectorFinding, call_ids: tuple[str, ...]) -> CaseEvidence:
    return CaseEvidence(
        statistic=finding.statistic,
        value=finding.value,
        threshold=finding.threshold,
        score=finding.score,
        summary=finding.summary,
        baseline=finding.baseline,
        call_ids=call_ids[-MAX_CASE_EVIDENCE:],
    )


def open_case(case_id: str, finding: DetectorFinding, now: datetime) -> Case:
    """A new open case for ``finding``."""
    return Case(
        id=case_id,
        tenant_id=finding.tenant_id,
        detector=finding.detector,
        clause_ids=finding.clause_ids,
        key_kind=finding.key_kind,
        key=finding.key,
        window=finding.window,
        severity=finding.severity,
        status=CaseStatus.OPEN,
        mode=finding.mode,
        first_seen=finding.at,
        last_seen=finding.at,
        finding_count=1,
        evidence=_evidence(finding, finding.evidence),
        created_at=now,
        updated_at=now,
    )


def merge_finding(case: Case, finding: DetectorFinding, now: datetime) -> Case:
    """``case`` updated with a later finding about the same key: last sighting, count, the
    highest severity seen, the latest numbers and the union of call ids (most recent kept).

    Raises ``InvalidInput`` when the finding is about another tenant, detector or key.
    """
    if (case.tenant_id, case.detector, case.key_kind, case.key) != (
        finding.tenant_id,
        finding.detector,
        finding.key_kind,
        finding.key,
    ):
        raise InvalidInput(
            f"finding of {finding.detector} about {finding.key_kind.value} {finding.key} "
            f"does not belong to case {case.id}",
            field="finding",
        )
    seen = dict.fromkeys(case.evidence.call_ids)
    seen.update(dict.fromkeys(finding.evidence))
    severity = finding.severity if finding.severity.rank > case.severity.rank else case.severity
    return replace(
        case,
        severity=severity,
        window=finding.window,
        mode=finding.mode,
        first_seen=min(case.first_seen, finding.at),
        last_seen=max(case.last_seen, finding.at),
        finding_count=case.finding_count + 1,
        evidence=_evidence(finding, tuple(seen)),
        updated_at=now,
    )


def change_status(case: Case, status: CaseStatus, note: str | None, now: datetime) -> Case:
    """``case`` moved to ``status`` (open -> acknowledged -> resolved or false positive).

    Raises ``Conflict`` naming both statuses for a move the review does not allow (a resolved
    or false-positive case is closed for good; a later finding opens a new case).
    """
    if status not in _NEXT[case.status]:
        raise Conflict(
            f"case {case.id} is {case.status.value} and cannot become {status.value}",
            field="status",
        )
    return replace(case, status=status, note=note, updated_at=now)


@dataclass(frozen=True, slots=True)
class ActionPolicy:
    """Which findings trigger an automatic action, which action, and for how long.

    - ``threshold``: the least severity that acts (default high); observed findings never act.
    - ``by_severity``: the action bound to a severity (for example critical -> suspend the
      tenant); a severity not listed takes the detector's suggested action.
    - ``expire_after_s``: per action kind, how long it stays in force before it is undone by
      itself; a kind not listed stays until a person reverts it.
    - ``throttle``: how a ``throttle`` action tightens the target's attempt rates (a tenth of
      the plan's unless set).
    """

    threshold: Severity = Severity.HIGH
    by_severity: Mapping[Severity, SuggestedAction] = field(default_factory=dict)
    expire_after_s: Mapping[SuggestedAction, float] = field(default_factory=dict)
    throttle: ThrottleRates = DEFAULT_THROTTLE

    def __post_init__(self) -> None:
        for kind, seconds in self.expire_after_s.items():
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not (0 < seconds < float("inf"))
            ):
                raise InvalidInput(
                    f"expire_after_s[{kind.value}] must be a positive number of seconds, "
                    f"got {seconds!r}",
                    field=f"expire_after_s.{kind.value}",
                )

    def action_for(self, finding: DetectorFinding) -> SuggestedAction | None:
        """The action ``finding`` triggers, or None (observe mode, below the threshold, or
        nothing to do)."""
        if finding.mode is not RuleMode.ENFORCE or finding.severity.rank < self.threshold.rank:
            return None
        action = self.by_severity.get(finding.severity, finding.action)
        return None if action is SuggestedAction.NONE else action


def action_policy_to_json(policy: ActionPolicy) -> dict[str, Any]:
    """The action policy as a JSON object (numbers of seconds and fractions as floats)."""
    rates = policy.throttle
    return {
        "threshold": policy.threshold.value,
        "by_severity": {s.value: a.value for s, a in policy.by_severity.items()},
        "expire_after_s": {k.value: float(v) for k, v in policy.expire_after_s.items()},
        "throttle": {
            "fraction": rates.fraction,
            "attempts_per_second": rates.attempts_per_second,
            "attempts_per_minute": rates.attempts_per_minute,
        },
    }


def _enum_map(data: object, name: str) -> Mapping[str, object]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{name} must be an object", field=name)
    return data


def action_policy_from_json(data: Mapping[str, object]) -> ActionPolicy:
    """The inverse of :func:`action_policy_to_json`.

    Raises ``InvalidInput`` naming the field for an unknown severity or action, or a bad expiry.
    """
    check_fields(
        data, ("threshold", "by_severity", "expire_after_s", "throttle"), "the action policy"
    )
    threshold = check_choice(data.get("threshold", Severity.HIGH.value), Severity, "threshold")
    by_severity: dict[Severity, SuggestedAction] = {}
    for key, value in _enum_map(data.get("by_severity"), "by_severity").items():
        try:
            by_severity[Severity(key)] = SuggestedAction(str(value))
        except ValueError:
            raise InvalidInput(
                f"by_severity: {key!r} -> {value!r} is not a severity and an action",
                field=f"by_severity.{key}",
            ) from None
    expire: dict[SuggestedAction, float] = {}
    for key, value in _enum_map(data.get("expire_after_s"), "expire_after_s").items():
        try:
            kind = SuggestedAction(key)
        except ValueError:
            raise InvalidInput(
                f"expire_after_s: {key!r} is not an action", field=f"expire_after_s.{key}"
            ) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidInput(
                f"expire_after_s.{key} must be a number of seconds", field=f"expire_after_s.{key}"
            )
        expire[kind] = float(value)
    throttle = DEFAULT_THROTTLE
    raw = data.get("throttle")
    if raw is not None:
        rates = _enum_map(raw, "throttle")
        extra = set(rates) - {"fraction", "attempts_per_second", "attempts_per_minute"}
        if extra:
            name = sorted(extra)[0]
            raise InvalidInput(f"throttle.{name} is not a throttle field", field=f"throttle.{name}")
        try:
            throttle = ThrottleRates(
                fraction=rates.get("fraction"),  # type: ignore[arg-type]
                attempts_per_second=rates.get("attempts_per_second"),  # type: ignore[arg-type]
                attempts_per_minute=rates.get("attempts_per_minute"),  # type: ignore[arg-type]
            )
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field=f"throttle.{exc.field}") from None
    return ActionPolicy(
        threshold=threshold, by_severity=by_severity, expire_after_s=expire, throttle=throttle
    )
