"""The demo's traffic generator sends every kind of attempt the demo wants to show."""

from __future__ import annotations

import random

from callwarden.adapters.cli.demo_traffic import DemoTenant, next_attempt

TENANT = DemoTenant("tn_0123456789abcdef", "GB", ("us_0123456789abcdef",), ("+442079460000",))


def test_most_attempts_are_ordinary_and_some_are_abusive_or_emergency() -> None:
    rng = random.Random(1)
    bodies = [next_attempt(TENANT, rng) for _ in range(2000)]
    destinations = [str(b["destination"]) for b in bodies]
    assert sum(d.startswith("+44") for d in destinations) > 1500
    assert "112" in destinations
    assert any(d.startswith("+449") for d in destinations)
    assert any(b["caller"] is None for b in bodies)
    assert len({b["call_id"] for b in bodies}) == len(bodies)
