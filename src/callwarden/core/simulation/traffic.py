"""Ordinary contact-centre traffic: diurnal inbound and outbound calls per tenant.

For every tenant, day and local hour, the number of calls is a Poisson draw around the agents on
duty times the tenant's rates, shaped by the hour (a morning rise, a lunch dip, an afternoon
peak), the day (weekends, the tenant's country's public holidays from the ``holidays`` library,
a catch-up on the working day after a holiday) and the tenant's trade:

- inbound calls reach the tenant's hotlines from customers (some abroad); most are answered by an
  agent on duty, the rest abandoned after ringing a while. Abandoned calls that waited 6 seconds
  or more are called back by an agent within the hour; shorter "short abandons" are misdials by
  contact-centre convention and are not;
- outbound calls go from an agent's direct number (sometimes a hotline) to domestic fixed and
  mobile numbers and to the tenant's usual foreign countries;
- a 24/7 desk works in three shifts; a sales team runs its campaign every Monday morning; a
  relay service calls premium and shared-cost numbers at its low tariff; a gateway with
  SIM-box consent sends short calls from its SIM ports' mobile numbers.

The parts of this traffic that resemble abuse are labelled as benign look-alikes (see
:mod:`callwarden.core.simulation.lookalikes`), so evaluation can tell how they fared.

Pure core: no I/O, no clock; the generator is seeded.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import holidays

from callwarden.core.simulation.calls import make_call, poisson, talk_seconds
from callwarden.core.simulation.facts import SimulatedTenant
from callwarden.core.simulation.numbers import NumberKind, NumberMaker
from callwarden.core.simulation.world import TenantProfile
from callwarden.core.usage.record import CallRecord, Direction, Disposition

__all__ = ["Background", "HourPlan", "background", "hour_weight", "tenant_holidays"]

#: Relative call volume of each local hour of a working day (open hours only).
_BUSINESS_SHAPE: Final[dict[int, float]] = {
    7: 0.5, 8: 0.7, 9: 1.0, 10: 1.2, 11: 1.15, 12: 0.75, 13: 0.85, 14: 1.1, 15: 1.05,
    16: 0.95, 17: 0.75, 18: 0.6, 19: 0.5, 20: 0.4,
}  # fmt: skip
#: A 24/7 desk: quiet nights, a day like any office's.
_DESK_SHAPE: Final[tuple[float, ...]] = (
    0.25, 0.2, 0.15, 0.15, 0.15, 0.2, 0.35, 0.6, 0.9, 1.1, 1.2, 1.15,
    0.9, 0.95, 1.1, 1.05, 0.95, 0.8, 0.65, 0.55, 0.5, 0.45, 0.35, 0.3,
)  # fmt: skip
_HOLIDAY: Final[float] = 0.12
_HOLIDAY_247: Final[float] = 0.7
_CATCH_UP: Final[float] = 1.35
_SHORT_ABANDON_S: Final[float] = 6.0
_CALLBACK_SHARE: Final[float] = 0.6
_BUSY_SHARE: Final[float] = 0.04
_INBOUND_FOREIGN: Final[float] = 0.02
#: The longest a simulated call lasts (ring and talk), so a span covers its calls' ends.
_LONGEST_CALL_S: Final[float] = 3 * 3600 + 120


@dataclass(frozen=True, slots=True)
class HourPlan:
    """One local hour of one tenant: when it starts (epoch seconds), its volume factor and
    which users are on duty."""

    start: float
    factor: float
    on_duty: tuple[str, ...]
    monday_peak: bool = False


@dataclass(slots=True)
class Background:
    """Ordinary traffic and the spans of its benign look-alike parts."""

    records: list[CallRecord] = field(default_factory=list)
    #: (tenant, start, end, call ids) of each Monday campaign peak.
    monday_peaks: list[tuple[str, float, float, list[str]]] = field(default_factory=list)
    #: (tenant, holiday date, name, start, end) of each holiday and its catch-up day.
    holidays: list[tuple[str, date, str, float, float]] = field(default_factory=list)
    #: (tenant, call ids) of call-backs to abandoned callers.
    callbacks: dict[str, list[str]] = field(default_factory=dict)
    #: (tenant, call ids) of calls to premium and shared-cost numbers by the relay service.
    relay: dict[str, list[str]] = field(default_factory=dict)


def tenant_holidays(country: str, first: date, days: int) -> dict[date, str]:
    """The public holidays of ``country`` between ``first`` and ``days`` days later."""
    years = sorted({first.year, (first + timedelta(days=days)).year})
    found = holidays.country_holidays(country, years=years)
    last = first + timedelta(days=days)
    return {day: str(name) for day, name in found.items() if first <= day < last}


def hour_weight(profile: TenantProfile, local_hour: int, weekday: int) -> float:
    """The relative volume of a local hour on a weekday (0 Monday) for the tenant's trade,
    before holidays: 0 when it is closed."""
    if profile.always_open:
        weekend = 0.6 if weekday >= 5 else 1.0
        return _DESK_SHAPE[local_hour] * weekend
    opens, closes = profile.open_hours
    if not opens <= local_hour < closes:
        return 0.0
    day = 1.0 if weekday < 5 else profile.saturday if weekday == 5 else 0.0
    return _BUSINESS_SHAPE.get(local_hour, 0.5) * day


def _on_duty(profile: TenantProfile, users: tuple[str, ...], local_hour: int) -> tuple[str, ...]:
    if not profile.always_open:
        return users
    shift = 0 if 6 <= local_hour < 14 else 1 if 14 <= local_hour < 22 else 2
    # A smaller night shift: each shift has its own agents, none works two.
    sizes = (len(users) * 5 // 12, len(users) * 5 // 12)
    bounds = (0, sizes[0], sizes[0] + sizes[1], len(users))
    return users[bounds[shift] : bounds[shift + 1]]


def _hours(
    profile: TenantProfile, tenant: SimulatedTenant, first: date, days: int
) -> Iterator[HourPlan]:
    zone = ZoneInfo(profile.timezone)
    off = tenant_holidays(profile.country, first, days + 1)
    users = tenant.users
    for offset in range(days):
        day = first + timedelta(days=offset)
        factor = 1.0
        if day in off:
            factor = _HOLIDAY_247 if profile.always_open else _HOLIDAY
        elif (day - timedelta(days=1)) in off and day.weekday() < 5:
            factor = _CATCH_UP
        for hour in range(24):
            weight = hour_weight(profile, hour, day.weekday())
            if weight <= 0:
                continue
            start = datetime(day.year, day.month, day.day, hour, tzinfo=zone).timestamp()
            peak = (
                profile.monday_peak > 1 and day.weekday() == 0 and day not in off and 9 <= hour < 11
            )
            yield HourPlan(start, weight * factor, _on_duty(profile, users, hour), peak)


def background(
    profile: TenantProfile,
    tenant: SimulatedTenant,
    first: date,
    days: int,
    rng: random.Random,
    maker: NumberMaker,
    scale: float = 1.0,
) -> Background:
    """The ordinary traffic of one tenant over ``days`` days from ``first`` (local dates),
    ``scale`` times the profile's volume. Records are in no particular order."""
    out = Background()
    hotlines = tenant.numbers[: profile.hotlines]
    direct = dict(zip(tenant.users, tenant.numbers[profile.hotlines :], strict=True))
    trunk = tenant.trunks[0]
    ip = f"198.51.100.{10 + sum(map(ord, tenant.tenant_id)) % 200}"
    seq = 0
    out.callbacks[tenant.tenant_id] = []
    out.relay[tenant.tenant_id] = []

    def next_id() -> str:
        nonlocal seq
        seq += 1
        return f"{tenant.tenant_id}-{seq:07d}"

    def customer(foreign_share: float) -> str:
        kind: NumberKind = "mobile" if rng.random() < 0.5 else "fixed"
        if profile.foreign and rng.random() < foreign_share:
            country = rng.choices([c for c, _ in profile.foreign], [s for _, s in profile.foreign])[
                0
            ]
            return maker.number(rng, country, kind)
        return maker.number(rng, profile.country, kind)

    foreign_total = sum(share for _, share in profile.foreign)
    for plan in _hours(profile, tenant, first, days):
        staff = len(plan.on_duty) if not profile.gateway_ports else profile.gateway_ports
        if not staff:
            continue
        peak_ids: list[str] = []
        # Inbound to the hotlines.
        for _ in range(poisson(rng, staff * profile.inbound_per_agent_hour * plan.factor * scale)):
            start = plan.start + rng.uniform(0, 3600)
            caller = customer(_INBOUND_FOREIGN / max(foreign_total, 1e-9))
            hotline = rng.choice(hotlines)
            if rng.random() < profile.answer_in:
                out.records.append(
                    make_call(
                        next_id(), tenant_id=tenant.tenant_id, direction=Direction.INBOUND,
                        caller=caller, callee=hotline, start=start, ring_s=rng.uniform(4, 40),
                        talk_s=talk_seconds(rng, profile.talk_median_s),
                        user_id=rng.choice(plan.on_duty), trunk_id=trunk, source_ip=ip,
                    )
                )  # fmt: skip
                continue
            short = rng.random() < 0.15
            ring = rng.uniform(1.5, 5.5) if short else rng.uniform(6.5, 90)
            out.records.append(
                make_call(
                    next_id(), tenant_id=tenant.tenant_id, direction=Direction.INBOUND,
                    caller=caller, callee=hotline, start=start, ring_s=ring,
                    disposition=Disposition.CANCELLED, trunk_id=trunk, source_ip=ip,
                )
            )  # fmt: skip
            if ring >= _SHORT_ABANDON_S and rng.random() < _CALLBACK_SHARE:
                agent = rng.choice(plan.on_duty)
                back = start + ring + rng.uniform(300, 3000)
                answered = rng.random() < 0.7
                call_id = next_id()
                out.callbacks[tenant.tenant_id].append(call_id)
                out.records.append(
                    make_call(
                        call_id, tenant_id=tenant.tenant_id, direction=Direction.OUTBOUND,
                        caller=direct.get(agent, hotline), callee=caller, start=back,
                        ring_s=rng.uniform(5, 25),
                        talk_s=talk_seconds(rng, profile.talk_median_s),
                        disposition=Disposition.ANSWERED if answered else Disposition.NO_ANSWER,
                        user_id=agent, trunk_id=trunk, source_ip=ip,
                    )
                )  # fmt: skip
        # Outbound.
        rate = profile.outbound_per_agent_hour * (profile.monday_peak if plan.monday_peak else 1)
        for _ in range(poisson(rng, staff * rate * plan.factor * scale)):
            start = plan.start + rng.uniform(0, 3600)
            agent = rng.choice(plan.on_duty)
            caller = direct[agent] if rng.random() < 0.85 or profile.gateway_ports else hotlines[0]
            campaign = profile.campaign if profile.campaign and rng.random() < 0.7 else None
            relay = profile.relay_share > 0 and rng.random() < profile.relay_share
            if relay:
                callee = maker.number(rng, profile.country, rng.choice(("premium", "shared")))
            elif profile.gateway_ports:
                callee = maker.number(rng, profile.country, "mobile")
            else:
                callee = customer(foreign_total)
            call_id = next_id()
            if relay:
                out.relay[tenant.tenant_id].append(call_id)
            if plan.monday_peak:
                peak_ids.append(call_id)
            roll = rng.random()
            if roll < profile.answer_out:
                spread = 0.3 if profile.gateway_ports else 0.8
                talk = talk_seconds(rng, profile.talk_median_s, spread)
                disposition, ring = Disposition.ANSWERED, rng.uniform(4, 25)
            elif roll < profile.answer_out + _BUSY_SHARE:
                talk, disposition, ring = 0, Disposition.BUSY, rng.uniform(1, 4)
            else:
                talk, disposition, ring = 0, Disposition.NO_ANSWER, rng.uniform(15, 45)
            out.records.append(
                make_call(
                    call_id, tenant_id=tenant.tenant_id, direction=Direction.OUTBOUND,
                    caller=caller, callee=callee, start=start, ring_s=ring, talk_s=talk,
                    disposition=disposition, user_id=agent, trunk_id=trunk, source_ip=ip,
                    campaign=campaign,
                )
            )  # fmt: skip
        if plan.monday_peak:
            out.monday_peaks.append(
                (tenant.tenant_id, plan.start, plan.start + 3600 + _LONGEST_CALL_S, peak_ids)
            )
    zone = ZoneInfo(profile.timezone)
    for day, name in tenant_holidays(profile.country, first, days).items():
        begin = datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()
        out.holidays.append((tenant.tenant_id, day, name, begin, begin + 2 * 86_400))
    return out
