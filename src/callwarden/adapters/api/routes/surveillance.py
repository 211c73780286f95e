"""Surveillance configuration (operators): detector policies by default, per plan and per
tenant, and the automatic-action policy (FRD-2, FRD-3).

Named like the admission rule policies (routes/rules.py): ``/v1/plans/{plan_id}/detectors``
beside ``/v1/plans/{plan_id}/rules``. Every change is audited with the policy before and after
and put in force by surveillance without a restart.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field, Strict, StrictBool, StrictFloat, StrictInt, StringConstraints

from callwarden.adapters.api.auth import Caller, PlatformDep
from callwarden.adapters.api.errors import ERROR_RESPONSES
from callwarden.adapters.api.schemas import Model, PlanId, TenantId, UserRef
from callwarden.core.admission.policy import RuleMode
from callwarden.core.cases import DEFAULT_THROTTLE, ActionPolicy
from callwarden.core.detectors.base import Severity, SuggestedAction
from callwarden.core.detectors.detector_set import DetectorPolicy
from callwarden.core.detectors.policy_json import DetectorInfo, params_to_json
from callwarden.core.errors import InvalidInput
from callwarden.core.model import ThrottleRates
from callwarden.platform import Platform

router = APIRouter(tags=["surveillance"], responses=ERROR_RESPONSES)

DetectorId = Annotated[
    str, Path(pattern=r"^[a-z][a-z_]{0,63}$", description="A detector id, e.g. irsf")
]
ParamName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z_]+$")]
ParamValue = StrictBool | StrictInt | StrictFloat
NumberRef = Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{3,15}$")]
Prefix = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,15}$")]
Seconds = Annotated[float, Field(gt=0, le=31_536_000)]


class DetectorPolicyBody(Model):
    """How a detector runs: enforce (findings may act), observe (cases only) or off; its
    parameters (fields not given take the detector's defaults; null for the detector's own);
    and the users, numbers and destination prefixes whose records it does not see."""

    mode: RuleMode = RuleMode.OBSERVE
    params: dict[ParamName, ParamValue] | None = Field(default=None, max_length=64)
    allow_users: list[UserRef] = Field(default_factory=list, max_length=1000)
    allow_numbers: list[NumberRef] = Field(default_factory=list, max_length=1000)
    allow_destinations: list[Prefix] = Field(default_factory=list, max_length=1000)

    def to_core(self, p: Platform, detector: str) -> DetectorPolicy:
        """The checked core policy (a 422 naming the field when a parameter is wrong)."""
        return p.surveillance.config.build_policy(
            detector,
            mode=self.mode.value,
            params=self.params,
            allow_users=self.allow_users,
            allow_numbers=self.allow_numbers,
            allow_destinations=self.allow_destinations,
        )

    @classmethod
    def of(cls, policy: DetectorPolicy) -> DetectorPolicyBody:
        """The body of a core policy."""
        return cls(
            mode=policy.mode,
            params=None if policy.params is None else params_to_json(policy.params),
            allow_users=sorted(policy.allow_users),
            allow_numbers=sorted(policy.allow_numbers),
            allow_destinations=list(policy.allow_destinations),
        )


class ParamFieldOut(BaseModel):
    """One parameter of a detector, with its type and default."""

    name: str
    type: str
    default: ParamValue


class DetectorOut(BaseModel):
    """A detector: its id, the clauses its findings cite, the record kinds it reads, its
    parameters with their defaults, and the default policy operators set for it (null: observe
    with the detector's own parameters)."""

    id: str
    clause_ids: list[str]
    kinds: list[str]
    params: list[ParamFieldOut]
    default_policy: DetectorPolicyBody | None


class ThrottleRatesBody(Model):
    """How a throttle tightens attempt rates: a fraction of the plan's, fixed rates, or both
    (the tighter holds in each window)."""

    fraction: Annotated[float, Field(gt=0, le=1)] | None = None
    attempts_per_second: Annotated[int, Strict(), Field(ge=1, le=100_000)] | None = None
    attempts_per_minute: Annotated[int, Strict(), Field(ge=1, le=6_000_000)] | None = None

    def to_core(self, where: str = "") -> ThrottleRates:
        """The core rates; a 422 naming the field when none is given."""
        try:
            return ThrottleRates(
                fraction=self.fraction,
                attempts_per_second=self.attempts_per_second,
                attempts_per_minute=self.attempts_per_minute,
            )
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field=f"{where}{exc.field}") from None

    @classmethod
    def of(cls, rates: ThrottleRates) -> ThrottleRatesBody:
        """The body of core rates."""
        return cls(
            fraction=rates.fraction,
            attempts_per_second=rates.attempts_per_second,
            attempts_per_minute=rates.attempts_per_minute,
        )


class ActionPolicyBody(Model):
    """Which findings act (enforce mode, at least ``threshold``), the action bound to a
    severity (else the detector's suggestion), how long each kind of action lasts (seconds;
    not listed: until reverted) and how a throttle tightens attempt rates."""

    threshold: Severity = Severity.HIGH
    by_severity: dict[Severity, SuggestedAction] = Field(default_factory=dict)
    expire_after_s: dict[SuggestedAction, Seconds] = Field(default_factory=dict)
    throttle: ThrottleRatesBody = Field(
        default_factory=lambda: ThrottleRatesBody.of(DEFAULT_THROTTLE)
    )

    def to_core(self) -> ActionPolicy:
        """The core action policy."""
        return ActionPolicy(
            threshold=self.threshold,
            by_severity=dict(self.by_severity),
            expire_after_s=dict(self.expire_after_s),
            throttle=self.throttle.to_core("throttle."),
        )

    @classmethod
    def of(cls, policy: ActionPolicy) -> ActionPolicyBody:
        """The body of a core action policy."""
        return cls(
            threshold=policy.threshold,
            by_severity=dict(policy.by_severity),
            expire_after_s={k: float(v) for k, v in policy.expire_after_s.items()},
            throttle=ThrottleRatesBody.of(policy.throttle),
        )


