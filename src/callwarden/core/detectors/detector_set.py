"""Running every detector over the usage stream, with modes, parameters and allowlists per plan
and tenant.

Each detector runs, for a given tenant, under one :class:`DetectorPolicy`: the tenant's own if
it has one, else its plan's, else the default. A policy says:

- ``mode``: ``enforce`` (findings may trigger the suggested action), ``observe`` (findings open
  cases and trigger nothing: report-only, how the research advises rolling a detector out,
  ClearIP recommending at least a week; shared research, telecom anchors section 6.3) or
  ``off``. The modes are the admission rules' (:class:`RuleMode`): one name for one idea.
  Detectors default to observe.
- ``params``: the detector's parameter dataclass for these tenants (thresholds), or ``None``
  for the detector's own.
- allowlists: records of an allowlisted user, from or to an allowlisted number, or to an
  allowlisted destination prefix are not fed to the detector at all, so they neither raise
  findings nor count toward anyone's thresholds (the research's trusted numbers and bypass
  rules).

Every finding comes back marked with the mode it was raised under.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from callwarden.core.admission.policy import RuleMode
from callwarden.core.detectors.base import Detector, DetectorFinding, check_params
from callwarden.core.detectors.baseline import BaselineDetector
from callwarden.core.detectors.caller_rotation import CallerRotationDetector
from callwarden.core.detectors.context import DetectorContext, EventContext
from callwarden.core.detectors.emergency import EmergencyAbuseDetector
from callwarden.core.detectors.fair_use import FairUseDetector
from callwarden.core.detectors.irsf import IrsfDetector
from callwarden.core.detectors.pumping import PumpingDetector
from callwarden.core.detectors.robocall import RobocallDetector
from callwarden.core.detectors.sequential import SequentialDialingDetector
from callwarden.core.detectors.simbox import SimBoxDetector
from callwarden.core.detectors.wangiri import WangiriDetector
from callwarden.core.errors import InvalidInput
from callwarden.core.usage.record import (
    CallRecord,
    LoginRecord,
    MessageRecord,
    UsageKind,
    UsageRecord,
)

__all__ = [
    "DetectorConfig",
    "DetectorPolicy",
    "DetectorSet",
    "default_detectors",
]

_MAX_RESOLVED: Final[int] = 10_000

AnyDetector = Detector[Any]
_Run = tuple[
    Callable[[UsageRecord, EventContext, Any], list[DetectorFinding]],
    Any,
    RuleMode,
    "DetectorPolicy | None",
    int,
]
"""One detector to run for a tenant: its observe method, its parameters, the mode of its
policy, the policy when it has allowlists (else None), and its bit in an ``only`` mask."""
_KINDS: Final[dict[type, UsageKind]] = {
    CallRecord: UsageKind.CALL,
    MessageRecord: UsageKind.MESSAGE,
    LoginRecord: UsageKind.LOGIN,
}
_TYPES: Final[dict[UsageKind, type]] = {kind: record_type for record_type, kind in _KINDS.items()}


@dataclass(frozen=True, slots=True)
class DetectorPolicy:
    """How one detector runs for a plan or tenant: mode, parameters, allowlists.

    ``allow_numbers`` holds numbers as the records give them or in E.164; ``allow_destinations``
    holds E.164 digit prefixes (a leading '+' is ignored) of called numbers.
    """

    mode: RuleMode = RuleMode.OBSERVE
    params: object | None = None
    allow_users: frozenset[str] = field(default_factory=frozenset)
    allow_numbers: frozenset[str] = field(default_factory=frozenset)
    allow_destinations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.mode, RuleMode):
            object.__setattr__(self, "mode", RuleMode(self.mode))
        cleaned = tuple(p.strip().removeprefix("+") for p in self.allow_destinations)
        for prefix in cleaned:
            if not (prefix.isascii() and prefix.isdigit()):
                raise InvalidInput(
                    f"allowlisted destination prefix {prefix!r} must be E.164 digits",
                    field="allow_destinations",
                )
        object.__setattr__(self, "allow_destinations", cleaned)

    @property
    def has_allowlist(self) -> bool:
        """True when any allowlist is set."""
        return bool(self.allow_users or self.allow_numbers or self.allow_destinations)

    def exempts(self, ctx: EventContext) -> bool:
        """True when the record in ``ctx`` is allowlisted for this detector."""
        record = ctx.record
        if record.user_id is not None and record.user_id in self.allow_users:
            return True
        if self.allow_numbers:
            if isinstance(record, CallRecord):
                numbers: tuple[str | None, ...] = (record.caller, record.callee)
            elif isinstance(record, MessageRecord):
                numbers = (record.sender, record.recipient)
            else:
                numbers = ()
            callee = ctx.callee
            caller = ctx.caller
            numbers += (
                callee.e164 if callee is not None else None,
                caller.e164 if caller is not None else None,
            )
            if any(n is not None and n in self.allow_numbers for n in numbers):
                return True
        if self.allow_destinations:
            callee = ctx.callee
            if callee is not None and callee.e164 is not None:
                digits = callee.e164[1:]
                return any(digits.startswith(p) for p in self.allow_destinations)
        return False


_DEFAULT_POLICY: Final = DetectorPolicy()


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Detector policies by detector id: defaults, per plan id, per tenant id.

    The most specific policy wins whole (tenant, then plan, then default, then observe with the
    detector's own parameters); policies are not merged field by field.
    """

    defaults: Mapping[str, DetectorPolicy] = field(default_factory=dict)
    plans: Mapping[str, Mapping[str, DetectorPolicy]] = field(default_factory=dict)
    tenants: Mapping[str, Mapping[str, DetectorPolicy]] = field(default_factory=dict)

    def policy(self, detector_id: str, plan_id: str | None, tenant_id: str) -> DetectorPolicy:
        """The policy detector ``detector_id`` runs under for this tenant on this plan."""
        own = self.tenants.get(tenant_id)
        if own is not None and detector_id in own:
            return own[detector_id]
        if plan_id is not None:
            plan = self.plans.get(plan_id)
            if plan is not None and detector_id in plan:
                return plan[detector_id]
        return self.defaults.get(detector_id, _DEFAULT_POLICY)

    def all_policies(self) -> Iterable[tuple[str, str, DetectorPolicy]]:
        """Every (where, detector id, policy) it holds, for validation and display."""
        for detector_id, policy in self.defaults.items():
            yield "defaults", detector_id, policy
        for plan_id, policies in self.plans.items():
            for detector_id, policy in policies.items():
                yield f"plan {plan_id!r}", detector_id, policy
        for tenant_id, policies in self.tenants.items():
            for detector_id, policy in policies.items():
                yield f"tenant {tenant_id!r}", detector_id, policy


