"""Benign look-alikes: legitimate traffic shaped like abuse, which must not be flagged.

Some are injected here (a large outbound campaign with a low answer rate, a calling list sorted
by number, a new hotline many people call, a genuine emergency call and a misdial, a tenant
expanding into a new country); others are part of the ordinary traffic and are only labelled
(the 24/7 desk, the relay service's premium calls, the gateway with SIM-box consent, the sales
team's agents on mobile numbers, the Monday campaign peaks, public holidays and the catch-up
after them, call-backs to abandoned callers).

Pure core: no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from callwarden.core.simulation.calls import talk_seconds
from callwarden.core.simulation.injection import Injected, Injection, ScenarioSpec
from callwarden.core.simulation.labels import ScenarioLabel
from callwarden.core.simulation.numbers import NumberKind
from callwarden.core.simulation.scenarios import EMERGENCY_NUMBERS
from callwarden.core.simulation.traffic import Background
from callwarden.core.simulation.world import World
from callwarden.core.usage.record import CallRecord, Direction, Disposition

__all__ = ["INJECTED_LOOKALIKES", "labelled_lookalikes"]

OUT, IN = Direction.OUTBOUND, Direction.INBOUND


def legit_campaign(inj: Injection, start: float) -> Injected:
    """A large, lawful outbound campaign: 450 to 550 attempts an hour for two hours from one
    campaign number, under a fifth answered (voicemail and quick refusals among them), but
    conversations of every length and calls that ring normally."""
    rng = inj.rng
    tenant = inj.tenant
    caller = tenant.numbers[1]
    campaign = "renewal-drive"
    count = rng.randint(900, 1100)
    for n in range(count):
        roll = rng.random()
        user = rng.choice(tenant.users)
        kind: NumberKind = "mobile" if rng.random() < 0.6 else "fixed"
        if roll < 0.18:
            talk = rng.randint(2, 6) if rng.random() < 0.25 else talk_seconds(rng, 140, 1.0)
            disposition, ring = Disposition.ANSWERED, rng.uniform(5, 20)
        elif roll < 0.22:
            talk, disposition, ring = 0, Disposition.BUSY, rng.uniform(1, 4)
        else:
            talk, disposition, ring = 0, Disposition.NO_ANSWER, rng.uniform(18, 35)
        inj.call(
            direction=OUT, caller=caller,
            callee=inj.maker.number(rng, inj.profile.country, kind),
            start=start + n * 7200 / count, ring_s=ring, talk_s=talk, disposition=disposition,
            user_id=user, campaign=campaign,
        )  # fmt: skip
    inj.key("number", caller)
    inj.key("campaign", campaign)
    inj.key("tenant", tenant.tenant_id)
    inj.key("destination", inj.profile.country)
    return inj.done(f"lawful campaign {campaign}: {count} attempts in two hours")


def sorted_list(inj: Injection, start: float) -> Injected:
    """A calling list of 150 businesses of one district, sorted by number: neighbouring
    numbers, but never consecutive runs."""
    rng = inj.rng
    tenant = inj.tenant
    index = rng.randrange(len(tenant.users))
    user, number = tenant.users[index], tenant.numbers[inj.profile.hotlines + index]
    base = int(inj.maker.number(rng, inj.profile.country, "fixed")[1:]) // 10_000 * 10_000
    picks = sorted(rng.sample(range(10_000), 150))
    t = start
    for pick in picks:
        answered = rng.random() < 0.5
        inj.call(
            direction=OUT, caller=number, callee=f"+{base + pick}", start=t,
            ring_s=rng.uniform(5, 25), talk_s=talk_seconds(rng, 120),
            disposition=Disposition.ANSWERED if answered else Disposition.NO_ANSWER,
            user_id=user,
        )  # fmt: skip
        t += rng.uniform(40, 110)
    inj.key("user", user)
    inj.key("number", number)
    return inj.done(f"{user} works through a district's list sorted by number")


def new_hotline(inj: Injection, start: float) -> Injected:
    """A new hotline goes live: 150 to 200 callers, every one different, in its first day,
    answered by agents, with conversations of every length."""
    rng = inj.rng
    tenant = inj.tenant
    hotline = inj.maker.number(rng, inj.profile.country, "fixed")
    for _ in range(rng.randint(150, 200)):
        inj.call(
            direction=IN, caller=inj.maker.number(rng, inj.profile.country, "mobile"),
            callee=hotline, start=start + rng.uniform(0, 9 * 3600), ring_s=rng.uniform(4, 30),
            talk_s=talk_seconds(rng, 360), user_id=rng.choice(tenant.users),
        )  # fmt: skip
    inj.key("number", hotline)
    return inj.done(f"new hotline {hotline} launched")


def genuine_emergency(inj: Injection, start: float) -> Injected:
    """A real emergency call (answered, minutes long) and a misdial hung up at once, by two
    agents of one site."""
    rng = inj.rng
    tenant = inj.tenant
    dial = EMERGENCY_NUMBERS[inj.profile.country]
    first, second = rng.sample(range(len(tenant.users)), 2)
    for offset, index, talk in ((0.0, first, rng.randint(120, 400)), (1800.0, second, 1)):
        user = tenant.users[index]
        inj.call(
            direction=OUT, caller=tenant.numbers[inj.profile.hotlines + index], callee=dial,
            start=start + offset, ring_s=2, talk_s=talk, user_id=user,
        )  # fmt: skip
        inj.key("user", user)
    return inj.done("one real emergency call and one misdial")


def new_country_expansion(inj: Injection, start: float) -> Injected:
    """The tenant opens a new market: from one morning on, its agents call fixed lines of one
    country it never called, ten or so calls an hour for the working day."""
    rng = inj.rng
    tenant = inj.tenant
    country = "ES"
    for _ in range(rng.randint(70, 90)):
        index = rng.randrange(len(tenant.users))
        answered = rng.random() < 0.55
        inj.call(
            direction=OUT, caller=tenant.numbers[inj.profile.hotlines + index],
            callee=inj.maker.number(rng, country, "fixed"),
            start=start + rng.uniform(0, 8 * 3600), ring_s=rng.uniform(5, 25),
            talk_s=talk_seconds(rng, 200),
            disposition=Disposition.ANSWERED if answered else Disposition.NO_ANSWER,
            user_id=tenant.users[index],
        )  # fmt: skip
    inj.key("tenant", tenant.tenant_id)
    inj.key("destination", country)
    inj.key("destination", "+34")
    return inj.done("the tenant starts calling Spain")


#: The injected look-alikes: spec, builder, tenant, local start hour, earliest day.
INJECTED_LOOKALIKES: Final = (
    (ScenarioSpec("legit_campaign", False, "robocall", description="a lawful large campaign"),
     legit_campaign, "tn-us-outreach", 13, 3),
    (ScenarioSpec("sorted_calling_list", False, "sequential",
                  description="a calling list sorted by number"),
     sorted_list, "tn-pl-sales", 10, 3),
    (ScenarioSpec("new_hotline", False, "pumping", description="a new hotline goes live"),
     new_hotline, "tn-gb-care", 9, 5),
    (ScenarioSpec("genuine_emergency", False, "emergency",
                  description="a real emergency call and a misdial"),
     genuine_emergency, "tn-nl-desk", 15, 4),
    (ScenarioSpec("new_country_expansion", False, "irsf",
                  description="a tenant starts calling a new country"),
     new_country_expansion, "tn-gb-care", 9, 6),
)  # fmt: skip


def _span_label(
    kind: str,
    detector: str,
    tenant_id: str,
    scenario_id: str,
    keys: list[tuple[str, str]],
    start: float,
    end: float,
    call_ids: list[str],
    description: str,
) -> ScenarioLabel:
    return ScenarioLabel(
        scenario_id=scenario_id,
        kind=kind,
        abuse=False,
        detector=detector,
        tenant_id=tenant_id,
        keys=tuple(keys),
        start=datetime.fromtimestamp(start, UTC),
        end=datetime.fromtimestamp(end, UTC),
        call_ids=tuple(call_ids),
        description=description,
    )


def labelled_lookalikes(
    world: World, background: Background, records: list[CallRecord], start: float, end: float
) -> list[ScenarioLabel]:
    """Labels for the parts of the ordinary traffic that resemble abuse.

    ``records`` is all the background; ``start`` and ``end`` span the period.
    """
    by_tenant: dict[str, list[str]] = {}
    for record in records:
        by_tenant.setdefault(record.tenant_id or "", []).append(record.call_id)
    labels: list[ScenarioLabel] = []
    desk = world.tenant("tn-nl-desk")
    labels.append(
        _span_label(
            "desk_24_7", "fair_use", desk.tenant_id, "look-desk-24-7",
            [("user", u) for u in desk.users], start, end, by_tenant.get(desk.tenant_id, []),
            "a 24/7 desk on an unlimited plan, staffed in three shifts",
        )
    )  # fmt: skip
    relay = world.tenant("tn-fr-relay")
    labels.append(
        _span_label(
            "premium_business", "irsf", relay.tenant_id, "look-relay-premium",
            [("destination", "+33"), ("tenant", relay.tenant_id)], start, end,
            background.relay.get(relay.tenant_id, []),
            "a relay service calling premium and shared-cost numbers at its low tariff",
        )
    )  # fmt: skip
    gateway = world.tenant("tn-fr-gateway")
    labels.append(
        _span_label(
            "consented_gateway", "simbox", gateway.tenant_id, "look-gateway-consent",
            [("trunk", t) for t in gateway.trunks], start, end,
            by_tenant.get(gateway.tenant_id, []),
            "a least-cost-routing gateway with written SIM-box consent",
        )
    )  # fmt: skip
    sales = world.tenant("tn-pl-sales")
    labels.append(
        _span_label(
            "agents_on_mobile_numbers", "simbox", sales.tenant_id, "look-sales-mobiles",
            [("trunk", t) for t in sales.trunks], start, end, by_tenant.get(sales.tenant_id, []),
            "a sales team whose agents present their own mobile numbers on one trunk",
        )
    )  # fmt: skip
    outreach = world.tenant("tn-us-outreach")
    labels.append(
        _span_label(
            "many_agents_own_numbers", "caller_rotation", outreach.tenant_id,
            "look-outreach-agents",
            [("user", u) for u in outreach.users] + [("trunk", t) for t in outreach.trunks],
            start, end, by_tenant.get(outreach.tenant_id, []),
            "thirty agents, each presenting their own number",
        )
    )  # fmt: skip
    for n, (tenant_id, begin, finish, ids) in enumerate(background.monday_peaks, 1):
        tenant = world.tenant(tenant_id)
        keys = [("tenant", tenant_id), ("destination", tenant.country)]
        keys += [("number", number) for number in tenant.numbers]
        labels.append(
            _span_label(
                "monday_peak", "baseline", tenant_id, f"look-monday-{n:02d}", keys, begin,
                finish, ids, "the weekly Monday-morning campaign peak",
            )
        )  # fmt: skip
    for n, (tenant_id, day, name, begin, finish) in enumerate(background.holidays, 1):
        tenant = world.tenant(tenant_id)
        keys = [("tenant", tenant_id), ("destination", tenant.country)]
        keys += [("number", number) for number in tenant.numbers]
        labels.append(
            _span_label(
                "holiday", "baseline", tenant_id, f"look-holiday-{n:02d}", keys, begin, finish,
                [], f"{name} ({day.isoformat()}) and the catch-up after it",
            )
        )  # fmt: skip
    for tenant_id, ids in sorted(background.callbacks.items()):
        if not ids:
            continue
        wanted = set(ids)
        callees = sorted({r.callee for r in records if r.call_id in wanted})
        labels.append(
            _span_label(
                "abandoned_callbacks", "wangiri", tenant_id, f"look-callbacks-{tenant_id}",
                [("number", c) for c in callees], start, end, ids,
                "agents calling back abandoned callers (domestic and foreign)",
            )
        )  # fmt: skip
    return labels