def _detector_out(info: DetectorInfo, policy: DetectorPolicy | None) -> DetectorOut:
    return DetectorOut(
        id=info.id,
        clause_ids=list(info.clause_ids),
        kinds=list(info.kinds),
        params=[ParamFieldOut(name=f.name, type=f.type, default=f.default) for f in info.params],
        default_policy=DetectorPolicyBody.of(policy) if policy is not None else None,
    )


@router.get("/v1/surveillance/detectors")
def list_detectors(by: Caller, p: PlatformDep) -> list[DetectorOut]:
    """Every detector, its clauses, parameters with defaults, and its default policy
    (operators)."""
    config = p.surveillance.config
    defaults = config.policies(by, "default")
    return [_detector_out(info, defaults.get(info.id)) for info in config.detectors()]


@router.put("/v1/surveillance/detectors/{detector}")
def set_default_detector_policy(
    detector: DetectorId, body: DetectorPolicyBody, by: Caller, p: PlatformDep
) -> DetectorPolicyBody:
    """Set how a detector runs for every tenant (a plan's or tenant's own policy wins)."""
    p.surveillance.config.authorize_change(by)
    policy = body.to_core(p, detector)
    return DetectorPolicyBody.of(
        p.surveillance.config.set_policy(by, "default", "", detector, policy)
    )


@router.delete("/v1/surveillance/detectors/{detector}", status_code=204)
def delete_default_detector_policy(detector: DetectorId, by: Caller, p: PlatformDep) -> Response:
    """Return the detector to observe mode with its own parameters by default."""
    p.surveillance.config.delete_policy(by, "default", "", detector)
    return Response(status_code=204)


def _policies(p: Platform, by: Caller, scope: str, scope_id: str) -> dict[str, DetectorPolicyBody]:
    found = p.surveillance.config.policies(by, scope, scope_id)
    return {detector: DetectorPolicyBody.of(policy) for detector, policy in found.items()}


def _set(
    p: Platform, by: Caller, scope: str, scope_id: str, detector: str, body: DetectorPolicyBody
) -> DetectorPolicyBody:
    config = p.surveillance.config
    config.authorize_change(by)
    policy = body.to_core(p, detector)
    return DetectorPolicyBody.of(config.set_policy(by, scope, scope_id, detector, policy))


@router.get("/v1/plans/{plan_id}/detectors")
def plan_detector_policies(
    plan_id: PlanId, by: Caller, p: PlatformDep
) -> dict[str, DetectorPolicyBody]:
    """The detector policies a plan sets (detectors not listed take the default policy)."""
    return _policies(p, by, "plan", plan_id)


@router.put("/v1/plans/{plan_id}/detectors/{detector}")
def set_plan_detector_policy(
    plan_id: PlanId, detector: DetectorId, body: DetectorPolicyBody, by: Caller, p: PlatformDep
) -> DetectorPolicyBody:
    """Set how a detector runs for every tenant on the plan (a tenant's own policy wins)."""
    return _set(p, by, "plan", plan_id, detector, body)


@router.delete("/v1/plans/{plan_id}/detectors/{detector}", status_code=204)
def delete_plan_detector_policy(
    plan_id: PlanId, detector: DetectorId, by: Caller, p: PlatformDep
) -> Response:
    """Drop the plan's policy for the detector (the default policy applies again)."""
    p.surveillance.config.delete_policy(by, "plan", plan_id, detector)
    return Response(status_code=204)


@router.get("/v1/tenants/{tenant_id}/detectors")
def tenant_detector_policies(
    tenant_id: TenantId, by: Caller, p: PlatformDep
) -> dict[str, DetectorPolicyBody]:
    """The detector policies set for this tenant (they override its plan's and the default)."""
    return _policies(p, by, "tenant", tenant_id)


@router.put("/v1/tenants/{tenant_id}/detectors/{detector}")
def set_tenant_detector_policy(
    tenant_id: TenantId, detector: DetectorId, body: DetectorPolicyBody, by: Caller, p: PlatformDep
) -> DetectorPolicyBody:
    """Set how a detector runs for this tenant."""
    return _set(p, by, "tenant", tenant_id, detector, body)


@router.delete("/v1/tenants/{tenant_id}/detectors/{detector}", status_code=204)
def delete_tenant_detector_policy(
    tenant_id: TenantId, detector: DetectorId, by: Caller, p: PlatformDep
) -> Response:
    """Drop the tenant's own policy for the detector (its plan's or the default applies)."""
    p.surveillance.config.delete_policy(by, "tenant", tenant_id, detector)
    return Response(status_code=204)


@router.get("/v1/surveillance/action-policy")
def get_action_policy(by: Caller, p: PlatformDep) -> ActionPolicyBody:
    """The automatic-action policy in force (operators)."""
    return ActionPolicyBody.of(p.surveillance.config.action_policy(by))


@router.put("/v1/surveillance/action-policy")
def set_action_policy(body: ActionPolicyBody, by: Caller, p: PlatformDep) -> ActionPolicyBody:
    """Replace the automatic-action policy (operators; audited)."""
    p.surveillance.config.authorize_change(by)
    policy = body.to_core()
    return ActionPolicyBody.of(p.surveillance.config.set_action_policy(by, policy))


@router.delete("/v1/surveillance/action-policy", status_code=204)
def delete_action_policy(by: Caller, p: PlatformDep) -> Response:
    """Return to the built-in action policy (operators; audited)."""
    p.surveillance.config.reset_action_policy(by)
    return Response(status_code=204)
