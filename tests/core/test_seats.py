"""Seats (ACC-3): the limit is what valid orders grant; the default policy refuses past it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from callwarden.core.model import Order, Tenant, TenantStatus, User, UserRole, UserStatus
from callwarden.core.seats import RefuseBeyondLimit, SeatCount, check_activation, seat_limit_at

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
TENANT = Tenant("tn_1", "T", "GB", "Europe/London", "pl_1", TenantStatus.ACTIVE, None, NOW)
USER = User("us_1", "tn_1", "a@b.example", "A", UserRole.AGENT, UserStatus.INVITED, None, NOW)


def order(seats: int, start_days: int, end_days: int | None) -> Order:
    return Order(
        "or_x",
        "tn_1",
        seats,
        NOW + timedelta(days=start_days),
        None if end_days is None else NOW + timedelta(days=end_days),
        "",
        NOW,
    )


def test_only_orders_valid_now_grant_seats() -> None:
    orders = [order(5, -10, None), order(3, -10, -1), order(4, 1, None), order(2, -1, 1)]
    assert seat_limit_at(orders, NOW) == 7


def test_an_order_ending_now_no_longer_grants_seats() -> None:
    assert seat_limit_at([order(5, -10, 0)], NOW) == 0


@given(limit=st.integers(0, 50), used=st.integers(0, 60))
def test_activation_is_allowed_exactly_while_a_seat_is_free(limit: int, used: int) -> None:
    verdict = check_activation(TENANT, USER, SeatCount(limit, used), RefuseBeyondLimit())
    assert verdict.allowed == (used < limit)
    if not verdict.allowed:
        assert verdict.clause_ids == ("ACC-3",)
        assert str(limit) in verdict.reason


def test_available_seats_never_go_negative() -> None:
    assert SeatCount(limit=2, used=5).available == 0
