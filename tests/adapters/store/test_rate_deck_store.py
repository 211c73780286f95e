"""Rate decks in the store, on SQLite and on the real PostgreSQL server: bulk writes (executemany
and COPY) that merge or replace, exact round trips, recounted figures and the change feed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, text

from callwarden.core.audit import AuditFact
from callwarden.core.errors import Conflict
from callwarden.core.rating import Rate, make_rate
from callwarden.platform import Platform
from callwarden.services.ids import new_id
from callwarden.services.ports import PageRequest, RateDeckAssignment, RateDeckInfo

AT = datetime(2026, 1, 1, tzinfo=UTC)
JAN_2024, JUL_2024 = 1_704_067_200, 1_719_792_000


def _deck(platform: Platform, name: str = "Carrier A", currency: str = "USD") -> RateDeckInfo:
    deck = RateDeckInfo(
        id=new_id("rd"),
        name=name,
        currency=currency,
        description="",
        rate_count=0,
        effective_dates=(),
        effective_date_count=0,
        created_at=AT,
        updated_at=AT,
    )
    with platform.store.transaction() as tx:
        tx.add_rate_deck(deck)
    return deck


def _rate(prefix: str, price: str, effective: int = JAN_2024, description: str = "") -> Rate:
    return make_rate(
        prefix,
        price,
        connection_fee="0.01",
        increments=(30, 6),
        effective_from=effective,
        currency="USD",
        description=description,
    )


def _stored(platform: Platform, deck_id: str) -> set[Rate]:
    with platform.store.transaction() as tx:
        deck = tx.load_rate_deck(deck_id)
    assert deck is not None
    return set(deck)


def test_the_migration_creates_the_rate_deck_tables(platform: Platform) -> None:
    tables = set(inspect(platform.store.engine).get_table_names())
    assert {"rate_decks", "rate_deck_rates", "rate_deck_assignments"} <= tables


def test_rates_round_trip_exactly_whatever_their_descriptions_hold(platform: Platform) -> None:
    deck = _deck(platform)
    awkward = [
        "tab\there",
        "back\\slash",
        "new\nline",
        "cr\rhere",
        "Cura\u00e7ao \u2013 \u260e",
        "",
        "\\N",
    ]
    rates = [_rate(f"59{i}", f"0.00000000{i + 1}", description=d) for i, d in enumerate(awkward)]
    rates.append(_rate("1", "123456.123456789", description="largest price"))
    with platform.store.transaction() as tx:
        after = tx.write_rates(deck.id, rates, replace=False, at=AT)
    assert after.rate_count == len(rates)
    assert _stored(platform, deck.id) == set(rates)


def test_a_merge_replaces_the_same_prefix_and_date_and_keeps_every_other_rate(
    platform: Platform,
) -> None:
    deck = _deck(platform)
    first = [_rate("44", "0.01"), _rate("447", "0.08"), _rate("33", "0.02")]
    second = [_rate("447", "0.09"), _rate("447", "0.10", JUL_2024), _rate("49", "0.03")]
    with platform.store.transaction() as tx:
        tx.write_rates(deck.id, first, replace=False, at=AT)
    with platform.store.transaction() as tx:
        after = tx.write_rates(deck.id, second, replace=False, at=AT)
    assert _stored(platform, deck.id) == {first[0], first[2], *second}
    assert (after.rate_count, after.effective_dates) == (5, (JAN_2024, JUL_2024))


def test_replace_drops_every_stored_rate_first(platform: Platform) -> None:
    deck = _deck(platform)
    with platform.store.transaction() as tx:
        tx.write_rates(deck.id, [_rate("44", "0.01"), _rate("33", "0.02")], replace=False, at=AT)
    with platform.store.transaction() as tx:
        after = tx.write_rates(deck.id, [_rate("49", "0.03")], replace=True, at=AT)
    assert _stored(platform, deck.id) == {_rate("49", "0.03")}
    assert after.rate_count == 1


def test_rates_of_one_deck_leave_another_decks_alone(platform: Platform) -> None:
    a, b = _deck(platform, "A"), _deck(platform, "B")
    with platform.store.transaction() as tx:
        tx.write_rates(a.id, [_rate("44", "0.01")], replace=False, at=AT)
        tx.write_rates(b.id, [_rate("44", "0.05")], replace=False, at=AT)
    with platform.store.transaction() as tx:
        tx.write_rates(a.id, [_rate("33", "0.01")], replace=True, at=AT)
    assert _stored(platform, b.id) == {_rate("44", "0.05")}


def test_a_rolled_back_import_leaves_no_rate_behind(platform: Platform) -> None:
    deck = _deck(platform)
    rates = [_rate(str(100 + i), "0.01") for i in range(1000)]
    with pytest.raises(RuntimeError), platform.store.transaction() as tx:
        tx.write_rates(deck.id, rates, replace=False, at=AT)
        raise RuntimeError("the audit entry could not be written")
    assert _stored(platform, deck.id) == set()
    with platform.store.transaction() as tx:
        stored = tx.get_rate_deck(deck.id)
    assert stored is not None and stored.rate_count == 0


def test_effective_dates_are_listed_up_to_a_thousand_and_all_counted(
    platform: Platform,
) -> None:
    deck = _deck(platform)
    rates = [_rate("44", "0.01", JAN_2024 + day * 86_400) for day in range(1001)]
    progress: list[int] = []
    with platform.store.transaction() as tx:
        after = tx.write_rates(deck.id, rates, replace=False, at=AT, progress=progress.append)
    assert after.effective_date_count == 1001 and len(after.effective_dates) == 1000
    assert after.effective_dates[0] == JAN_2024 and progress[-1] == 1001


def test_a_second_deck_with_a_taken_name_is_a_conflict(platform: Platform) -> None:
    _deck(platform, "Carrier A")
    with pytest.raises(Conflict):
        _deck(platform, "Carrier A")
    with platform.store.transaction() as tx:
        taken = tx.get_rate_deck_by_name("Carrier A")
        page = tx.list_rate_decks(PageRequest())
    assert taken is not None and page.total == 1


def test_assignments_are_set_replaced_and_deleted(platform: Platform) -> None:
    a, b = _deck(platform, "A"), _deck(platform, "B")
    with platform.store.transaction() as tx:
        tx.set_rate_deck_assignment(RateDeckAssignment("plan", "pl_1", a.id, AT))
        tx.set_rate_deck_assignment(RateDeckAssignment("tenant", "tn_1", a.id, AT))
        tx.set_rate_deck_assignment(RateDeckAssignment("plan", "pl_1", b.id, AT))
    with platform.store.transaction() as tx:
        held = {(x.scope, x.scope_id): x.deck_id for x in tx.rate_deck_assignments()}
        assert held == {("plan", "pl_1"): b.id, ("tenant", "tn_1"): a.id}
        assert tx.delete_rate_deck_assignment("plan", "pl_1")
        assert not tx.delete_rate_deck_assignment("plan", "pl_1")


def test_the_change_feed_tells_rate_deck_entries_from_others(platform: Platform) -> None:
    with platform.store.transaction() as tx:
        start = tx.audit_head()[0]
        tx.append_audit(AuditFact("us_x", "tenant.updated", "tenant", "tn_1", "tn_1"), AT)
    with platform.store.transaction() as tx:
        head, changed = tx.rate_deck_changed_since(start)
        assert (head, changed) == (start + 1, False)
        tx.append_audit(AuditFact("us_x", "rate_deck.imported", "rate_deck", "rd_1", None), AT)
    with platform.store.transaction() as tx:
        assert tx.rate_deck_changed_since(start) == (start + 2, True)
        assert tx.rate_deck_changed_since(start + 2) == (start + 2, False)


def test_rates_are_stored_in_the_cores_integer_units(platform: Platform) -> None:
    deck = _deck(platform)
    with platform.store.transaction() as tx:
        tx.write_rates(deck.id, [_rate("44", "0.0123")], replace=False, at=AT)
    with platform.store.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT rate_per_minute_nano, connection_fee_nano, initial_s, subsequent_s "
                "FROM rate_deck_rates"
            )
        ).one()
    assert tuple(row) == (12_300_000, 10_000_000, 30, 6)
