"""The simulated provider: its tenants, how each one's contact centre works, its rate deck and
high-risk list.

Six tenants of five countries and different sizes and trades, each with its own shape of
traffic (:class:`TenantProfile`):

- a large British customer-care centre, mostly inbound, calling back abandoned calls;
- a Polish outbound sales team that runs a campaign every Monday morning;
- a Dutch 24/7 support desk on an unlimited plan, staffed in three shifts;
- a small French relay service that calls premium and shared-cost numbers as its trade;
- a French least-cost-routing gateway with written SIM-box consent;
- a large US outreach centre on an unlimited plan, dialling a campaign list.

:func:`build_world` draws their users, numbers and trunks with a seeded generator.

Pure core: no I/O.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from callwarden.core.model import Billing
from callwarden.core.simulation.facts import SimulatedTenant, SimulationFacts
from callwarden.core.simulation.numbers import NumberKind, NumberMaker

__all__ = ["HIGH_RISK", "RATES", "TenantProfile", "World", "build_world"]

#: The operator's deck (EUR a minute): domestic and mobile rates of the tenants' countries and
#: their usual destinations, costly premium, satellite and IRSF-prone ranges, and a rural US
#: range priced above the pumping detector's cost line (access stimulation).
RATES: Final[tuple[tuple[str, str, str], ...]] = (
    ("44", "0.0100", "United Kingdom"),
    ("447", "0.0300", "United Kingdom mobile"),
    ("449", "1.2000", "United Kingdom premium"),
    ("48", "0.0100", "Poland"),
    ("485", "0.0250", "Poland mobile"),
    ("486", "0.0250", "Poland mobile"),
    ("31", "0.0120", "Netherlands"),
    ("316", "0.0400", "Netherlands mobile"),
    ("33", "0.0120", "France"),
    ("336", "0.0350", "France mobile"),
    ("337", "0.0350", "France mobile"),
    ("3381", "0.0200", "France shared cost"),
    ("3382", "0.0300", "France shared cost"),
    ("3389", "0.0400", "France premium (relay tariff)"),
    ("1", "0.0080", "United States and Canada"),
    ("1712", "0.0600", "United States rural Iowa (high-cost terminating)"),
    ("49", "0.0140", "Germany"),
    ("491", "0.0800", "Germany mobile"),
    ("353", "0.0150", "Ireland"),
    ("3538", "0.0700", "Ireland mobile"),
    ("32", "0.0140", "Belgium"),
    ("324", "0.0600", "Belgium mobile"),
    ("34", "0.0140", "Spain"),
    ("346", "0.0500", "Spain mobile"),
    ("39", "0.0150", "Italy"),
    ("393", "0.0600", "Italy mobile"),
    ("351", "0.0500", "Portugal"),
    ("43", "0.0600", "Austria"),
    ("41", "0.0700", "Switzerland"),
    ("46", "0.0500", "Sweden"),
    ("371", "0.0300", "Latvia"),
    ("3719", "1.1000", "Latvia premium"),
    ("370", "0.0300", "Lithuania"),
    ("370900", "1.0500", "Lithuania premium"),
    ("216", "0.2000", "Tunisia"),
    ("21688", "1.5000", "Tunisia premium"),
    ("53", "0.9500", "Cuba"),
    ("232", "0.4500", "Sierra Leone"),
    ("881", "4.5000", "Global mobile satellite"),
)

#: The operator's high-risk prefix list (FRD-1): ranges and countries IRSF is known to use.
HIGH_RISK: Final[tuple[tuple[str, str], ...]] = (
    ("53", "Cuba"),
    ("232", "Sierra Leone"),
    ("224", "Guinea"),
    ("3719", "Latvia premium"),
    ("370900", "Lithuania premium"),
    ("21688", "Tunisia premium"),
    ("881", "satellite"),
    ("882", "international networks"),
)


@dataclass(frozen=True, slots=True)
class TenantProfile:
    """How one tenant's contact centre works, which the background traffic follows.

    Rates are calls per agent on duty per hour at a normal hour; ``open_hours`` are local
    (start, end) on working days, ``always_open`` a 24/7 desk in three shifts.
    ``foreign`` gives (country, share of outbound calls); ``talk_median_s`` the median
    conversation. ``gateway_ports`` > 0 makes a least-cost-routing gateway instead of agents.
    """

    tenant_id: str
    name: str
    country: str
    timezone: str
    plan_id: str
    billing: Billing
    agents: int
    inbound_per_agent_hour: float
    outbound_per_agent_hour: float
    answer_in: float
    answer_out: float
    talk_median_s: float
    open_hours: tuple[int, int] = (8, 18)
    saturday: float = 0.0
    always_open: bool = False
    foreign: tuple[tuple[str, float], ...] = ()
    agents_on_mobile: bool = False
    relay_share: float = 0.0
    campaign: str | None = None
    monday_peak: float = 1.0
    sim_box_consent: bool = False
    gateway_ports: int = 0
    hotlines: int = 2


PROFILES: Final[tuple[TenantProfile, ...]] = (
    TenantProfile(
        "tn-gb-care", "Thames Customer Care", "GB", "Europe/London", "metered-eu",
        Billing.METERED, agents=40, inbound_per_agent_hour=3.2, outbound_per_agent_hour=1.2,
        answer_in=0.88, answer_out=0.6, talk_median_s=260, saturday=0.3,
        foreign=(("IE", 0.05), ("FR", 0.02), ("DE", 0.02), ("US", 0.01)), hotlines=3,
    ),
    TenantProfile(
        "tn-pl-sales", "Wisła Sprzedaż", "PL", "Europe/Warsaw", "metered-eu",
        Billing.METERED, agents=20, inbound_per_agent_hour=0.6, outbound_per_agent_hour=9.0,
        answer_in=0.85, answer_out=0.45, talk_median_s=110, open_hours=(9, 18),
        foreign=(("DE", 0.04), ("GB", 0.02)), agents_on_mobile=True, campaign="pl-weekly",
        monday_peak=2.5,
    ),
    TenantProfile(
        "tn-nl-desk", "Zuid Servicedesk", "NL", "Europe/Amsterdam", "unlimited-eu",
        Billing.UNLIMITED, agents=18, inbound_per_agent_hour=4.0, outbound_per_agent_hour=1.0,
        answer_in=0.9, answer_out=0.65, talk_median_s=300, always_open=True,
        foreign=(("BE", 0.06), ("DE", 0.03), ("GB", 0.01)),
    ),
    TenantProfile(
        "tn-fr-relay", "Relais Conseil", "FR", "Europe/Paris", "metered-eu",
        Billing.METERED, agents=8, inbound_per_agent_hour=2.5, outbound_per_agent_hour=2.5,
        answer_in=0.85, answer_out=0.75, talk_median_s=200, saturday=0.2,
        foreign=(("BE", 0.05), ("ES", 0.02)), relay_share=0.6, hotlines=1,
    ),
    TenantProfile(
        "tn-fr-gateway", "Passerelle Mobile", "FR", "Europe/Paris", "metered-eu",
        Billing.METERED, agents=0, inbound_per_agent_hour=0.0, outbound_per_agent_hour=2.0,
        answer_in=0.0, answer_out=0.8, talk_median_s=60, open_hours=(7, 21), saturday=0.6,
        sim_box_consent=True, gateway_ports=24, hotlines=1,
    ),
    TenantProfile(
        "tn-us-outreach", "Lakeshore Outreach", "US", "America/New_York", "unlimited-us",
        Billing.UNLIMITED, agents=30, inbound_per_agent_hour=0.5, outbound_per_agent_hour=7.0,
        answer_in=0.8, answer_out=0.35, talk_median_s=150, open_hours=(9, 20), saturday=0.5,
        foreign=(("CA", 0.03),), campaign="us-renewals",
    ),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class World:
    """The simulated provider: each tenant's profile and identity, and the detector facts."""

    profiles: tuple[TenantProfile, ...]
    facts: SimulationFacts

    def profile(self, tenant_id: str) -> TenantProfile:
        """The profile of ``tenant_id``."""
        for profile in self.profiles:
            if profile.tenant_id == tenant_id:
                return profile
        raise KeyError(tenant_id)

    def tenant(self, tenant_id: str) -> SimulatedTenant:
        """The identity (users, numbers, trunks) of ``tenant_id``."""
        return self.facts.tenant(tenant_id)


