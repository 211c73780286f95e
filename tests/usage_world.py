"""Usage test material: record builders and tenants seeded under the ids the samples use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from callwarden.core.admission.attempt import Direction
from callwarden.core.model import Billing, Channel, PlanLimits, Tenant, TenantStatus
from callwarden.core.usage.record import (
    CallRecord,
    Disposition,
    LoginRecord,
    MessageRecord,
)
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM

SAMPLES = Path(__file__).parent / "core" / "data" / "usage"
"""The sample files written from each format's documentation (tests/core/data/usage)."""

SAMPLE_TENANTS = ("tenant-a", "tenant-b", "tenant-c")
T0 = datetime(2026, 3, 12, 9, 15, tzinfo=UTC)


def seed_tenants(platform: Platform, ids: tuple[str, ...] = SAMPLE_TENANTS) -> str:
    """Tenants with the given ids on one plan (the samples name tenants this way)."""
    plan = platform.governance.create_plan(
        SYSTEM,
        name="Usage",
        billing=Billing.METERED,
        channels=[Channel.VOICE],
        currency="EUR",
        limits=PlanLimits(),
    )
    with platform.store.transaction() as tx:
        for tenant_id in ids:
            tx.add_tenant(
                Tenant(
                    id=tenant_id,
                    name=tenant_id,
                    country="GB",
                    timezone="Europe/London",
                    plan_id=plan.id,
                    status=TenantStatus.ACTIVE,
                    suspension=None,
                    created_at=T0,
                )
            )
    return plan.id


def call(
    call_id: str,
    *,
    tenant_id: str | None = "tenant-a",
    leg: str = "a",
    at: datetime = T0,
    answered_s: int | None = 5,
    talk_s: int = 60,
    cost_minor: int | None = None,
    source_ip: str | None = None,
) -> CallRecord:
    """A finished call: answered after `answered_s` seconds (None: not answered)."""
    if answered_s is None:
        return CallRecord(
            call_id=call_id,
            leg=leg,
            tenant_id=tenant_id,
            direction=Direction.OUTBOUND,
            caller="+442079460999",
            callee="+442079460123",
            started_at=at,
            ended_at=at + timedelta(seconds=20),
            disposition=Disposition.NO_ANSWER,
            source_ip=source_ip,
            source_format="callwarden-json",
        )
    answered = at + timedelta(seconds=answered_s)
    return CallRecord(
        call_id=call_id,
        leg=leg,
        tenant_id=tenant_id,
        user_id="agent-1",
        trunk_id="trunk-1",
        source_ip=source_ip,
        direction=Direction.OUTBOUND,
        caller="+442079460999",
        callee="+442079460123",
        started_at=at,
        answered_at=answered,
        ended_at=answered + timedelta(seconds=talk_s),
        duration_s=talk_s,
        disposition=Disposition.ANSWERED,
        cost_minor=cost_minor,
        currency="EUR" if cost_minor is not None else None,
        campaign="spring",
        attestation="A",
        source_format="callwarden-json",
    )


def message(message_id: str, *, tenant_id: str = "tenant-a", at: datetime = T0) -> MessageRecord:
    """A sent message of two segments, rated."""
    return MessageRecord(
        message_id=message_id,
        tenant_id=tenant_id,
        user_id="agent-1",
        direction=Direction.OUTBOUND,
        sender="+442079460999",
        recipient="+447700900123",
        sent_at=at,
        status="delivered",
        segments=2,
        cost_minor=8,
        currency="EUR",
        source_format="callwarden-json",
    )


def login(event_id: str, *, tenant_id: str = "tenant-a", at: datetime = T0) -> LoginRecord:
    """A failed password login."""
    return LoginRecord(
        event_id=event_id,
        tenant_id=tenant_id,
        user_id="agent-1",
        source_ip="198.51.100.7",
        at=at,
        success=False,
        method="password",
        source_format="callwarden-json",
    )
