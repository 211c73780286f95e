"""Month-to-date spend as reserve-then-settle (LIM-1, LIM-3) on both counters backends.

Every test runs on the in-process counters and on the Redis counters against the real server at
127.0.0.1:6379 (a random key prefix per test, deleted afterwards). Besides one behaviour per
test, a state machine checks random interleavings of reserve, settle, release and expiry
against a plain model, and the concurrency tests fire hundreds of reservations at one month at
once (tasks on several Redis clients, threads on the in-process counters) to show that calls
together never hold or spend more than the limit.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from redis.crc import key_slot
from tests.adapters.counters.backends import (
    Backend,
    Loop,
    R,
    redis_keys,
    tenant,
)

from callwarden.adapters.counters.memory import MemoryCounters
from callwarden.adapters.counters.redis import RedisCounters
from callwarden.core.counters import (
    Counters,
    SpendGrant,
    SpendMark,
    SpendReservation,
    SpendSettlement,
)
from callwarden.core.limits import from_micros, to_micros

T0 = 1_793_000_000.0  # 2026-10-28 UTC; the budget month is the caller's choice
T0_US = to_micros(T0)
MONTH, NEXT_MONTH = "2026-11", "2026-12"


def marks_of(limit: int) -> list[SpendMark]:
    """The 50%, 80% and 100% alert marks of a hard limit."""
    return [SpendMark(f"hard:{p}", limit * p // 100) for p in (50, 80, 100)]


# -- reserve ---------------------------------------------------------------------------------


def test_a_grant_is_the_wanted_amount_cut_to_the_room(counters: Counters, run: Loop) -> None:
    t = tenant()
    first = run(counters.reserve_spend(t, "c1", MONTH, 600, 100, 1_000, 60, T0))
    assert first == SpendGrant(600, 0, 600)
    second = run(counters.reserve_spend(t, "c2", MONTH, 600, 100, 1_000, 60, T0))
    assert second == SpendGrant(400, 0, 1_000)
    assert run(counters.spend_totals(t, MONTH, T0)) == (0, 1_000)


def test_a_room_below_the_minimum_grants_nothing_and_changes_nothing(
    counters: Counters, run: Loop
) -> None:
    t = tenant()
    assert run(counters.reserve_spend(t, "c1", MONTH, 950, 100, 1_000, 60, T0)).granted_minor == 950
    refused = run(counters.reserve_spend(t, "c2", MONTH, 500, 51, 1_000, 60, T0))
    assert refused == SpendGrant(0, 0, 950)
    assert run(counters.reservation(t, "c2", T0)) is None
    assert run(counters.settle_spend(t, "c2", 10, [], T0)) is None
    assert not run(counters.release_spend(t, "c2", T0))
    assert run(counters.spend_totals(t, MONTH, T0)) == (0, 950)


def test_a_room_equal_to_the_minimum_is_granted(counters: Counters, run: Loop) -> None:
    t = tenant()
    run(counters.reserve_spend(t, "c1", MONTH, 950, 100, 1_000, 60, T0))
    assert run(counters.reserve_spend(t, "c2", MONTH, 500, 50, 1_000, 60, T0)) == SpendGrant(
        50, 0, 1_000
    )


def test_a_month_over_its_limit_grants_nothing_even_without_a_minimum(
    counters: Counters, run: Loop
) -> None:
    t = tenant()
    run(counters.reserve_spend(t, "c1", MONTH, 100, 100, 1_000, 60, T0))
    # the real cost came out above the reservation (a long call, a late rate change)
    run(counters.settle_spend(t, "c1", 1_200, [], T0 + 1))
    assert run(counters.reserve_spend(t, "c2", MONTH, 100, 0, 1_000, 60, T0 + 2)) == SpendGrant(
        0, 1_200, 0
    )
    assert run(counters.reservation(t, "c2", T0 + 2)) is None


def test_without_a_limit_the_wanted_amount_is_granted(counters: Counters, run: Loop) -> None:
    t = tenant()
    run(counters.reserve_spend(t, "c1", MONTH, 5_000, 0, None, 60, T0))
    run(counters.settle_spend(t, "c1", 10**12, [], T0 + 1))
    grant = run(counters.reserve_spend(t, "c2", MONTH, 7_000, 7_000, None, 60, T0 + 2))
    assert grant == SpendGrant(7_000, 10**12, 7_000)


def test_a_free_call_holds_a_reservation_of_nothing(counters: Counters, run: Loop) -> None:
    """A destination rated at zero (a toll-free number) wants and costs nothing; its
    reservation settles, releases and lapses like any other."""
    t = tenant()
    assert run(counters.reserve_spend(t, "c1", MONTH, 0, 0, 1_000, 60, T0)) == SpendGrant(0, 0, 0)
    assert run(counters.reserve_spend(t, "c2", MONTH, 0, 0, 1_000, 60, T0)) == SpendGrant(0, 0, 0)
    assert run(counters.reserve_spend(t, "c3", MONTH, 0, 0, 1_000, 60, T0)) == SpendGrant(0, 0, 0)
    assert run(counters.reservation(t, "c1", T0)) == SpendReservation("c1", MONTH, 0, T0)
    settled = run(counters.settle_spend(t, "c1", 0, marks_of(1_000), T0 + 1))
    assert settled == SpendSettlement(0, 0, (), SpendReservation("c1", MONTH, 0, T0))
    assert run(counters.release_spend(t, "c2", T0 + 1))
    # c3's end event was lost: its reservation lapses without disturbing the month
    assert run(counters.spend_totals(t, MONTH, T0 + 60)) == (0, 0)
    assert run(counters.reserve_spend(t, "c4", MONTH, 1_000, 1, 1_000, 60, T0 + 60)) == (
        SpendGrant(1_000, 0, 1_000)
    )


def test_a_retransmitted_call_gets_its_reservation_back_and_nothing_twice(
    counters: Counters, run: Loop
) -> None:
    t = tenant()
    assert run(counters.reserve_spend(t, "c1", MONTH, 300, 10, 1_000, 60, T0, note="a")) == (
        SpendGrant(300, 0, 300)
    )
    again = run(counters.reserve_spend(t, "c1", MONTH, 500, 10, 1_000, 60, T0 + 1, note="b"))
    assert again == SpendGrant(300, 0, 300, already_held=True)
    # even asked for another month, the call keeps the one reservation it holds
    other = run(counters.reserve_spend(t, "c1", NEXT_MONTH, 500, 10, 1_000, 60, T0 + 2))
    assert other == SpendGrant(300, 0, 300, already_held=True)
    assert run(counters.reservation(t, "c1", T0 + 2)) == SpendReservation("c1", MONTH, 300, T0, "a")
    assert run(counters.spend_totals(t, MONTH, T0 + 2)) == (0, 300)
    assert run(counters.spend_totals(t, NEXT_MONTH, T0 + 2)) == (0, 0)


def test_a_retransmission_does_not_extend_the_reservation(counters: Counters, run: Loop) -> None:
    t = tenant()
    run(counters.reserve_spend(t, "c1", MONTH, 300, 10, 1_000, 10, T0))
    assert run(counters.reserve_spend(t, "c1", MONTH, 300, 10, 1_000, 10, T0 + 9)).already_held
    assert run(counters.reservation(t, "c1", T0 + 10)) is None
    assert run(counters.spend_totals(t, MONTH, T0 + 10)) == (0, 0)


def test_a_reservation_keeps_its_month_note_and_reserved_at(backend: Backend, run: Loop) -> None:
    a, b = backend.new(), backend.new()
    t = tenant()
    note = 'EUR 0.0123/60+60 "\u017c\u00f3\u0142w" \\ \n\U0001f600'
    at = T0 + 0.25
    run(a.reserve_spend(t, "c1", NEXT_MONTH, 420, 10, None, 60, at, note=note))
    expected = SpendReservation("c1", NEXT_MONTH, 420, at, note)
    assert run(b.reservation(t, "c1", at + 30)) == expected
    settled = run(b.settle_spend(t, "c1", 99, [], at + 31))
    assert settled is not None and settled.reservation == expected


def test_reserved_at_is_kept_to_the_microsecond(counters: Counters, run: Loop) -> None:
    """Times travel as whole microseconds, so every backend hands back the same instant."""
    t = tenant()
    at = T0 + 0.0000014
    run(counters.reserve_spend(t, "c1", MONTH, 10, 1, None, 60, at))
    held = run(counters.reservation(t, "c1", T0 + 1))
    assert held is not None and held.reserved_at == from_micros(to_micros(at)) != at


def test_a_retransmission_reports_totals_without_lapsed_reservations(
    counters: Counters, run: Loop
) -> None:
    t = tenant()
    run(counters.reserve_spend(t, "c1", MONTH, 300, 10, 1_000, 10, T0))
    run(counters.reserve_spend(t, "c2", MONTH, 200, 10, 1_000, 60, T0))
    again = run(counters.reserve_spend(t, "c2", MONTH, 200, 10, 1_000, 60, T0 + 10))
    assert again == SpendGrant(200, 0, 200, already_held=True)


# -- settle and release ----------------------------------------------------------------------


def test_settle_replaces_the_reservation_with_the_cost_and_returns_the_totals(
    backend: Backend, run: Loop
) -> None:
    a, b = backend.new(), backend.new()
    t = tenant()
    run(a.reserve_spend(t, "c1", MONTH, 500, 10, 1_000, 60, T0, note="r"))
    run(a.reserve_spend(t, "c2", MONTH, 200, 10, 1_000, 60, T0))
    # any instance settles a call, whichever reserved it
    settled = run(b.settle_spend(t, "c1", 120, [], T0 + 30))
    assert settled == SpendSettlement(120, 200, (), SpendReservation("c1", MONTH, 500, T0, "r"))
    assert run(a.reservation(t, "c1", T0 + 30)) is None
    assert run(a.spend_totals(t, MONTH, T0 + 30)) == (120, 200)
    assert run(a.reserve_spend(t, "c3", MONTH, 900, 10, 1_000, 60, T0 + 30)).granted_minor == 680


def test_a_settlement_reports_totals_without_lapsed_reservations(
    counters: Counters, run: Loop
) -> None:
    t = tenant()
    run(counters.reserve_spend(t, "c1", MONTH, 300, 10, 1_000, 10, T0))
    run(counters.reserve_spend(t, "c2", MONTH, 200, 10, 1_000, 60, T0))
    settled = run(counters.settle_spend(t, "c2", 150, [], T0 + 10))
    assert settled is not None
    assert (settled.settled_minor, settled.reserved_minor) == (150, 0)


def test_settling_twice_is_harmless(counters: Counters, run: Loop) -> None:
    t = tenant()
    run(counters.reserve_spend(t, "c1", MONTH, 500, 10, 1_000, 60, T0))
    assert run(counters.settle_spend(t, "c1", 120, marks_of(200), T0 + 1)) is not None
    assert run(counters.settle_spend(t, "c1", 120, marks_of(200), T0 + 2)) is None
    assert not run(counters.release_spend(t, "c1", T0 + 2))
    assert run(counters.spend_totals(t, MONTH, T0 + 2)) == (120, 0)


def test_settling_a_call_that_never_reserved_changes_nothing(counters: Counters, run: Loop) -> None:
    t = tenant()
    run(counters.reserve_spend(t, "c1", MONTH, 500, 10, 1_000, 60, T0))
    assert run(counters.settle_spend(t, "never", 100, marks_of(10), T0)) is None
    assert run(counters.spend_totals(t, MONTH, T0)) == (0, 500)
    # the marks were not consumed by the call that held nothing
    settled = run(counters.settle_spend(t, "c1", 10, marks_of(10), T0))
    assert settled is not None and settled.reached == ("hard:50", "hard:80", "hard:100")


def test_release_gives_the_budget_back(counters: Counters, run: Loop) -> None:
    t = tenant()
    run(counters.reserve_spend(t, "c1", MONTH, 600, 10, 1_000, 60, T0))
    assert run(counters.release_spend(t, "c1", T0 + 1))
    assert not run(counters.release_spend(t, "c1", T0 + 1))
    assert run(counters.reservation(t, "c1", T0 + 1)) is None
    assert run(counters.settle_spend(t, "c1", 600, [], T0 + 1)) is None
    assert run(counters.spend_totals(t, MONTH, T0 + 1)) == (0, 0)
    assert run(counters.reserve_spend(t, "c2", MONTH, 1_000, 10, 1_000, 60, T0 + 1)) == (
        SpendGrant(1_000, 0, 1_000)
    )


def test_a_reservation_lapses_at_its_ttl_and_its_budget_returns(
    counters: Counters, run: Loop
) -> None:
    t = tenant()
    run(counters.reserve_spend(t, "c1", MONTH, 1_000, 10, 1_000, 60, T0))
    just_before = T0 + 59.999999
    assert run(counters.reservation(t, "c1", just_before)) is not None
    assert run(counters.reserve_spend(t, "c2", MONTH, 100, 1, 1_000, 60, just_before)) == (
        SpendGrant(0, 0, 1_000)
    )
    # the call-end event was lost: the budget comes back at the expiry
    assert run(counters.reservation(t, "c1", T0 + 60)) is None
    assert run(counters.spend_totals(t, MONTH, T0 + 60)) == (0, 0)
    assert run(counters.settle_spend(t, "c1", 1_000, [], T0 + 60)) is None
    assert not run(counters.release_spend(t, "c1", T0 + 60))
    assert run(counters.reserve_spend(t, "c2", MONTH, 1_000, 1, 1_000, 60, T0 + 60)) == (
        SpendGrant(1_000, 0, 1_000)
    )


def test_a_lapsed_call_reserves_afresh(counters: Counters, run: Loop) -> None:
    t = tenant()
    run(counters.reserve_spend(t, "c1", MONTH, 300, 10, 1_000, 5, T0))
    again = run(counters.reserve_spend(t, "c1", NEXT_MONTH, 400, 10, 1_000, 5, T0 + 5, note="n"))
    assert again == SpendGrant(400, 0, 400)
    assert run(counters.reservation(t, "c1", T0 + 5)) == SpendReservation(
        "c1", NEXT_MONTH, 400, T0 + 5, "n"
    )
    assert run(counters.spend_totals(t, MONTH, T0 + 5)) == (0, 0)


def test_months_are_separate(counters: Counters, run: Loop) -> None:
    t = tenant()
    assert run(counters.reserve_spend(t, "c1", MONTH, 1_000, 10, 1_000, 60, T0)).granted_minor
    assert run(counters.settle_spend(t, "c1", 1_000, [], T0 + 1)) is not None
    assert run(counters.reserve_spend(t, "c2", MONTH, 10, 1, 1_000, 60, T0 + 2)).granted_minor == 0
    grant = run(counters.reserve_spend(t, "c3", NEXT_MONTH, 1_000, 10, 1_000, 60, T0 + 2))
    assert grant == SpendGrant(1_000, 0, 1_000)
    assert run(counters.spend_totals(t, MONTH, T0 + 2)) == (1_000, 0)
    assert run(counters.spend_totals(t, NEXT_MONTH, T0 + 2)) == (0, 1_000)


def test_tenants_are_separate(counters: Counters, run: Loop) -> None:
    a, b = tenant(), tenant()
    run(counters.reserve_spend(a, "c1", MONTH, 1_000, 10, 1_000, 60, T0, note="a"))
    assert run(counters.reserve_spend(b, "c1", MONTH, 700, 10, 1_000, 60, T0, note="b")) == (
        SpendGrant(700, 0, 700)
    )
    settled = run(counters.settle_spend(a, "c1", 50, [], T0 + 1))
    assert settled is not None and settled.reservation.note == "a"
    assert run(counters.reservation(b, "c1", T0 + 1)) == SpendReservation("c1", MONTH, 700, T0, "b")
    assert run(counters.spend_totals(a, MONTH, T0 + 1)) == (50, 0)
    assert run(counters.spend_totals(b, MONTH, T0 + 1)) == (0, 700)


# -- alert marks -----------------------------------------------------------------------------


def test_a_mark_is_reported_when_the_settled_spend_first_reaches_it(
    counters: Counters, run: Loop
) -> None:
    t = tenant()
    marks = marks_of(1_000)
    run(counters.reserve_spend(t, "c1", MONTH, 499, 1, 1_000, 60, T0))
    run(counters.reserve_spend(t, "c2", MONTH, 400, 1, 1_000, 60, T0))
    # reservations are not spend: nothing is reached until a call settles
    first = run(counters.settle_spend(t, "c1", 499, marks, T0 + 1))
    assert first is not None and first.reached == ()
    second = run(counters.settle_spend(t, "c2", 1, marks, T0 + 2))
    assert second is not None and second.reached == ("hard:50",)
    assert second.settled_minor == 500


def test_one_settlement_reports_every_mark_it_crosses_in_the_given_order(
    counters: Counters, run: Loop
) -> None:
    t = tenant()
    marks = [
        SpendMark("soft:50", 300),
        SpendMark("hard:100", 1_000),
        SpendMark("hard:50", 500),
        SpendMark("soft:80", 480),
        SpendMark("hard:80", 800),
    ]
    run(counters.reserve_spend(t, "c1", MONTH, 900, 1, 1_000, 60, T0))
    settled = run(counters.settle_spend(t, "c1", 850, marks, T0 + 1))
    assert settled is not None
    assert settled.reached == ("soft:50", "hard:50", "soft:80", "hard:80")


def test_a_mark_is_never_reported_twice_in_a_month(backend: Backend, run: Loop) -> None:
    a, b = backend.new(), backend.new()
    t = tenant()
    marks = marks_of(1_000)
    for i in range(5):
        run(a.reserve_spend(t, f"c{i}", MONTH, 250, 1, None, 60, T0))
    # the calls end on either instance; each mark goes out once, from whichever reached it
    ends = [run((a, b)[i % 2].settle_spend(t, f"c{i}", 250, marks, T0 + 1 + i)) for i in range(5)]
    assert [e.settled_minor if e else None for e in ends] == [250, 500, 750, 1_000, 1_250]
    assert [e.reached if e else None for e in ends] == [
        (),
        ("hard:50",),
        (),
        ("hard:80", "hard:100"),
        (),
    ]


def test_marks_are_reported_again_in_the_next_month(counters: Counters, run: Loop) -> None:
    t = tenant()
    marks = marks_of(1_000)
    run(counters.reserve_spend(t, "c1", MONTH, 1_000, 1, 1_000, 60, T0))
    nov = run(counters.settle_spend(t, "c1", 1_000, marks, T0 + 1))
    assert nov is not None and nov.reached == ("hard:50", "hard:80", "hard:100")
    run(counters.reserve_spend(t, "c2", NEXT_MONTH, 600, 1, 1_000, 60, T0 + 2))
    dec = run(counters.settle_spend(t, "c2", 600, marks, T0 + 3))
    assert dec is not None and dec.reached == ("hard:50",)


# -- invalid arguments -----------------------------------------------------------------------

SpendCall = Callable[[Counters, str], Awaitable[object]]

INVALID: list[SpendCall] = [
    lambda c, t: c.reserve_spend(t, "c2", "2026-13", 100, 10, 1_000, 60, T0),
    lambda c, t: c.reserve_spend(t, "c2", "26-11", 100, 10, 1_000, 60, T0),
    lambda c, t: c.reserve_spend(t, "c2", "2026-00", 100, 10, 1_000, 60, T0),
    lambda c, t: c.reserve_spend(t, "c2", "2026/11", 100, 10, 1_000, 60, T0),
    lambda c, t: c.reserve_spend(t, "c2", "2026-1", 100, 10, 1_000, 60, T0),
    lambda c, t: c.reserve_spend(t, "c2", "", 100, 10, 1_000, 60, T0),
    lambda c, t: c.reserve_spend(t, "c2", MONTH, -1, 0, 1_000, 60, T0),
    lambda c, t: c.reserve_spend(t, "c2", MONTH, 100, -1, 1_000, 60, T0),
    lambda c, t: c.reserve_spend(t, "c2", MONTH, 100, 10, -1, 60, T0),
    lambda c, t: c.reserve_spend(t, "c2", MONTH, 1.5, 1, 1_000, 60, T0),  # type: ignore[arg-type]
    lambda c, t: c.reserve_spend(t, "c2", MONTH, True, 0, 1_000, 60, T0),
    lambda c, t: c.reserve_spend(t, "c2", MONTH, 100, 10, 1_000, 0, T0),
    lambda c, t: c.reserve_spend(t, "c2", MONTH, 100, 10, 1_000, float("nan"), T0),
    lambda c, t: c.reserve_spend(t, "c2", MONTH, 100, 10, 1_000, 60, float("inf")),
    lambda c, t: c.reserve_spend(t, "", MONTH, 100, 10, 1_000, 60, T0),
    lambda c, t: c.reserve_spend("", "c2", MONTH, 100, 10, 1_000, 60, T0),
    lambda c, t: c.reserve_spend(t + "{x}", "c2", MONTH, 100, 10, 1_000, 60, T0),
    lambda c, t: c.reserve_spend(t, "c1", MONTH, -5, 10, 1_000, 60, T0),
    lambda c, t: c.settle_spend(t, "c1", -1, [], T0),
    lambda c, t: c.settle_spend(
        t, "c1", 10, [SpendMark("hard:50", 5), SpendMark("hard:50", 8)], T0
    ),
    lambda c, t: c.settle_spend(t, "c1", 10, [SpendMark("hard:50", -5)], T0),
    lambda c, t: c.settle_spend(t, "c1", 10, [SpendMark("", 5)], T0),
    lambda c, t: c.settle_spend(t, "c1", 10, [], float("nan")),
    lambda c, t: c.settle_spend(t, "", 10, [], T0),
    lambda c, t: c.release_spend(t, "", T0),
    lambda c, t: c.release_spend(t, "c1", float("-inf")),
    lambda c, t: c.reservation(t, "", T0),
    lambda c, t: c.spend_totals(t, "2026-13", T0),
    lambda c, t: c.spend_totals(t, "26-11", T0),
]


@pytest.mark.parametrize("call", INVALID)
def test_invalid_arguments_raise_value_error_before_anything_changes(
    counters: Counters, run: Loop, call: SpendCall
) -> None:
    t = tenant()
    run(counters.reserve_spend(t, "c1", MONTH, 300, 10, 1_000, 60, T0, note="n"))
    with pytest.raises(ValueError):
        run(call(counters, t))
    assert run(counters.reservation(t, "c1", T0)) == SpendReservation("c1", MONTH, 300, T0, "n")
    assert run(counters.reservation(t, "c2", T0)) is None
    assert run(counters.spend_totals(t, MONTH, T0)) == (0, 300)
    settled = run(counters.settle_spend(t, "c1", 300, marks_of(500), T0 + 1))
    assert settled is not None and settled.reached == ("hard:50",)


# -- concurrency: no overspend ---------------------------------------------------------------

LIMIT = 50_000
MINIMUM = 50


def wanted_for(i: int) -> int:
    """A spread of reservation sizes, 100 to 999, whose sum far exceeds :data:`LIMIT`."""
    return 100 + (i * 7_919) % 900


def check_no_overspend(grants: list[SpendGrant]) -> int:
    """Check a set of grants made against one month with nothing settled; their total."""
    total = sum(g.granted_minor for g in grants)
    assert total <= LIMIT
    assert all(g.granted_minor == 0 or g.granted_minor >= MINIMUM for g in grants)
    assert all(g.settled_minor + g.reserved_minor <= LIMIT for g in grants)
    # a grant is cut only to the last of the room, so at most once ...
    assert sum(1 for i, g in enumerate(grants) if 0 < g.granted_minor < wanted_for(i)) <= 1
    # ... and once a call was refused or cut, the room left is below the minimum
    if any(g.granted_minor < wanted_for(i) for i, g in enumerate(grants)):
        assert LIMIT - total < MINIMUM
    return total


async def _settle_all(
    instances: list[Counters], t: str, grants: list[SpendGrant], now: float
) -> list[SpendSettlement | None]:
    jobs = [
        instances[(i + 1) % len(instances)].settle_spend(
            t, f"c{i}", g.granted_minor, marks_of(LIMIT), now
        )
        for i, g in enumerate(grants)
    ]
    return list(await asyncio.gather(*jobs))


def test_concurrent_reservations_from_several_instances_never_exceed_the_limit(
    backend: Backend, run: Loop
) -> None:
    instances = [backend.new() for _ in range(4)]
    t = tenant()

    async def storm() -> list[SpendGrant]:
        jobs = [
            instances[i % 4].reserve_spend(
                t, f"c{i}", MONTH, wanted_for(i), MINIMUM, LIMIT, 600, T0 + i * 1e-4
            )
            for i in range(200)
        ]
        return list(await asyncio.gather(*jobs))

    grants = run(storm())
    total = check_no_overspend(grants)
    assert sum(1 for g in grants if g.granted_minor == 0) > 0  # the limit did bite
    assert run(instances[1].spend_totals(t, MONTH, T0 + 1)) == (0, total)

    settlements = run(_settle_all(instances, t, grants, T0 + 2))
    for grant, settlement in zip(grants, settlements, strict=True):
        assert (settlement is not None) == (grant.granted_minor > 0)
    assert run(instances[2].spend_totals(t, MONTH, T0 + 3)) == (total, 0)
    reached = [name for s in settlements if s is not None for name in s.reached]
    assert sorted(reached) == sorted(m.name for m in marks_of(LIMIT) if total >= m.amount_minor)


def test_memory_spend_reservations_from_many_threads_never_exceed_the_limit() -> None:
    counters = MemoryCounters()
    grants: list[SpendGrant | None] = [None] * 200
    lock = threading.Lock()

    def worker(n: int) -> None:
        async def go() -> list[SpendGrant]:
            jobs = [
                counters.reserve_spend(
                    "t", f"c{i}", MONTH, wanted_for(i), MINIMUM, LIMIT, 600, T0 + i * 1e-4
                )
                for i in range(n, 200, 8)
            ]
            return list(await asyncio.gather(*jobs))

        got = asyncio.run(go())
        with lock:
            for i, grant in zip(range(n, 200, 8), got, strict=True):
                grants[i] = grant

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    made = [g for g in grants if g is not None]
    assert len(made) == 200
    total = check_no_overspend(made)
    assert asyncio.run(counters.spend_totals("t", MONTH, T0 + 1)) == (0, total)
    settlements = asyncio.run(_settle_all([counters], "t", made, T0 + 2))
    assert sum(s.reservation.granted_minor for s in settlements if s is not None) == total
    assert asyncio.run(counters.spend_totals("t", MONTH, T0 + 3)) == (total, 0)


def test_concurrent_calls_reserving_and_settling_never_overspend(
    backend: Backend, run: Loop
) -> None:
    """Calls start and end all at once; every call costs at most what it was granted, so the
    month's settled spend plus live reservations never exceeds the limit at any step."""
    instances = [backend.new() for _ in range(3)]
    t = tenant()

    async def call(i: int) -> tuple[SpendGrant, SpendSettlement | None]:
        now = T0 + i * 1e-3
        grant = await instances[i % 3].reserve_spend(
            t, f"c{i}", MONTH, wanted_for(i), MINIMUM, LIMIT, 600, now
        )
        await asyncio.sleep(0)
        cost = max(0, grant.granted_minor - i % 7)
        ended = await instances[(i + 1) % 3].settle_spend(
            t, f"c{i}", cost, marks_of(LIMIT), now + 0.5
        )
        return grant, ended

    outcomes = run(asyncio.gather(*(call(i) for i in range(300))))
    costs = 0
    for i, (grant, ended) in enumerate(outcomes):
        assert grant.settled_minor + grant.reserved_minor <= LIMIT
        assert grant.granted_minor == 0 or grant.granted_minor >= MINIMUM
        assert (ended is not None) == (grant.granted_minor > 0)
        if ended is not None:
            assert ended.settled_minor + ended.reserved_minor <= LIMIT
            costs += max(0, grant.granted_minor - i % 7)
    assert any(grant.granted_minor == 0 for grant, _ in outcomes)
    assert run(instances[0].spend_totals(t, MONTH, T0 + 10)) == (costs, 0)
    reached = [name for _, e in outcomes if e is not None for name in e.reached]
    assert len(reached) == len(set(reached))