def _own_kind(profile: TenantProfile) -> NumberKind:
    return "mobile" if profile.agents_on_mobile or profile.gateway_ports else "fixed"


def build_world(rng: random.Random, maker: NumberMaker) -> World:
    """The default world, its users, numbers and trunks drawn with ``rng``.

    A tenant's numbers are its hotlines first, then one direct number per agent (or per
    gateway port, whose SIM numbers are mobile); users are ``<tenant>-a01``... (gateway ports
    ``<tenant>-port01``...). Each tenant has one PBX trunk.
    """
    tenants: list[SimulatedTenant] = []
    for profile in PROFILES:
        hotlines = [maker.number(rng, profile.country, "fixed") for _ in range(profile.hotlines)]
        if profile.gateway_ports:
            users = [f"{profile.tenant_id}-port{n + 1:02d}" for n in range(profile.gateway_ports)]
        else:
            users = [f"{profile.tenant_id}-a{n + 1:02d}" for n in range(profile.agents)]
        direct = [maker.number(rng, profile.country, _own_kind(profile)) for _ in users]
        tenants.append(
            SimulatedTenant(
                tenant_id=profile.tenant_id,
                name=profile.name,
                country=profile.country,
                timezone=profile.timezone,
                plan_id=profile.plan_id,
                billing=profile.billing,
                sim_box_consent=profile.sim_box_consent,
                users=tuple(users),
                numbers=tuple(hotlines + direct),
                trunks=(f"{profile.tenant_id}-pbx",),
            )
        )
    return World(PROFILES, SimulationFacts(tuple(tenants), RATES, HIGH_RISK))
