"""Admission rule policies per plan and tenant, and the high-risk prefix list (operators)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field, StringConstraints

from callwarden.adapters.api.auth import Caller, PlatformDep
from callwarden.adapters.api.errors import ERROR_RESPONSES
from callwarden.adapters.api.schemas import Model, OptionalText, PlanId, TenantId, UserRef
from callwarden.core.admission.policy import RULES, FailureMode, RuleMode, RulePolicy
from callwarden.core.prefixes import PrefixEntry

router = APIRouter(tags=["admission rules"], responses=ERROR_RESPONSES)

RuleId = Annotated[str, Path(pattern=r"^[a-z_]{1,32}$", description="An admission rule id")]
Prefix = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,15}$")]


class RuleInfoOut(BaseModel):
    id: str
    clause_ids: list[str]
    description: str
    uses_counters: bool


class PolicyBody(Model):
    """How a rule runs: enforce, observe (record and admit) or off; fail open or closed when
    its counters are unreachable; and the destinations and users it exempts."""

    mode: RuleMode = RuleMode.ENFORCE
    failure: FailureMode = FailureMode.OPEN
    allow_destinations: list[Prefix] = Field(default_factory=list, max_length=1000)
    allow_users: list[UserRef] = Field(default_factory=list, max_length=1000)

    def to_core(self) -> RulePolicy:
        return RulePolicy(
            mode=self.mode,
            failure=self.failure,
            allow_destinations=tuple(self.allow_destinations),
            allow_users=frozenset(self.allow_users),
        )

    @classmethod
    def of(cls, p: RulePolicy) -> PolicyBody:
        return cls(
            mode=p.mode,
            failure=p.failure,
            allow_destinations=list(p.allow_destinations),
            allow_users=sorted(p.allow_users),
        )


class PrefixBody(Model):
    prefix: Prefix
    label: OptionalText | None = None


class PrefixListBody(Model):
    prefixes: list[PrefixBody] = Field(max_length=1_000_000)


class ImportedOut(BaseModel):
    count: int


@router.get("/v1/admission/rules")
def list_rules(by: Caller) -> list[RuleInfoOut]:
    """Every admission rule, in the order the pipeline runs them, with its clauses."""
    return [
        RuleInfoOut(
            id=r.id,
            clause_ids=list(r.clause_ids),
            description=r.description,
            uses_counters=r.uses_counters,
        )
        for r in RULES
    ]


def _policies(p: PlatformDep, by: Caller, scope: str, scope_id: str) -> dict[str, PolicyBody]:
    found = p.admission_config.policies(by, scope, scope_id)
    return {rule: PolicyBody.of(policy) for rule, policy in found.items()}


@router.get("/v1/plans/{plan_id}/rules")
def plan_policies(plan_id: PlanId, by: Caller, p: PlatformDep) -> dict[str, PolicyBody]:
    """The rule policies a plan sets (rules not listed are enforced)."""
    return _policies(p, by, "plan", plan_id)


@router.put("/v1/plans/{plan_id}/rules/{rule}")
def set_plan_policy(
    plan_id: PlanId, rule: RuleId, body: PolicyBody, by: Caller, p: PlatformDep
) -> PolicyBody:
    """Set how a rule runs for every tenant on the plan (a tenant's own policy wins)."""
    return PolicyBody.of(p.admission_config.set_policy(by, "plan", plan_id, rule, body.to_core()))


@router.delete("/v1/plans/{plan_id}/rules/{rule}", status_code=204)
def delete_plan_policy(plan_id: PlanId, rule: RuleId, by: Caller, p: PlatformDep) -> Response:
    """Return the rule to enforce mode for the plan."""
    p.admission_config.delete_policy(by, "plan", plan_id, rule)
    return Response(status_code=204)


@router.get("/v1/tenants/{tenant_id}/rules")
def tenant_policies(tenant_id: TenantId, by: Caller, p: PlatformDep) -> dict[str, PolicyBody]:
    """The rule policies set for this tenant (they override its plan's)."""
    return _policies(p, by, "tenant", tenant_id)


@router.put("/v1/tenants/{tenant_id}/rules/{rule}")
def set_tenant_policy(
    tenant_id: TenantId, rule: RuleId, body: PolicyBody, by: Caller, p: PlatformDep
) -> PolicyBody:
    """Set how a rule runs for this tenant."""
    policy = p.admission_config.set_policy(by, "tenant", tenant_id, rule, body.to_core())
    return PolicyBody.of(policy)


@router.delete("/v1/tenants/{tenant_id}/rules/{rule}", status_code=204)
def delete_tenant_policy(tenant_id: TenantId, rule: RuleId, by: Caller, p: PlatformDep) -> Response:
    """Drop the tenant's own policy for the rule (its plan's applies again)."""
    p.admission_config.delete_policy(by, "tenant", tenant_id, rule)
    return Response(status_code=204)


@router.get("/v1/high-risk-prefixes")
def get_high_risk(by: Caller, p: PlatformDep) -> PrefixListBody:
    """The operator's high-risk destination ranges (FRD-1)."""
    entries = p.admission_config.high_risk_prefixes(by)
    return PrefixListBody(prefixes=[PrefixBody(prefix=e.prefix, label=e.label) for e in entries])


@router.put("/v1/high-risk-prefixes")
def put_high_risk(body: PrefixListBody, by: Caller, p: PlatformDep) -> ImportedOut:
    """Replace the high-risk list as a whole; a duplicate refuses the import and names it."""
    count = p.admission_config.replace_high_risk_prefixes(
        by, [PrefixEntry(e.prefix, e.label) for e in body.prefixes]
    )
    return ImportedOut(count=count)
