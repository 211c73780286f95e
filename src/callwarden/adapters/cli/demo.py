"""The demo provider: an operator, two plans (the metered one rated by a small deck, with a
monthly charge limit), three tenants of different countries and sizes."""

from __future__ import annotations

from dataclasses import dataclass

from callwarden.adapters.cli.demo_traffic import DemoTenant
from callwarden.core.model import Billing, Channel, NumberOwnership, PlanLimits, UserRole
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import NumberQuery, PageRequest, TenantQuery, UserQuery

OPERATOR_EMAIL = "noc@provider.example"


@dataclass(frozen=True)
class DemoResult:
    """What the demo prints: keys to try the API with, and what its traffic uses."""

    operator_key: str
    tenant_admin_key: str
    tenant_id: str
    tenants: list[DemoTenant]


_DECK = [
    # A small retail deck in EUR for the metered plan: prefix, description, rate per minute,
    # connection fee, increments, effective date, currency (the common carrier layout).
    "prefix,description,rate,connection fee,increments,effective date,currency",
    "44,United Kingdom,0.0150,0,60/60,2026-01-01,EUR",
    "447,United Kingdom mobile,0.0450,0,60/60,2026-01-01,EUR",
    "449,United Kingdom premium,1.2000,0.1000,60/60,2026-01-01,EUR",
    "48,Poland,0.0120,0,60/1,2026-01-01,EUR",
    "485,Poland mobile,0.0300,0,60/1,2026-01-01,EUR",
    "486,Poland mobile,0.0300,0,60/1,2026-01-01,EUR",
    "487,Poland mobile,0.0300,0,60/1,2026-01-01,EUR",
    "488,Poland mobile,0.0300,0,60/1,2026-01-01,EUR",
    "31,Netherlands,0.0130,0,30/6,2026-01-01,EUR",
    "316,Netherlands mobile,0.0550,0,30/6,2026-01-01,EUR",
    "1,United States and Canada,0.0100,0,6/6,2026-01-01,EUR",
    "49,Germany,0.0140,0,60/60,2026-01-01,EUR",
    "33,France,0.0140,0,60/60,2026-01-01,EUR",
    "881,Global mobile satellite,4.5000,0.5000,60/60,2026-01-01,EUR",
]

_TENANTS = [
    # name, country, timezone, seats, agents, numbers
    ("Acme Support", "GB", "Europe/London", 10, 6, ["+442079460000", "+442079460001"]),
    ("Kraków Sales", "PL", "Europe/Warsaw", 5, 4, ["+48123456789"]),
    ("Zuid Helpdesk", "NL", "Europe/Amsterdam", 3, 2, ["+31201234567"]),
]


def seed(platform: Platform) -> DemoResult:
    """Create the demo data once; on later runs only issue fresh keys."""
    gov, access = platform.governance, platform.access
    with platform.store.transaction() as tx:
        operator = tx.get_user_by_email(OPERATOR_EMAIL)
    if operator is None:
        operator = gov.create_user(
            SYSTEM, None, email=OPERATOR_EMAIL, display_name="Provider NOC", role=UserRole.OPERATOR
        )
        metered = gov.create_plan(
            SYSTEM,
            name="Contact Center Metered",
            billing=Billing.METERED,
            channels=[Channel.VOICE, Channel.MESSAGING],
            currency="EUR",
            limits=PlanLimits(concurrent_calls_per_tenant=20, monthly_charge_limit_minor=50_000),
        )
        unlimited = gov.create_plan(
            SYSTEM,
            name="Contact Center Unlimited",
            billing=Billing.UNLIMITED,
            channels=[Channel.VOICE, Channel.MESSAGING, Channel.VIDEO],
            currency="EUR",
            limits=PlanLimits(concurrent_calls_per_tenant=50),
        )
        deck = platform.rating.create_deck(
            SYSTEM, name="Demo retail", currency="EUR", description="demo rates"
        )
        platform.rating.import_rates(SYSTEM, deck.id, _DECK)
        platform.rating.assign(SYSTEM, "plan", metered.id, deck.id)
        for i, (name, country, tz, seats, agents, numbers) in enumerate(_TENANTS):
            plan = unlimited if i == 0 else metered
            tenant = gov.create_tenant(
                SYSTEM, name=name, country=country, timezone=tz, plan_id=plan.id
            )
            gov.add_order(SYSTEM, tenant.id, seat_limit=seats, reference=f"SO-2026-{100 + i}")
            domain = name.lower().replace(" ", "").replace("ó", "o") + ".example"
            admin = gov.create_user(
                SYSTEM,
                tenant.id,
                email=f"admin@{domain}",
                display_name=f"{name} admin",
                role=UserRole.TENANT_ADMIN,
            )
            gov.activate_user(SYSTEM, tenant.id, admin.id)
            for n in range(agents):
                agent = gov.create_user(
                    SYSTEM,
                    tenant.id,
                    email=f"agent{n + 1}@{domain}",
                    display_name=f"Agent {n + 1}",
                    role=UserRole.AGENT,
                )
                gov.activate_user(SYSTEM, tenant.id, agent.id)
            for e164 in numbers:
                gov.add_number(SYSTEM, tenant.id, e164=e164, ownership=NumberOwnership.OWNED)
            gov.create_trunk(
                SYSTEM, tenant.id, name=f"{name} PBX", source_addresses=[f"192.0.2.{10 + i}/32"]
            )
    first = gov.list_tenants(SYSTEM, TenantQuery(), PageRequest(limit=1)).items[0]
    admin_user = gov.list_users(
        SYSTEM, UserQuery(tenant_id=first.id, role=UserRole.TENANT_ADMIN.value), PageRequest(1)
    ).items[0]
    operator_key = access.issue(SYSTEM, None, operator.id, "demo").secret
    admin_key = access.issue(SYSTEM, first.id, admin_user.id, "demo").secret
    everything = PageRequest(limit=10_000)
    tenants = []
    for t in gov.list_tenants(SYSTEM, TenantQuery(), everything).items:
        users = gov.list_users(SYSTEM, UserQuery(tenant_id=t.id, status="active"), everything)
        owned = gov.list_numbers(SYSTEM, NumberQuery(tenant_id=t.id), everything)
        tenants.append(
            DemoTenant(
                t.id,
                t.country,
                tuple(u.id for u in users.items),
                tuple(n.e164 for n in owned.items),
            )
        )
    return DemoResult(operator_key, admin_key, first.id, tenants)
