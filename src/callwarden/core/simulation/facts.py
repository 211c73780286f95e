"""What detectors must know of a simulated world that its usage records do not say.

A simulation writes these facts beside its usage file (tenants with their country, time zone,
plan, billing kind and written SIM-box consent; the operator's rate deck; the operator's
high-risk prefix list), and evaluation reads them back, so the detectors run over the file with
exactly the :class:`~callwarden.core.detectors.DetectorContext` the traffic was made for.

Pure core: plain data and its JSON form; reading and writing files belongs to the adapters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from callwarden.core.detectors import DetectorContext, TenantFacts
from callwarden.core.errors import InvalidInput
from callwarden.core.model import Billing
from callwarden.core.numbering import NumberingPlan
from callwarden.core.prefixes import PrefixList
from callwarden.core.rating import RateDeck, make_rate
from callwarden.core.simulation.json_fields import text, texts

__all__ = ["FACTS_VERSION", "SimulatedTenant", "SimulationFacts"]

#: Version of the facts' JSON form; a file of another version is refused.
FACTS_VERSION: Final[int] = 1


@dataclass(frozen=True, slots=True)
class SimulatedTenant:
    """One tenant of the simulated provider: what surveillance knows of it, plus its users,
    numbers and trunks (so that people reading the labels can tell who is who)."""

    tenant_id: str
    name: str
    country: str
    timezone: str
    plan_id: str
    billing: Billing
    sim_box_consent: bool
    users: tuple[str, ...]
    numbers: tuple[str, ...]
    trunks: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        """The tenant as a JSON-ready object."""
        return {
            "tenant_id": self.tenant_id,
            "name": self.name,
            "country": self.country,
            "timezone": self.timezone,
            "plan_id": self.plan_id,
            "billing": self.billing.value,
            "sim_box_consent": self.sim_box_consent,
            "users": list(self.users),
            "numbers": list(self.numbers),
            "trunks": list(self.trunks),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> SimulatedTenant:
        """A tenant from its JSON object; InvalidInput names a missing or wrong field."""
        return cls(
            tenant_id=text(data, "tenant_id"),
            name=text(data, "name"),
            country=text(data, "country"),
            timezone=text(data, "timezone"),
            plan_id=text(data, "plan_id"),
            billing=Billing(text(data, "billing")),
            sim_box_consent=bool(data.get("sim_box_consent", False)),
            users=texts(data, "users"),
            numbers=texts(data, "numbers"),
            trunks=texts(data, "trunks"),
        )


@dataclass(frozen=True, slots=True)
class SimulationFacts:
    """The detector facts of one simulated world.

    ``rates`` are (E.164 prefix, price per minute in ``currency``, description); every tenant is
    rated by this one deck. ``high_risk`` are (prefix, label) of the operator's high-risk list.
    """

    tenants: tuple[SimulatedTenant, ...]
    rates: tuple[tuple[str, str, str], ...]
    high_risk: tuple[tuple[str, str], ...]
    currency: str = "EUR"

    def rate_deck(self) -> RateDeck:
        """The operator's deck built from ``rates``."""
        return RateDeck(
            (
                make_rate(prefix, price, currency=self.currency, description=description)
                for prefix, price, description in self.rates
            ),
            currency=self.currency,
        )

    def tenant_facts(self, deck: RateDeck | None = None) -> dict[str, TenantFacts]:
        """Each tenant's :class:`TenantFacts`, rated by ``deck`` (built from ``rates`` if not
        given)."""
        deck = deck or self.rate_deck()
        return {
            t.tenant_id: TenantFacts(
                t.tenant_id,
                country=t.country,
                timezone=t.timezone,
                plan_id=t.plan_id,
                billing=t.billing,
                sim_box_consent=t.sim_box_consent,
                rate_deck=deck,
            )
            for t in self.tenants
        }

    def detector_context(self, numbering: NumberingPlan) -> DetectorContext:
        """The detector context the simulated traffic is meant to be watched with."""
        return DetectorContext(
            numbering,
            high_risk=PrefixList(self.high_risk),
            tenants=self.tenant_facts(),
        )

    def tenant(self, tenant_id: str) -> SimulatedTenant:
        """The tenant ``tenant_id``; KeyError when the world has none of that id."""
        for tenant in self.tenants:
            if tenant.tenant_id == tenant_id:
                return tenant
        raise KeyError(tenant_id)

    def to_json(self) -> dict[str, object]:
        """The facts as a JSON-ready object (the ``.facts.json`` file beside the usage)."""
        return {
            "version": FACTS_VERSION,
            "currency": self.currency,
            "tenants": [t.to_json() for t in self.tenants],
            "rates": [list(r) for r in self.rates],
            "high_risk": [list(h) for h in self.high_risk],
        }

    @classmethod
    def from_json(cls, data: object) -> SimulationFacts:
        """Facts from their JSON object; InvalidInput says what is wrong."""
        if not isinstance(data, Mapping):
            raise InvalidInput("simulation facts must be a JSON object", field="facts")
        if data.get("version") != FACTS_VERSION:
            raise InvalidInput(
                f"simulation facts of version {data.get('version')!r} are not supported "
                f"(expected {FACTS_VERSION})",
                field="version",
            )
        tenants = data.get("tenants")
        rates = data.get("rates")
        high_risk = data.get("high_risk")
        if not (
            isinstance(tenants, list) and isinstance(rates, list) and isinstance(high_risk, list)
        ):
            raise InvalidInput("tenants, rates and high_risk must be lists", field="facts")
        return cls(
            tenants=tuple(SimulatedTenant.from_json(_mapping(t, "tenants")) for t in tenants),
            rates=tuple(_triple(r) for r in rates),
            high_risk=tuple(_pair(h) for h in high_risk),
            currency=text(data, "currency"),
        )


def _mapping(value: object, field: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"each of {field} must be a JSON object", field=field)
    return value


def _triple(value: object) -> tuple[str, str, str]:
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) for v in value)):
        raise InvalidInput("each rate must be [prefix, price, description]", field="rates")
    return (value[0], value[1], value[2])


def _pair(value: object) -> tuple[str, str]:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise InvalidInput("each high-risk entry must be [prefix, label]", field="high_risk")
    return (value[0], value[1])