def default_detectors() -> list[AnyDetector]:
    """One of every detector, with default parameters and bounds."""
    return [
        IrsfDetector(),
        WangiriDetector(),
        BaselineDetector(),
        PumpingDetector(),
        SimBoxDetector(),
        RobocallDetector(),
        SequentialDialingDetector(),
        FairUseDetector(),
        EmergencyAbuseDetector(),
        CallerRotationDetector(),
    ]


class DetectorSet:
    """Every enabled detector, run for each record under the tenant's policies.

    Not thread-safe: one set per engine or worker, fed one record at a time (a consumer group
    partitions the stream by tenant so that each tenant's state lives in one worker).
    """

    __slots__ = ("_by_id", "_config", "_resolved", "context", "detectors")

    def __init__(
        self,
        detectors: Sequence[AnyDetector],
        context: DetectorContext,
        config: DetectorConfig | None = None,
    ) -> None:
        self.detectors = tuple(detectors)
        self._by_id: dict[str, AnyDetector] = {}
        for detector in self.detectors:
            if detector.id in self._by_id:
                raise InvalidInput(f"detector {detector.id!r} is given twice", field="detectors")
            self._by_id[detector.id] = detector
        self.context = context
        self._config = DetectorConfig()
        self._resolved: dict[tuple[str, str | None], dict[type, tuple[_Run, ...]]] = {}
        self.configure(config or DetectorConfig())

    @property
    def config(self) -> DetectorConfig:
        """The policies in force."""
        return self._config

    def configure(self, config: DetectorConfig) -> None:
        """Put new policies in force (detector state is kept).

        Raises ``InvalidInput`` naming the place and the detector when a policy names an
        unknown detector or carries parameters of the wrong type.
        """
        for where, detector_id, policy in config.all_policies():
            detector = self._by_id.get(detector_id)
            if detector is None:
                known = ", ".join(sorted(self._by_id))
                raise InvalidInput(
                    f"{where}: unknown detector {detector_id!r} (known: {known})",
                    field="detector",
                )
            if policy.params is not None and not isinstance(policy.params, detector.params_type):
                raise InvalidInput(
                    f"{where}: parameters of {detector_id!r} must be "
                    f"{detector.params_type.__name__}, got {type(policy.params).__name__}",
                    field="params",
                )
            if policy.params is not None:
                check_params(f"{where}: {detector_id}", policy.params)
        self._config = config
        self._resolved = {}

    def _runs(self, tenant_id: str, plan_id: str | None) -> dict[type, tuple[_Run, ...]]:
        """The detectors to run for this tenant, by record type, with their policies: resolved
        once per (tenant, plan) and kept until the policies change."""
        key = (tenant_id, plan_id)
        resolved = self._resolved.get(key)
        if resolved is None:
            config = self._config
            resolved = {}
            for record_type, kind in _KINDS.items():
                runs: list[_Run] = []
                for detector in self.detectors:
                    if kind not in detector.kinds:
                        continue
                    policy = config.policy(detector.id, plan_id, tenant_id)
                    if policy.mode is RuleMode.OFF:
                        continue
                    allowlist = policy if policy.has_allowlist else None
                    params = policy.params or detector.params
                    bit = 1 << self.detectors.index(detector)
                    runs.append((detector.observe, params, policy.mode, allowlist, bit))
                resolved[record_type] = tuple(runs)
            if len(self._resolved) >= _MAX_RESOLVED:
                self._resolved = {}
            self._resolved[key] = resolved
        return resolved

    def observe(self, record: UsageRecord, only: int | None = None) -> list[DetectorFinding]:
        """Feed ``record`` to every detector enabled for its tenant; return the findings,
        each marked with the mode of the detector that raised it.

        Only the detectors that read the record's kind and are not off for its tenant are
        called (resolved once per tenant); the record's context is built once for all of them.
        ``only``, a bit mask over :attr:`detectors` (bit i for ``detectors[i]``), restricts the
        record to those detectors: a backfill's pre-screen knows which ones need it.
        """
        ctx = EventContext(self.context, record)
        tenant = ctx.tenant
        findings: list[DetectorFinding] = []
        by_type = self._runs(tenant.tenant_id, tenant.plan_id)
        runs = by_type.get(type(record))
        if runs is None:  # a subclass of a record type
            runs = by_type[_TYPES[record.kind]]
        for observe, params, mode, allowlist, bit in runs:
            if only is not None and not only & bit:
                continue
            if allowlist is not None and allowlist.exempts(ctx):
                continue
            raised = observe(record, ctx, params)
            if raised:
                findings.extend(f if f.mode is mode else replace(f, mode=mode) for f in raised)
        return findings

    def observe_all(self, records: Iterable[UsageRecord]) -> list[DetectorFinding]:
        """Feed records in order; return every finding."""
        findings: list[DetectorFinding] = []
        for record in records:
            findings.extend(self.observe(record))
        return findings

    def state_size(self) -> dict[str, int]:
        """What each detector holds, by detector id."""
        return {detector.id: detector.state_size() for detector in self.detectors}
