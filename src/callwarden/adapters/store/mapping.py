"""Converting between domain dataclasses and table rows, in one place."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from callwarden.adapters.store.tables import (
    ApiKeyRow,
    AuditRow,
    OrderRow,
    OverrideRow,
    PhoneNumberRow,
    PlanRow,
    TenantRow,
    TrunkRow,
    UserRow,
)
from callwarden.core.audit import AuditEntry
from callwarden.core.model import (
    ApiKey,
    Billing,
    Channel,
    NumberOwnership,
    NumberStatus,
    Order,
    Override,
    PhoneNumber,
    Plan,
    PlanLimits,
    SimBoxConsent,
    Suspension,
    Tenant,
    TenantStatus,
    Trunk,
    User,
    UserRole,
    UserStatus,
)


def suspension_to_json(s: Suspension | None) -> dict[str, Any] | None:
    """A suspension as a JSON object, or None."""
    if s is None:
        return None
    return {
        "reason": s.reason,
        "clause_ids": list(s.clause_ids),
        "at": s.at.isoformat(),
        "by": s.by,
    }


def consent_to_json(c: SimBoxConsent | None) -> dict[str, Any] | None:
    """A SIM-box consent as a JSON object, or None."""
    if c is None:
        return None
    return {"reference": c.reference, "at": c.at.isoformat(), "by": c.by}


def consent_from_json(d: dict[str, Any] | None) -> SimBoxConsent | None:
    """The inverse of `consent_to_json`."""
    if d is None:
        return None
    return SimBoxConsent(reference=d["reference"], at=datetime.fromisoformat(d["at"]), by=d["by"])


def suspension_from_json(d: dict[str, Any] | None) -> Suspension | None:
    """The inverse of `suspension_to_json`."""
    if d is None:
        return None
    return Suspension(
        reason=d["reason"],
        clause_ids=tuple(d["clause_ids"]),
        at=datetime.fromisoformat(d["at"]),
        by=d["by"],
    )


def limits_to_json(limits: PlanLimits) -> dict[str, Any]:
    """Plan limits as a JSON object (tuples become lists)."""
    out = dataclasses.asdict(limits)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def limits_from_json(d: dict[str, Any]) -> PlanLimits:
    """Plan limits from JSON; unknown keys are ignored so older rows stay readable."""
    known = {f.name for f in dataclasses.fields(PlanLimits)}
    kwargs: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known
    }
    return PlanLimits(**kwargs)


def plan_from_row(r: PlanRow) -> Plan:
    return Plan(
        id=r.id,
        name=r.name,
        billing=Billing(r.billing),
        channels=frozenset(Channel(c) for c in r.channels),
        currency=r.currency,
        limits=limits_from_json(r.limits),
        created_at=r.created_at,
    )


def plan_values(p: Plan) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "billing": p.billing.value,
        "channels": sorted(c.value for c in p.channels),
        "currency": p.currency,
        "limits": limits_to_json(p.limits),
        "created_at": p.created_at,
    }


def tenant_from_row(r: TenantRow) -> Tenant:
    return Tenant(
        id=r.id,
        name=r.name,
        country=r.country,
        timezone=r.timezone,
        plan_id=r.plan_id,
        status=TenantStatus(r.status),
        suspension=suspension_from_json(r.suspension),
        created_at=r.created_at,
        monthly_charge_limit_minor=r.monthly_charge_limit_minor,
        monthly_charge_soft_limit_minor=r.monthly_charge_soft_limit_minor,
        sim_box_consent=consent_from_json(r.sim_box_consent),
    )


def tenant_values(t: Tenant) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "country": t.country,
        "timezone": t.timezone,
        "plan_id": t.plan_id,
        "status": t.status.value,
        "suspension": suspension_to_json(t.suspension),
        "created_at": t.created_at,
        "monthly_charge_limit_minor": t.monthly_charge_limit_minor,
        "monthly_charge_soft_limit_minor": t.monthly_charge_soft_limit_minor,
        "sim_box_consent": consent_to_json(t.sim_box_consent),
    }


def order_from_row(r: OrderRow) -> Order:
    return Order(
        id=r.id,
        tenant_id=r.tenant_id,
        seat_limit=r.seat_limit,
        valid_from=r.valid_from,
        valid_until=r.valid_until,
        reference=r.reference,
        created_at=r.created_at,
    )


def user_from_row(r: UserRow) -> User:
    return User(
        id=r.id,
        tenant_id=r.tenant_id,
        email=r.email,
        display_name=r.display_name,
        role=UserRole(r.role),
        status=UserStatus(r.status),
        suspension=suspension_from_json(r.suspension),
        created_at=r.created_at,
    )


def user_values(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "tenant_id": u.tenant_id,
        "email": u.email,
        "display_name": u.display_name,
        "role": u.role.value,
        "status": u.status.value,
        "suspension": suspension_to_json(u.suspension),
        "created_at": u.created_at,
    }


def number_from_row(r: PhoneNumberRow) -> PhoneNumber:
    return PhoneNumber(
        id=r.id,
        tenant_id=r.tenant_id,
        e164=r.e164,
        ownership=NumberOwnership(r.ownership),
        status=NumberStatus(r.status),
        suspension=suspension_from_json(r.suspension),
        created_at=r.created_at,
    )


def number_values(n: PhoneNumber) -> dict[str, Any]:
    return {
        "id": n.id,
        "tenant_id": n.tenant_id,
        "e164": n.e164,
        "ownership": n.ownership.value,
        "status": n.status.value,
        "suspension": suspension_to_json(n.suspension),
        "created_at": n.created_at,
    }


def trunk_from_row(r: TrunkRow) -> Trunk:
    return Trunk(
        id=r.id,
        tenant_id=r.tenant_id,
        name=r.name,
        source_addresses=tuple(r.source_addresses),
        created_at=r.created_at,
    )


def trunk_values(t: Trunk) -> dict[str, Any]:
    return {
        "id": t.id,
        "tenant_id": t.tenant_id,
        "name": t.name,
        "source_addresses": list(t.source_addresses),
        "created_at": t.created_at,
    }


def api_key_from_row(r: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=r.id, user_id=r.user_id, name=r.name, created_at=r.created_at, revoked_at=r.revoked_at
    )


def override_from_row(r: OverrideRow) -> Override:
    return Override(
        id=r.id,
        tenant_id=r.tenant_id,
        clause_id=r.clause_id,
        subject_type=r.subject_type,
        subject_id=r.subject_id,
        reason=r.reason,
        by=r.by,
        at=r.at,
        expires_at=r.expires_at,
        details=dict(r.details),
    )


def audit_from_row(r: AuditRow) -> AuditEntry:
    return AuditEntry(
        seq=r.seq,
        at=r.at,
        actor=r.actor,
        action=r.action,
        subject_type=r.subject_type,
        subject_id=r.subject_id,
        tenant_id=r.tenant_id,
        reason=r.reason,
        clause_ids=tuple(r.clause_ids),
        details=dict(r.details),
        prev_hash=r.prev_hash,
        hash=r.hash,
    )


def audit_values(e: AuditEntry) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "at": e.at,
        "actor": e.actor,
        "action": e.action,
        "subject_type": e.subject_type,
        "subject_id": e.subject_id,
        "tenant_id": e.tenant_id,
        "reason": e.reason,
        "clause_ids": list(e.clause_ids),
        "details": dict(e.details),
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }
