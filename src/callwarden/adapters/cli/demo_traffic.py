"""Demo traffic: a SIP server's worth of call attempts against the running demo, over HTTP.

Mostly ordinary calls from agents with their tenant's caller IDs; now and then a premium-rate
destination, an invalid number, a withheld or spoofed caller ID, a burst to one destination, and
an emergency call, so every kind of decision shows up in /v1/admission/recent and /metrics.
Admitted calls are answered and ended a little later, releasing their leases.
"""

from __future__ import annotations

import logging
import random
import secrets
from dataclasses import dataclass

import anyio
import httpx
import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

log = logging.getLogger("callwarden.demo")


@dataclass(frozen=True)
class DemoTenant:
    """What the traffic needs to know of a demo tenant."""

    tenant_id: str
    country: str
    user_ids: tuple[str, ...]
    numbers: tuple[str, ...]


def _example(country: str, kind: int) -> str | None:
    number = phonenumbers.example_number_for_type(country, kind)
    return None if number is None else phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _ordinary(country: str, rng: random.Random) -> str:
    base = _example(country, PhoneNumberType.FIXED_LINE) or "+442079460000"
    return base[:-3] + f"{rng.randrange(1000):03d}"


def next_attempt(tenant: DemoTenant, rng: random.Random) -> dict[str, object]:
    """One call attempt body, most of them ordinary."""
    roll = rng.random()
    destination = _ordinary(tenant.country, rng)
    caller: str | None = rng.choice(tenant.numbers)
    if roll < 0.05:
        destination = _example(tenant.country, PhoneNumberType.PREMIUM_RATE) or destination
    elif roll < 0.08:
        destination = "00" + "9" * rng.randrange(1, 20)
    elif roll < 0.10:
        caller = None
    elif roll < 0.13:
        caller = _ordinary(tenant.country, rng)
    elif roll < 0.14:
        destination = "112"
    elif roll < 0.20:
        destination = _example(tenant.country, PhoneNumberType.FIXED_LINE) or destination
    return {
        "call_id": f"{secrets.token_hex(8)}@demo-pbx",
        "tenant_id": tenant.tenant_id,
        "user_id": rng.choice(tenant.user_ids),
        "caller": caller,
        "destination": destination,
    }


async def run_traffic(
    base_url: str, api_key: str, tenants: list[DemoTenant], calls_per_second: float = 4.0
) -> None:
    """Send attempts until cancelled; admitted calls are answered and ended later."""
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {api_key}"}
    await anyio.sleep(1.5)  # let the server finish starting
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=5) as client:

        async def finish(body: dict[str, object]) -> None:
            url = f"/v1/admission/calls/{body['call_id']}/events"
            tenant = {"tenant_id": body["tenant_id"]}
            await anyio.sleep(rng.uniform(1, 3))
            await client.post(url, json={"event": "answered", **tenant})
            talk_s = rng.uniform(20, 600)  # demo time runs 40 times faster than the clock
            await anyio.sleep(talk_s / 40)
            await client.post(url, json={"event": "ended", "duration_s": talk_s, **tenant})

        async with anyio.create_task_group() as tasks:
            while True:
                body = next_attempt(rng.choice(tenants), rng)
                try:
                    response = await client.post("/v1/admission/calls", json=body)
                    if response.status_code == 200 and response.json().get("admit"):
                        tasks.start_soon(finish, body)
                except httpx.HTTPError as exc:
                    log.warning("demo traffic: %s", exc)
                await anyio.sleep(rng.expovariate(calls_per_second))