def test_two_instances_settling_one_call_at_once_settle_it_once(
    backend: Backend, run: Loop
) -> None:
    a, b = backend.new(), backend.new()
    t = tenant()
    for i in range(100):
        run(a.reserve_spend(t, f"c{i}", MONTH, 100, 1, 10_000, 600, T0))

    async def both_end(i: int) -> tuple[SpendSettlement | None, SpendSettlement | None]:
        one, two = await asyncio.gather(
            a.settle_spend(t, f"c{i}", 100, marks_of(10_000), T0 + 1),
            b.settle_spend(t, f"c{i}", 100, marks_of(10_000), T0 + 1),
        )
        return one, two

    ends = run(asyncio.gather(*(both_end(i) for i in range(100))))
    assert all((one is None) != (two is None) for one, two in ends)
    assert run(b.spend_totals(t, MONTH, T0 + 1)) == (10_000, 0)
    reached = [name for pair in ends for s in pair if s is not None for name in s.reached]
    assert sorted(reached) == ["hard:100", "hard:50", "hard:80"]


# -- Redis specifics -------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_spend_keys_share_one_slot_and_all_expire(run: Loop) -> None:
    backend = Backend("redis", ttl_slack_s=5.0)
    counters = backend.new()
    assert isinstance(counters, RedisCounters)
    t = "tenant-42"
    try:
        run(counters.reserve_spend(t, "c1", MONTH, 600, 10, 1_000, 60, T0))
        run(counters.reserve_spend(t, "c2", MONTH, 300, 10, 1_000, 60, T0))
        settled = run(counters.settle_spend(t, "c1", 600, marks_of(1_000), T0 + 1))
        assert settled is not None and settled.reached == ("hard:50",)
        keys = run(redis_keys(backend.prefix))
        # c2's reservation record, the month's totals, live reservations (two keys), marks
        assert len(keys) == 5
        assert all(k.startswith(f"{backend.prefix}:{{t:{t}}}:".encode()) for k in keys)
        assert len({key_slot(k) for k in keys}) == 1
        ttls = {k: run(counters.client.pttl(k)) for k in keys}
        assert all(ms > 0 for ms in ttls.values()), ttls
    finally:
        run(backend.aclose())


