"""The rating service: imports that refuse or skip, merge or replace; assignments where the
tenant's deck wins; lookups cached and dropped when a deck changes, here or in another process;
and every change audited, by operators only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callwarden.core.errors import Forbidden, InvalidInput, NotFound
from callwarden.core.model import Billing, Channel, PlanLimits, Principal, UserRole
from callwarden.core.ratedeck import BadRowsError, RateDeckError
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import AuditQuery, PageRequest
from callwarden.services.rating import ImportProgress
from callwarden.settings import Settings

HEADER = "prefix,description,rate,connection fee,increments,effective date,currency\n"
JAN_2024, JAN_2025 = 1_704_067_200, 1_735_689_600
MID_2024, MID_2025 = JAN_2024 + 180 * 86_400, JAN_2025 + 180 * 86_400


def _csv(*rows: str) -> list[str]:
    return [HEADER, *(row + "\n" for row in rows)]


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    """A platform on SQLite (the store tests cover PostgreSQL)."""
    built = Platform.build(Settings(database_url=f"sqlite:///{tmp_path / 'rating.db'}"))
    try:
        yield built
    finally:
        built.close()


def _plan(platform: Platform, currency: str = "USD", name: str = "Standard") -> str:
    plan = platform.governance.create_plan(
        SYSTEM,
        name=name,
        billing=Billing.METERED,
        channels=[Channel.VOICE],
        currency=currency,
        limits=PlanLimits(),
    )
    return plan.id


def _tenant(platform: Platform, plan_id: str) -> str:
    tenant = platform.governance.create_tenant(
        SYSTEM, name="Acme", country="GB", timezone="Europe/London", plan_id=plan_id
    )
    return tenant.id


def _deck(platform: Platform, name: str = "Carrier A", *rows: str) -> str:
    deck = platform.rating.create_deck(SYSTEM, name=name, currency="USD")
    if rows:
        platform.rating.import_rates(SYSTEM, deck.id, _csv(*rows))
    return deck.id


def test_a_refused_import_stores_nothing_and_names_every_bad_line(platform: Platform) -> None:
    deck_id = _deck(platform)
    lines = _csv(
        "44,UK,0.01,0,60/60,2024-01-01,USD",
        "0044,UK,0.01,0,60/60,2024-01-01,USD",
        "33,France,0,01,0,60/60,2024-01-01,USD",
        "49,Germany,0.02,0,60/60,2024-01-01,EUR",
        "# a comment line is not a row",
        "1,USA,0.005,0,6/0,2024-01-01,USD",
    )
    with pytest.raises(BadRowsError) as refused:
        platform.rating.import_rates(SYSTEM, deck_id, lines, on_error="refuse")
    assert [b.line for b in refused.value.bad_rows] == [3, 4, 5, 7]
    assert "decimal comma" in refused.value.bad_rows[1].reason
    assert "EUR" in refused.value.bad_rows[2].reason
    assert platform.rating.get_deck(SYSTEM, deck_id).rate_count == 0


def test_a_skipping_import_stores_the_good_rows_and_returns_the_bad(platform: Platform) -> None:
    deck_id = _deck(platform)
    lines = _csv("44,UK,0.01,0,60/60,2024-01-01,USD", "4x,Bad,0.01,0,60/60,2024-01-01,USD")
    result = platform.rating.import_rates(SYSTEM, deck_id, lines, on_error="skip")
    assert (result.rows_read, result.rates_imported) == (2, 1)
    assert [b.line for b in result.bad_rows] == [3]
    assert result.deck.rate_count == 1


def test_a_merge_adds_versions_and_replaces_the_same_prefix_and_date(
    platform: Platform,
) -> None:
    deck_id = _deck(platform, "Carrier A", "44,UK,0.01,0,60/60,2024-01-01,USD")
    platform.rating.import_rates(
        SYSTEM,
        deck_id,
        _csv("44,UK,0.02,0,60/60,2025-01-01,USD", "33,France,0.03,0,1/1,2024-01-01,USD"),
    )
    assert platform.rating.lookup(SYSTEM, deck_id, "+4420", MID_2024).rate_per_minute_nano == (
        10_000_000
    )
    assert platform.rating.lookup(SYSTEM, deck_id, "+4420", MID_2025).rate_per_minute_nano == (
        20_000_000
    )
    platform.rating.import_rates(SYSTEM, deck_id, _csv("44,UK,0.05,0,60/60,2024-01-01,USD"))
    deck = platform.rating.get_deck(SYSTEM, deck_id)
    assert deck.rate_count == 3 and deck.effective_dates == (JAN_2024, JAN_2025)
    assert platform.rating.lookup(SYSTEM, deck_id, "4420", MID_2024).rate_per_minute_nano == (
        50_000_000
    )


def test_replace_keeps_only_the_rates_of_the_new_file(platform: Platform) -> None:
    deck_id = _deck(platform, "Carrier A", "44,UK,0.01,0,60/60,2024-01-01,USD")
    result = platform.rating.import_rates(
        SYSTEM, deck_id, _csv("33,France,0.03,0,1/1,2024-01-01,USD"), mode="replace"
    )
    assert result.deck.rate_count == 1
    with pytest.raises(NotFound):
        platform.rating.lookup(SYSTEM, deck_id, "+4420", MID_2024)


def test_an_import_that_accepts_no_rate_is_refused_even_when_skipping(
    platform: Platform,
) -> None:
    deck_id = _deck(platform, "Carrier A", "44,UK,0.01,0,60/60,2024-01-01,USD")
    with pytest.raises(BadRowsError, match="no row was accepted"):
        platform.rating.import_rates(
            SYSTEM,
            deck_id,
            _csv("4x,Bad,0.01,0,60/60,2024-01-01,USD"),
            on_error="skip",
            mode="replace",
        )
    with pytest.raises(RateDeckError, match="no rates"):
        platform.rating.import_rates(SYSTEM, deck_id, [HEADER], mode="replace")
    assert platform.rating.get_deck(SYSTEM, deck_id).rate_count == 1


def test_a_file_with_a_nul_character_is_refused_naming_its_line(platform: Platform) -> None:
    deck_id = _deck(platform)
    lines = _csv("44,UK,0.01,0,60/60,2024-01-01,USD", "33,Fr\x00nce,0.01,0,60/60,2024-01-01,USD")
    with pytest.raises(RateDeckError, match="line 3: has a NUL"):
        platform.rating.import_rates(SYSTEM, deck_id, lines, on_error="skip")


def test_a_file_said_to_be_in_another_currency_is_refused(platform: Platform) -> None:
    deck_id = _deck(platform)
    with pytest.raises(InvalidInput, match="is in USD, not EUR") as refused:
        platform.rating.import_rates(
            SYSTEM, deck_id, _csv("44,UK,0.01,0,60/60,2024-01-01,EUR"), currency="eur"
        )
    assert refused.value.field == "currency"


def test_the_import_reports_rows_read_then_rates_stored(platform: Platform) -> None:
    deck_id = _deck(platform)
    steps: list[ImportProgress] = []
    rows = [f"{100 + i},Somewhere,0.01,0,60/60,2024-01-01,USD" for i in range(25_000)]
    platform.rating.import_rates(SYSTEM, deck_id, _csv(*rows), progress=steps.append)
    reads = [s.done for s in steps if s.stage == "read"]
    stores = [(s.done, s.total) for s in steps if s.stage == "store"]
    assert reads == sorted(reads) and reads[-1] == 25_000
    assert stores[-1] == (25_000, 25_000)
    assert steps.index(next(s for s in steps if s.stage == "store")) > len(reads) - 1


def test_a_tenants_own_deck_wins_over_its_plans(platform: Platform) -> None:
    plan_id = _plan(platform)
    tenant_id, other_id = _tenant(platform, plan_id), _tenant(platform, plan_id)
    plan_deck = _deck(platform, "Plan deck", "44,UK,0.01,0,60/60,2024-01-01,USD")
    own_deck = _deck(platform, "Own deck", "44,UK,0.02,0,60/60,2024-01-01,USD")
    platform.rating.assign(SYSTEM, "plan", plan_id, plan_deck)
    platform.rating.assign(SYSTEM, "tenant", tenant_id, own_deck)
    own = platform.rating.rate_for(tenant_id, plan_id, "+442079460000", MID_2024)
    other = platform.rating.rate_for(other_id, plan_id, "+442079460000", MID_2024)
    assert own is not None and own.rate_per_minute_nano == 20_000_000
    assert other is not None and other.rate_per_minute_nano == 10_000_000
    platform.rating.unassign(SYSTEM, "tenant", tenant_id)
    back = platform.rating.rate_for(tenant_id, plan_id, "+442079460000", MID_2024)
    assert back is not None and back.rate_per_minute_nano == 10_000_000


def test_a_tenant_without_a_deck_has_no_rate(platform: Platform) -> None:
    plan_id = _plan(platform)
    tenant_id = _tenant(platform, plan_id)
    assert platform.rating.deck_for(tenant_id, plan_id) is None
    assert platform.rating.rate_for(tenant_id, plan_id, "+442079460000", MID_2024) is None


def test_rate_for_follows_the_effective_date_of_each_version(platform: Platform) -> None:
    plan_id = _plan(platform)
    tenant_id = _tenant(platform, plan_id)
    deck_id = _deck(
        platform,
        "Carrier A",
        "44,UK,0.01,0,60/60,2024-01-01,USD",
        "447,UK Mobile,0.08,0,30/6,2025-01-01,USD",
    )
    platform.rating.assign(SYSTEM, "plan", plan_id, deck_id)
    before = platform.rating.rate_for(tenant_id, plan_id, "+447700900000", MID_2024)
    after = platform.rating.rate_for(tenant_id, plan_id, "+447700900000", MID_2025)
    assert before is not None and before.prefix == "44"
    assert after is not None and after.prefix == "447"
    assert platform.rating.rate_for(tenant_id, plan_id, "+447700900000", JAN_2024 - 1) is None


def test_a_deck_in_another_currency_than_the_plan_is_not_assigned(platform: Platform) -> None:
    plan_id = _plan(platform, currency="EUR")
    deck_id = _deck(platform)
    with pytest.raises(InvalidInput, match="EUR") as refused:
        platform.rating.assign(SYSTEM, "plan", plan_id, deck_id)
    assert refused.value.field == "deck_id"


def test_assigning_to_an_unknown_plan_tenant_or_deck_names_it(platform: Platform) -> None:
    plan_id = _plan(platform)
    deck_id = _deck(platform)
    with pytest.raises(NotFound, match="plan pl_0000000000000000"):
        platform.rating.assign(SYSTEM, "plan", "pl_0000000000000000", deck_id)
    with pytest.raises(NotFound, match="tenant"):
        platform.rating.assign(SYSTEM, "tenant", "tn_0000000000000000", deck_id)
    with pytest.raises(InvalidInput, match="names no rate deck"):
        platform.rating.assign(SYSTEM, "plan", plan_id, "rd_0000000000000000")
    with pytest.raises(InvalidInput, match="scope"):
        platform.rating.assign(SYSTEM, "trunk", plan_id, deck_id)


def test_every_change_is_audited_with_lim_1(platform: Platform) -> None:
    plan_id = _plan(platform)
    tenant_id = _tenant(platform, plan_id)
    deck_id = _deck(platform, "Carrier A", "44,UK,0.01,0,60/60,2024-01-01,USD")
    platform.rating.assign(SYSTEM, "tenant", tenant_id, deck_id)
    platform.rating.unassign(SYSTEM, "tenant", tenant_id)
    entries = platform.audit.list(SYSTEM, AuditQuery(), PageRequest(limit=100)).items
    ours = [e for e in reversed(entries) if e.action.startswith("rate_deck.")]
    assert [e.action for e in ours] == [
        "rate_deck.created",
        "rate_deck.imported",
        "rate_deck.assigned",
        "rate_deck.unassigned",
    ]
    assert all(e.clause_ids == ("LIM-1",) and e.actor == SYSTEM.user_id for e in ours)
    assert ours[1].details["rates_imported"] == 1 and ours[1].details["mode"] == "merge"
    assert ours[2].tenant_id == tenant_id and ours[2].details["deck_id"] == deck_id
    assert platform.audit.verify()[1] is None


def test_only_operators_read_or_change_decks(platform: Platform) -> None:
    plan_id = _plan(platform)
    tenant_id = _tenant(platform, plan_id)
    deck_id = _deck(platform)
    admin = Principal(
        user_id="us_0000000000000001", tenant_id=tenant_id, role=UserRole.TENANT_ADMIN
    )
    with pytest.raises(Forbidden):
        platform.rating.create_deck(admin, name="Mine", currency="USD")
    with pytest.raises(Forbidden):
        platform.rating.import_rates(admin, deck_id, _csv("44,UK,0.01,0,60/60,2024-01-01,USD"))
    with pytest.raises(Forbidden):
        platform.rating.assign(admin, "tenant", tenant_id, deck_id)
    with pytest.raises(Forbidden):
        platform.rating.list_decks(admin, PageRequest())


def test_an_import_reaches_cached_lookups_at_once(platform: Platform) -> None:
    plan_id = _plan(platform)
    tenant_id = _tenant(platform, plan_id)
    deck_id = _deck(platform, "Carrier A", "44,UK,0.01,0,60/60,2024-01-01,USD")
    platform.rating.assign(SYSTEM, "plan", plan_id, deck_id)
    assert not platform.rating.is_cached(tenant_id, plan_id)
    first = platform.rating.deck_for(tenant_id, plan_id)
    assert platform.rating.is_cached(tenant_id, plan_id)
    assert first is platform.rating.deck_for(tenant_id, plan_id)
    platform.rating.import_rates(SYSTEM, deck_id, _csv("44,UK,0.03,0,60/60,2024-01-01,USD"))
    assert not platform.rating.is_cached(tenant_id, plan_id)
    rate = platform.rating.rate_for(tenant_id, plan_id, "+4420", MID_2024)
    assert rate is not None and rate.rate_per_minute_nano == 30_000_000


def test_another_process_changes_reach_the_cache_through_the_change_feed(
    platform: Platform,
) -> None:
    plan_id = _plan(platform)
    tenant_id = _tenant(platform, plan_id)
    deck_id = _deck(platform, "Carrier A", "44,UK,0.01,0,60/60,2024-01-01,USD")
    platform.rating.assign(SYSTEM, "plan", plan_id, deck_id)
    other = Platform.build(platform.settings)
    try:
        assert platform.rating.poll_changes() is False
        assert platform.rating.deck_for(tenant_id, plan_id) is not None
        other.rating.import_rates(SYSTEM, deck_id, _csv("44,UK,0.04,0,60/60,2024-01-01,USD"))
        other.rating.unassign(SYSTEM, "plan", plan_id)
        stale = platform.rating.rate_for(tenant_id, plan_id, "+4420", MID_2024)
        assert stale is not None and stale.rate_per_minute_nano == 10_000_000
        assert platform.rating.poll_changes() is True
        assert platform.rating.deck_for(tenant_id, plan_id) is None
        assert platform.rating.lookup(SYSTEM, deck_id, "+4420", MID_2024).rate_per_minute_nano == (
            40_000_000
        )
    finally:
        other.close()


def test_a_deck_is_found_by_its_name_or_its_id(platform: Platform) -> None:
    deck_id = _deck(platform, "Carrier A")
    assert platform.rating.find_deck(SYSTEM, "Carrier A").id == deck_id
    assert platform.rating.find_deck(SYSTEM, deck_id).name == "Carrier A"
    with pytest.raises(NotFound, match="Carrier B"):
        platform.rating.find_deck(SYSTEM, "Carrier B")


_PREFIXES = st.text(alphabet="123", min_size=1, max_size=4)
_RATES = st.dictionaries(
    st.tuples(_PREFIXES, st.sampled_from(["2024-01-01", "2025-01-01"])),
    st.integers(min_value=0, max_value=10**6),
    max_size=12,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    first=_RATES, second=_RATES, numbers=st.lists(_PREFIXES.map(lambda p: p + "555"), max_size=8)
)
def test_merged_imports_rate_like_the_longest_prefix_in_force(
    platform: Platform,
    first: dict[tuple[str, str], int],
    second: dict[tuple[str, str], int],
    numbers: list[str],
) -> None:
    deck_id = platform.rating.create_deck(
        SYSTEM,
        name=f"deck {len(platform.rating.list_decks(SYSTEM, PageRequest()).items)}",
        currency="USD",
    ).id
    for rates in (first, second):
        rows = [f"{p},x,0.{n:09d},0,1/1,{d},USD" for (p, d), n in rates.items()]
        if rows:
            platform.rating.import_rates(SYSTEM, deck_id, _csv(*rows))
    merged = {**first, **second}
    starts = {"2024-01-01": JAN_2024, "2025-01-01": JAN_2025}
    for at in (MID_2024, MID_2025):
        for number in numbers:
            in_force = [
                (len(p), starts[d], n)
                for (p, d), n in merged.items()
                if number.startswith(p) and starts[d] <= at
            ]
            expected = max(in_force)[2] if in_force else None
            try:
                found: int | None = platform.rating.lookup(
                    SYSTEM, deck_id, number, at
                ).rate_per_minute_nano
            except NotFound:
                found = None
            assert found == expected
