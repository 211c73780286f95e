"""A seeded two-tenant world that several test modules share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from callwarden.adapters.api.app import create_app
from callwarden.core.model import Billing, Channel, NumberOwnership, PlanLimits, UserRole
from callwarden.core.usage.record import CallRecord, Direction, Disposition
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM


@dataclass
class World:
    """Two tenants with an admin, an agent, a number and a trunk each, and keys to act with."""

    client: TestClient
    platform: Platform
    operator_key: str
    plan_id: str
    tenants: list[str]
    admins: list[str]
    admin_keys: list[str]
    agents: list[str]
    numbers: list[str]
    trunks: list[str]
    orders: list[str]

    def headers(self, key: str) -> dict[str, str]:
        """Authorization headers for `key`."""
        return {"Authorization": f"Bearer {key}"}


def build_world(platform: Platform) -> World:
    """Seed the two-tenant world through the services."""
    gov, access = platform.governance, platform.access
    operator = gov.create_user(
        SYSTEM, None, email="noc@provider.example", display_name="NOC", role=UserRole.OPERATOR
    )
    operator_key = access.issue(SYSTEM, None, operator.id, "tests").secret
    plan = gov.create_plan(
        SYSTEM,
        name="Standard",
        billing=Billing.METERED,
        channels=[Channel.VOICE],
        currency="EUR",
        limits=PlanLimits(),
    )
    world = World(
        client=TestClient(create_app(platform), raise_server_exceptions=False),
        platform=platform,
        operator_key=operator_key,
        plan_id=plan.id,
        tenants=[],
        admins=[],
        admin_keys=[],
        agents=[],
        numbers=[],
        trunks=[],
        orders=[],
    )
    for i, (country, tz, e164) in enumerate(
        [("GB", "Europe/London", "+442079460000"), ("PL", "Europe/Warsaw", "+48123456789")]
    ):
        tenant = gov.create_tenant(
            SYSTEM, name=f"Tenant {i}", country=country, timezone=tz, plan_id=plan.id
        )
        order = gov.add_order(SYSTEM, tenant.id, seat_limit=3, reference=f"SO-{i}")
        admin = gov.create_user(
            SYSTEM,
            tenant.id,
            email=f"admin{i}@t{i}.example",
            display_name="Admin",
            role=UserRole.TENANT_ADMIN,
        )
        gov.activate_user(SYSTEM, tenant.id, admin.id)
        agent = gov.create_user(
            SYSTEM,
            tenant.id,
            email=f"agent{i}@t{i}.example",
            display_name="Agent",
            role=UserRole.AGENT,
        )
        number = gov.add_number(SYSTEM, tenant.id, e164=e164, ownership=NumberOwnership.OWNED)
        trunk = gov.create_trunk(
            SYSTEM, tenant.id, name="PBX", source_addresses=[f"192.0.2.{i + 1}/32"]
        )
        world.tenants.append(tenant.id)
        world.admins.append(admin.id)
        world.admin_keys.append(access.issue(SYSTEM, tenant.id, admin.id, "tests").secret)
        world.agents.append(agent.id)
        world.numbers.append(number.id)
        world.trunks.append(trunk.id)
        world.orders.append(order.id)
    return world


def premium_burst(world: World, tenant: int, calls: int = 1) -> list[CallRecord]:
    """Unanswered test calls to UK premium numbers from one tenant, five seconds apart: each
    unrated risky attempt weighs 0.25, so twelve reach the IRSF 5-minute threshold of 3 (a
    high finding)."""
    at = datetime.now(UTC) - timedelta(minutes=20)
    return [
        CallRecord(
            call_id=f"t{tenant}-{n}",
            tenant_id=world.tenants[tenant],
            user_id=world.admins[tenant],
            direction=Direction.OUTBOUND,
            caller=None,
            callee=f"+4490987{n * 397 % 100_000:05d}",
            started_at=at + timedelta(seconds=5 * n),
            ended_at=at + timedelta(seconds=5 * n + 3),
            disposition=Disposition.NO_ANSWER,
            source_format="callwarden-json",
        )
        for n in range(calls)
    ]