@pytest.mark.redis
def test_redis_a_lost_end_event_gives_the_budget_back_after_its_record_expired(
    run: Loop,
) -> None:
    """Redis expires a reservation's record on its own clock (its TTL plus the slack); the
    month must still give the budget back when it is next touched, however late."""
    backend = Backend("redis", ttl_slack_s=0.0)
    counters = backend.new()
    t = tenant()
    try:
        run(counters.reserve_spend(t, "c1", MONTH, 1_000, 10, 1_000, 0.01, T0))
        time.sleep(0.1)  # the record's 10 ms TTL runs out on the server
        assert run(counters.spend_totals(t, MONTH, T0 + 3600)) == (0, 0)
        grant = run(counters.reserve_spend(t, "c2", MONTH, 1_000, 10, 1_000, 60, T0 + 3600))
        assert grant == SpendGrant(1_000, 0, 1_000)
    finally:
        run(backend.aclose())


# -- the state machine -----------------------------------------------------------------------

MONTH_LIMITS = {MONTH: 1_000, NEXT_MONTH: 400}
SPEND_CALLS = [f"call-{i}" for i in range(5)]
SPEND_TTLS = [0.5, 1.0, 3.0]
NOTES = ["", "EUR 1200/60+60", "\u017c\u00f3\u0142w"]
MACHINE_MARKS = [
    SpendMark("soft:90", 900),
    SpendMark("hard:50", 200),
    SpendMark("hard:80", 320),
    SpendMark("hard:100", 400),
]


