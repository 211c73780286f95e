"""Injected abuse: one builder per kind, each making a scenario's calls from a start time.

Every builder takes an :class:`~callwarden.core.simulation.injection.Injection` (the tenant,
a seeded generator, numbers) and the scenario's start in epoch seconds, adds its calls, names
the keys a finding about it may carry, and returns the records with their label. The shapes
follow the public descriptions of each abuse (docs/evaluation.md lists them); the intensities
are drawn, so instances of a kind differ.

Pure core: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from callwarden.core.simulation.calls import talk_seconds
from callwarden.core.simulation.injection import Injected, Injection, ScenarioSpec
from callwarden.core.simulation.numbers import NumberKind
from callwarden.core.usage.record import Direction, Disposition

__all__ = ["ABUSE", "EMERGENCY_NUMBERS", "AbuseBuilder"]

OUT, IN = Direction.OUTBOUND, Direction.INBOUND
AbuseBuilder = Callable[[Injection, float], Injected]

#: The emergency number dialled in each tenant country.
EMERGENCY_NUMBERS: Final[dict[str, str]] = {
    "GB": "999",
    "PL": "112",
    "NL": "112",
    "FR": "112",
    "US": "911",
}
#: Risky destinations of IRSF: (country or "001", kind, country code, region).
_IRSF_TARGETS: Final[tuple[tuple[str, NumberKind, str, str], ...]] = (
    ("LV", "premium", "371", "LV"),
    ("LT", "premium", "370", "LT"),
    ("TN", "premium", "216", "TN"),
    ("CU", "mobile", "53", "CU"),
    ("SL", "mobile", "232", "SL"),
    ("001", "satellite", "881", "001"),
)
#: Countries no tenant calls in its ordinary traffic.
_NEW_COUNTRIES: Final[tuple[str, ...]] = ("IT", "PT", "AT", "CH", "SE")
#: Foreign ranges one-ring callers ring from: (country, country code).
_WANGIRI_SOURCES: Final[tuple[tuple[str, str], ...]] = (("SL", "232"), ("TN", "216"), ("CU", "53"))


def _agent(inj: Injection) -> tuple[str, str]:
    """A random agent (user) of the tenant and its direct number."""
    tenant = inj.tenant
    index = inj.rng.randrange(len(tenant.users))
    return tenant.users[index], tenant.numbers[inj.profile.hotlines + index]


def irsf_burst(inj: Injection, start: float) -> Injected:
    """A hijacked agent account dials a risky range (premium, satellite, IRSF-prone country):
    10 to 16 calls in about 25 minutes, most answered for one to eight minutes."""
    rng = inj.rng
    user, number = _agent(inj)
    country, kind, code, region = rng.choice(_IRSF_TARGETS)
    t = start
    for _ in range(rng.randint(10, 16)):
        answered = rng.random() < 0.7
        inj.call(
            direction=OUT, caller=number, callee=inj.maker.number(rng, country, kind),
            start=t, ring_s=rng.uniform(3, 12), talk_s=rng.randint(60, 480),
            disposition=Disposition.ANSWERED if answered else Disposition.NO_ANSWER,
            user_id=user,
        )  # fmt: skip
        t += rng.uniform(60, 150)
    for key in (
        ("destination", f"+{code}"),
        ("destination", region),
        ("tenant", inj.tenant.tenant_id),
    ):
        inj.key(*key)
    inj.key("user", user)
    inj.key("number", number)
    return inj.done(f"{user} dials the high-cost range +{code} ({region})")


def irsf_new_countries(inj: Injection, start: float) -> Injected:
    """Test calls after an account takeover: 7 to 10 calls in 40 minutes to three or four
    countries the tenant never calls, at ordinary prices."""
    rng = inj.rng
    user, number = _agent(inj)
    countries = rng.sample(_NEW_COUNTRIES, rng.randint(3, 4))
    t = start
    for n in range(rng.randint(7, 10)):
        country = countries[n % len(countries)]
        answered = rng.random() < 0.5
        inj.call(
            direction=OUT, caller=number, callee=inj.maker.number(rng, country, "mobile"),
            start=t, ring_s=rng.uniform(5, 20), talk_s=rng.randint(20, 200),
            disposition=Disposition.ANSWERED if answered else Disposition.NO_ANSWER,
            user_id=user,
        )  # fmt: skip
        t += rng.uniform(120, 330)
        inj.key("destination", country)
    inj.key("tenant", inj.tenant.tenant_id)
    inj.key("user", user)
    inj.key("number", number)
    return inj.done(f"{user} calls {', '.join(countries)}, all new for the tenant")


def wangiri_callback(inj: Injection, start: float) -> Injected:
    """One-ring calls from a foreign range to the tenant's hotlines (20 to 40 rings of one to
    three seconds over half an hour), and agents calling some of them back."""
    rng = inj.rng
    country, code = rng.choice(_WANGIRI_SOURCES)
    hotlines = inj.tenant.numbers[: inj.profile.hotlines]
    pings: list[tuple[str, float]] = []
    t = start
    for _ in range(rng.randint(20, 40)):
        caller = inj.maker.number(rng, country, "mobile")
        inj.call(
            direction=IN, caller=caller, callee=rng.choice(hotlines), start=t,
            ring_s=rng.uniform(1, 3), disposition=Disposition.CANCELLED,
        )  # fmt: skip
        pings.append((caller, t))
        t += rng.uniform(20, 90)
    backs = rng.sample(pings, rng.randint(2, 5))
    for caller, rang in backs:
        user, number = _agent(inj)
        inj.call(
            direction=OUT, caller=number, callee=caller, start=rang + rng.uniform(240, 2400),
            ring_s=rng.uniform(3, 10), talk_s=rng.randint(30, 240), user_id=user,
        )  # fmt: skip
        inj.key("number", caller)
        inj.key("user", user)
    for hotline in hotlines:
        inj.key("number", hotline)  # the rung numbers: their hour's calls are the fraud's too
    inj.key("destination", f"+{code}")
    inj.key("destination", country)
    inj.key("tenant", inj.tenant.tenant_id)
    return inj.done(f"one-ring calls from +{code} ({country}), {len(backs)} called back")


def volume_spike(inj: Injection, start: float) -> Injected:
    """A hacked PBX extension dials domestic numbers from a hotline out of hours: 60 to 120
    calls in an hour when the tenant is closed."""
    rng = inj.rng
    hotline = inj.tenant.numbers[0]
    count = rng.randint(60, 120)
    for _ in range(count):
        answered = rng.random() < 0.4
        kind: NumberKind = "mobile" if rng.random() < 0.6 else "fixed"
        inj.call(
            direction=OUT, caller=hotline,
            callee=inj.maker.number(rng, inj.profile.country, kind),
            start=start + rng.uniform(0, 3300), ring_s=rng.uniform(4, 30),
            talk_s=talk_seconds(rng, 90),
            disposition=Disposition.ANSWERED if answered else Disposition.NO_ANSWER,
        )  # fmt: skip
    inj.key("tenant", inj.tenant.tenant_id)
    inj.key("number", hotline)
    inj.key("destination", inj.profile.country)
    return inj.done(f"{count} calls from hotline {hotline} in an hour the tenant is closed")


def spend_spike(inj: Injection, start: float) -> Injected:
    """Long calls to foreign mobiles of a country the tenant does call, in the evening: 30 to
    50 calls of 10 to 25 minutes within an hour (spend, not risk: the rates are ordinary)."""
    rng = inj.rng
    foreign = [c for c, _ in inj.profile.foreign] or ["DE"]
    country = foreign[0]
    users = [_agent(inj) for _ in range(3)]
    count = rng.randint(30, 50)
    for _ in range(count):
        user, number = rng.choice(users)
        inj.call(
            direction=OUT, caller=number, callee=inj.maker.number(rng, country, "mobile"),
            start=start + rng.uniform(0, 2400), ring_s=rng.uniform(4, 15),
            talk_s=rng.randint(600, 1500), user_id=user,
        )  # fmt: skip
        inj.key("number", number)
        inj.key("user", user)
    inj.key("tenant", inj.tenant.tenant_id)
    inj.key("destination", country)
    return inj.done(f"{count} long calls to {country} mobiles in one evening hour")


def pumping_range(inj: Injection, start: float) -> Injected:
    """Access stimulation: long calls at night to four numbers of one rural US range priced
    above the pumping cost line, from two or three agent accounts: 12 to 20 calls of 8 to 20
    minutes in about an hour."""
    rng = inj.rng
    block = rng.choice(("+1712432", "+1712258", "+1712943"))
    targets = [f"{block}{rng.randrange(10_000):04d}" for _ in range(4)]
    users = [_agent(inj) for _ in range(rng.randint(2, 3))]
    t = start
    for _ in range(rng.randint(12, 20)):
        user, number = rng.choice(users)
        inj.call(
            direction=OUT, caller=number, callee=rng.choice(targets), start=t,
            ring_s=rng.uniform(2, 6), talk_s=rng.randint(480, 1200), user_id=user,
        )  # fmt: skip
        t += rng.uniform(60, 240)
        inj.key("user", user)
        inj.key("number", number)
    for target in targets:
        inj.key("number", target)
    inj.key("destination", f"+{block[1:]}")
    inj.key("destination", "US")
    inj.key("tenant", inj.tenant.tenant_id)
    return inj.done(f"long night calls to four numbers in {block}")


def pumping_new_number(inj: Injection, start: float) -> Injected:
    """Inbound stimulation of a newly provisioned number of the tenant: 12 to 18 calls of 10 to
    40 minutes within a few hours, from two callers."""
    rng = inj.rng
    fresh = inj.maker.number(rng, inj.profile.country, "fixed")
    callers = [inj.maker.number(rng, inj.profile.country, "mobile") for _ in range(2)]
    t = start
    for _ in range(rng.randint(12, 18)):
        inj.call(
            direction=IN, caller=rng.choice(callers), callee=fresh, start=t,
            ring_s=rng.uniform(2, 6), talk_s=rng.randint(600, 2400),
        )  # fmt: skip
        t += rng.uniform(120, 900)
    inj.key("number", fresh)
    inj.key("tenant", inj.tenant.tenant_id)
    return inj.done(f"two callers keep the new number {fresh} busy for hours")


def simbox(inj: Injection, start: float) -> Injected:
    """A SIM box behind a new trunk: 16 to 24 SIM mobile caller IDs in rotation, outbound only,
    to domestic mobiles, short calls of about 45 seconds (60 to 90 calls in an hour)."""
    rng = inj.rng
    country = inj.profile.country
    sims = [inj.maker.number(rng, country, "mobile") for _ in range(rng.randint(16, 24))]
    trunk = f"{inj.tenant.tenant_id}-gw{rng.randrange(100):02d}"
    address = f"203.0.113.{rng.randrange(2, 250)}"
    count = rng.randint(60, 90)
    for n in range(count):
        answered = rng.random() < 0.85
        inj.call(
            direction=OUT, caller=sims[n % len(sims)],
            callee=inj.maker.number(rng, country, "mobile"),
            start=start + n * 3300 / count + rng.uniform(0, 20), ring_s=rng.uniform(3, 8),
            talk_s=max(10, round(rng.gauss(45, 8))),
            disposition=Disposition.ANSWERED if answered else Disposition.NO_ANSWER,
            trunk_id=trunk, source_ip=address,
        )  # fmt: skip
    inj.key("trunk", trunk)
    inj.key("source_ip", address)
    inj.key("tenant", inj.tenant.tenant_id)
    inj.key("destination", country)
    return inj.done(f"SIM box on {trunk} rotating {len(sims)} mobile caller IDs")


def robocall(inj: Injection, start: float) -> Injected:
    """A recorded message blasted from one caller ID: 300 to 450 attempts in 50 minutes to
    distinct numbers, about one in ten answered, and those hung up within seconds."""
    rng = inj.rng
    caller = inj.tenant.numbers[0]
    country = inj.profile.country
    count = rng.randint(300, 450)
    for n in range(count):
        answered = rng.random() < 0.1
        kind: NumberKind = "mobile" if rng.random() < 0.7 else "fixed"
        inj.call(
            direction=OUT, caller=caller, callee=inj.maker.number(rng, country, kind),
            start=start + n * 3000 / count, ring_s=rng.uniform(8, 25),
            talk_s=rng.randint(3, 5),
            disposition=Disposition.ANSWERED if answered else Disposition.NO_ANSWER,
            user_id=None,
        )  # fmt: skip
    inj.key("number", caller)
    inj.key("tenant", inj.tenant.tenant_id)
    inj.key("destination", country)
    return inj.done(f"{count} robocall attempts from {caller}")


def sequential(inj: Injection, start: float) -> Injected:
    """Range scanning: one agent account dials 30 to 45 consecutive numbers of one block
    (skipping a number now and then) in half an hour; almost none answer."""
    rng = inj.rng
    user, number = _agent(inj)
    block = inj.maker.block(rng, inj.profile.country, "fixed", 60)
    t = start
    index = 0
    for _ in range(rng.randint(30, 45)):
        answered = rng.random() < 0.1
        inj.call(
            direction=OUT, caller=number, callee=block[index], start=t,
            ring_s=rng.uniform(3, 15), talk_s=rng.randint(3, 30),
            disposition=Disposition.ANSWERED if answered else Disposition.NO_ANSWER,
            user_id=user,
        )  # fmt: skip
        index += 1 if rng.random() < 0.85 else 2
        t += rng.uniform(20, 60)
    inj.key("user", user)
    inj.key("number", number)
    inj.key("tenant", inj.tenant.tenant_id)
    inj.key("destination", inj.profile.country)
    return inj.done(f"{user} scans the block from {block[0]}")


def fair_use(inj: Injection, start: float) -> Injected:
    """Credentials shared by two people on an unlimited plan: one user on back-to-back calls
    for 16 to 20 hours with breaks of under three minutes."""
    rng = inj.rng
    user, number = _agent(inj)
    hours = rng.uniform(16, 20)
    t = start
    while t < start + hours * 3600:
        talk = rng.randint(120, 720)
        inbound = rng.random() < 0.4
        other = inj.maker.number(rng, inj.profile.country, "mobile")
        inj.call(
            direction=IN if inbound else OUT,
            caller=other if inbound else number,
            callee=inj.tenant.numbers[0] if inbound else other,
            start=t, ring_s=rng.uniform(3, 10), talk_s=talk, user_id=user,
        )  # fmt: skip
        t += talk + 12 + rng.uniform(20, 170)
    inj.key("user", user)
    inj.key("number", number)
    return inj.done(f"{user} is on calls for {hours:.1f} hours without a real break")


def emergency_repeat(inj: Injection, start: float) -> Injected:
    """Hoax or misuse: one agent calls the emergency number 5 to 8 times in 40 minutes, each
    call hung up within seconds or not answered."""
    rng = inj.rng
    user, number = _agent(inj)
    dial = EMERGENCY_NUMBERS[inj.profile.country]
    t = start
    for _ in range(rng.randint(5, 8)):
        answered = rng.random() < 0.5
        inj.call(
            direction=OUT, caller=number, callee=dial, start=t, ring_s=rng.uniform(1, 4),
            talk_s=rng.randint(1, 6),
            disposition=Disposition.ANSWERED if answered else Disposition.CANCELLED,
            user_id=user,
        )  # fmt: skip
        t += rng.uniform(120, 400)
    inj.key("user", user)
    inj.key("number", number)
    return inj.done(f"{user} makes repeated short calls to {dial}")


def emergency_campaign(inj: Injection, start: float) -> Injected:
    """A dialer campaign's list holds the emergency number: one call to it under the campaign's
    label, among ordinary campaign calls."""
    rng = inj.rng
    user, number = _agent(inj)
    campaign = f"{inj.profile.campaign or 'outreach'}-list{rng.randrange(100):02d}"
    dial = EMERGENCY_NUMBERS[inj.profile.country]
    inj.call(
        direction=OUT, caller=number, callee=dial, start=start, ring_s=2, talk_s=8,
        user_id=user, campaign=campaign,
    )  # fmt: skip
    inj.key("campaign", campaign)
    inj.key("user", user)
    inj.key("number", number)
    return inj.done(f"campaign {campaign} dialled {dial}")


def caller_rotation(inj: Injection, start: float) -> Injected:
    """An agent cycles through the tenant's numbers as caller ID to dodge blocking: 20 to 30
    calls in 45 minutes, a different caller ID nearly every time (tenants with at least 20
    numbers: a smaller pool cannot rotate through the detector's ten)."""
    rng = inj.rng
    user, _ = _agent(inj)
    pool = list(inj.tenant.numbers)
    t = start
    for _ in range(rng.randint(20, 30)):
        answered = rng.random() < 0.4
        kind: NumberKind = "mobile" if rng.random() < 0.5 else "fixed"
        inj.call(
            direction=OUT, caller=rng.choice(pool),
            callee=inj.maker.number(rng, inj.profile.country, kind), start=t,
            ring_s=rng.uniform(5, 25), talk_s=talk_seconds(rng, 60),
            disposition=Disposition.ANSWERED if answered else Disposition.NO_ANSWER,
            user_id=user,
        )  # fmt: skip
        t += rng.uniform(60, 130)
    inj.key("user", user)
    inj.key("tenant", inj.tenant.tenant_id)
    inj.key("destination", inj.profile.country)
    return inj.done(f"{user} rotates caller IDs across the tenant's numbers")


#: Every abuse kind: its spec, its builder, the tenants it suits and when it starts (local
#: hours it may start at; history it needs, in days).
AbuseKind = tuple[ScenarioSpec, AbuseBuilder, tuple[str, ...], tuple[int, ...], int]
ABUSE: Final[tuple[AbuseKind, ...]] = (
    (
        ScenarioSpec("irsf_burst", True, "irsf", ("baseline", "pumping"),
                     "burst of calls to a high-risk or high-cost range"),
        irsf_burst, ("tn-gb-care", "tn-pl-sales", "tn-nl-desk", "tn-fr-relay"),
        (1, 2, 3, 20, 21, 22), 2,
    ),
    (
        ScenarioSpec("irsf_new_countries", True, "irsf", ("baseline",),
                     "calls to several countries new for the tenant"),
        irsf_new_countries, ("tn-gb-care", "tn-pl-sales", "tn-us-outreach", "tn-nl-desk"),
        (10, 14, 19, 23), 3,
    ),
    (
        ScenarioSpec("wangiri_callback", True, "wangiri", ("irsf", "baseline"),
                     "one-ring calls from a foreign range, then call-backs"),
        wangiri_callback, ("tn-gb-care", "tn-nl-desk", "tn-fr-relay"), (10, 11, 14, 15), 2,
    ),
    (
        ScenarioSpec("volume_spike", True, "baseline", (),
                     "calls far above the seasonal norm of the hour"),
        volume_spike, ("tn-gb-care", "tn-pl-sales", "tn-fr-relay"), (21, 22, 23), 15,
    ),
    (
        ScenarioSpec("spend_spike", True, "baseline", (),
                     "spend far above the seasonal norm of the hour"),
        spend_spike, ("tn-gb-care", "tn-pl-sales", "tn-nl-desk"), (19, 20, 21), 15,
    ),
    (
        ScenarioSpec("pumping_range", True, "pumping", ("baseline",),
                     "minutes concentrated on a costly terminating range"),
        pumping_range, ("tn-us-outreach",), (0, 1, 2, 3, 22, 23), 2,
    ),
    (
        ScenarioSpec("pumping_new_number", True, "pumping", ("baseline",),
                     "long calls from few callers to a number with no history"),
        pumping_new_number, ("tn-gb-care", "tn-fr-relay", "tn-pl-sales"), (9, 13, 19), 2,
    ),
    (
        ScenarioSpec("simbox", True, "simbox", ("caller_rotation", "baseline"),
                     "SIM-box traffic on a trunk without consent"),
        simbox, ("tn-gb-care", "tn-pl-sales", "tn-nl-desk", "tn-us-outreach"), (9, 13, 17), 2,
    ),
    (
        ScenarioSpec("robocall", True, "robocall", ("baseline",),
                     "robocall signature from one caller ID"),
        robocall, ("tn-us-outreach", "tn-pl-sales", "tn-gb-care"), (10, 13, 18), 2,
    ),
    (
        ScenarioSpec("sequential", True, "sequential", ("baseline",),
                     "sequential dialing through a number range"),
        sequential, ("tn-gb-care", "tn-pl-sales", "tn-us-outreach", "tn-fr-relay"),
        (10, 14, 16), 2,
    ),
    (
        ScenarioSpec("fair_use", True, "fair_use", (),
                     "continuous, excessive use of an unlimited plan"),
        fair_use, ("tn-nl-desk", "tn-us-outreach"), (6, 7, 8), 2,
    ),
    (
        ScenarioSpec("emergency_repeat", True, "emergency", (),
                     "repeated short emergency calls"),
        emergency_repeat, ("tn-gb-care", "tn-pl-sales", "tn-nl-desk", "tn-fr-relay",
                           "tn-us-outreach"), (11, 15, 23), 2,
    ),
    (
        ScenarioSpec("emergency_campaign", True, "emergency", (),
                     "an emergency number dialled by a campaign"),
        emergency_campaign, ("tn-pl-sales", "tn-us-outreach"), (10, 14), 2,
    ),
    (
        ScenarioSpec("caller_rotation", True, "caller_rotation", ("baseline",),
                     "one user rotating caller IDs"),
        caller_rotation, ("tn-gb-care", "tn-pl-sales", "tn-us-outreach", "tn-nl-desk"),
        (10, 13, 16), 2,
    ),
)  # fmt: skip