@dataclass
class _Held:
    month: str
    granted: int
    expires_us: int
    at_us: int
    note: str


class SpendMachine(RuleBasedStateMachine):
    """Random reservations, settlements (costing at most the grant), releases, clock advances
    and expiries on two instances sharing state, against a plain model of the months."""

    kind = "memory"

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.backend = Backend(self.kind)
        self.instances = [self.backend.new(), self.backend.new()]
        self.tenant = tenant()
        self.now_us = T0_US
        self.settled = dict.fromkeys(MONTH_LIMITS, 0)
        self.reached: dict[str, set[str]] = {m: set() for m in MONTH_LIMITS}
        self.held: dict[str, _Held] = {}

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        return self.runner.run(coro)

    @property
    def now(self) -> float:
        return from_micros(self.now_us)

    def live(self, call: str) -> _Held | None:
        held = self.held.get(call)
        if held is not None and held.expires_us <= self.now_us:
            del self.held[call]
            return None
        return held

    def reserved(self, month: str) -> int:
        return sum(
            h.granted for h in self.held.values() if h.month == month and h.expires_us > self.now_us
        )

    def reservation(self, call: str, held: _Held) -> SpendReservation:
        return SpendReservation(call, held.month, held.granted, from_micros(held.at_us), held.note)

    @rule(
        call=st.sampled_from(SPEND_CALLS),
        month=st.sampled_from(sorted(MONTH_LIMITS)),
        minimum=st.integers(0, 300),
        extra=st.integers(0, 400),
        ttl=st.sampled_from(SPEND_TTLS),
        note=st.sampled_from(NOTES),
        inst=st.integers(0, 1),
    )
    def reserve(
        self, call: str, month: str, minimum: int, extra: int, ttl: float, note: str, inst: int
    ) -> None:
        wanted, limit = minimum + extra, MONTH_LIMITS[month]
        got = self.run(
            self.instances[inst].reserve_spend(
                self.tenant, call, month, wanted, minimum, limit, ttl, self.now, note
            )
        )
        held = self.live(call)
        if held is not None:
            event("already held")
            expected = SpendGrant(
                held.granted, self.settled[held.month], self.reserved(held.month), True
            )
            limit = MONTH_LIMITS[held.month]
        else:
            settled, reserved = self.settled[month], self.reserved(month)
            room = limit - settled - reserved
            if room < minimum:
                event("refused")
                expected = SpendGrant(0, settled, reserved)
            else:
                granted = min(wanted, room)
                event("cut to the room" if granted < wanted else "granted in full")
                self.held[call] = _Held(
                    month, granted, self.now_us + to_micros(ttl), self.now_us, note
                )
                expected = SpendGrant(granted, settled, reserved + granted)
        assert got == expected
        assert got.already_held or got.granted_minor == 0 or got.granted_minor >= minimum
        assert got.settled_minor + got.reserved_minor <= limit

    @rule(call=st.sampled_from(SPEND_CALLS), percent=st.integers(0, 100), inst=st.integers(0, 1))
    def settle(self, call: str, percent: int, inst: int) -> None:
        held = self.live(call)
        cost = 0 if held is None else held.granted * percent // 100
        got = self.run(
            self.instances[inst].settle_spend(self.tenant, call, cost, MACHINE_MARKS, self.now)
        )
        if held is None:
            assert got is None
            return
        del self.held[call]
        month = held.month
        self.settled[month] += cost
        total = self.settled[month]
        reached = tuple(
            m.name
            for m in MACHINE_MARKS
            if total >= m.amount_minor and m.name not in self.reached[month]
        )
        self.reached[month].update(reached)
        if reached:
            event("reached marks")
        expected = SpendSettlement(
            total, self.reserved(month), reached, self.reservation(call, held)
        )
        assert got == expected

    @rule(call=st.sampled_from(SPEND_CALLS), inst=st.integers(0, 1))
    def release(self, call: str, inst: int) -> None:
        got = self.run(self.instances[inst].release_spend(self.tenant, call, self.now))
        held = self.live(call)
        self.held.pop(call, None)
        assert got == (held is not None)

    @rule(ms=st.integers(0, 1500))
    def advance(self, ms: int) -> None:
        self.now_us += ms * 1000

    @precondition(lambda self: any(h.expires_us > self.now_us for h in self.held.values()))
    @rule(data=st.data())
    def advance_to_an_expiry(self, data: st.DataObject) -> None:
        future = sorted(h.expires_us for h in self.held.values() if h.expires_us > self.now_us)
        self.now_us = data.draw(st.sampled_from(future)) - data.draw(st.sampled_from([0, 1]))

    # The checks are rules, not invariants: reading the totals forgets lapsed reservations, so
    # checking after every step would hide an operation that forgets to do so itself.

    @rule(month=st.sampled_from(sorted(MONTH_LIMITS)), inst=st.integers(0, 1))
    def totals_match_the_model(self, month: str, inst: int) -> None:
        totals = self.run(self.instances[inst].spend_totals(self.tenant, month, self.now))
        assert totals == (self.settled[month], self.reserved(month))
        assert sum(totals) <= MONTH_LIMITS[month]

    @rule(call=st.sampled_from(SPEND_CALLS), inst=st.integers(0, 1))
    def reservation_matches_the_model(self, call: str, inst: int) -> None:
        got = self.run(self.instances[inst].reservation(self.tenant, call, self.now))
        held = self.live(call)
        assert got == (None if held is None else self.reservation(call, held))

    @invariant()
    def the_model_never_holds_more_than_the_limit(self) -> None:
        for month, limit in MONTH_LIMITS.items():
            assert self.settled[month] + self.reserved(month) <= limit

    def teardown(self) -> None:
        try:
            self.run(self.backend.aclose())
        finally:
            self.runner.close()


class RedisSpendMachine(SpendMachine):
    kind = "redis"


MACHINE_SETTINGS = settings(max_examples=40, stateful_step_count=30, deadline=None)
TestSpendMemory = SpendMachine.TestCase
TestSpendMemory.settings = MACHINE_SETTINGS
TestSpendRedis = pytest.mark.redis(RedisSpendMachine.TestCase)
TestSpendRedis.settings = MACHINE_SETTINGS
