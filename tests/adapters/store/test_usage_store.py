"""Usage storage on SQLite and on the real PostgreSQL server: keys, bulk paths, dead letters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.usage_world import T0, call, login, message, seed_tenants

from callwarden.adapters.store.tables import Base
from callwarden.adapters.store.usage import COLUMNS, SqlUsageStore, record_row
from callwarden.core.usage.record import CallRecord, UsageFormat, UsageKind, UsageRecord
from callwarden.platform import Platform
from callwarden.services.ports import PageRequest
from callwarden.services.usage import DeadLetter, DeadLetterQuery, DeadLetterStatus, UsageQuery

USAGE_TABLES = {"usage_records", "usage_dead_letters", "usage_outbox"}


def _store(platform: Platform) -> SqlUsageStore:
    return SqlUsageStore(platform.store.engine)


def _letter(letter_id: str, raw: str, **kw: object) -> DeadLetter:
    values: dict[str, object] = {
        "id": letter_id,
        "received_at": T0,
        "format": UsageFormat.CALLWARDEN_CSV,
        "position": "line 2",
        "reason": "callee is missing",
        "raw_text": raw,
    }
    values.update(kw)
    return DeadLetter(**values)  # type: ignore[arg-type]


def test_the_migration_creates_exactly_the_usage_tables_of_the_model(platform: Platform) -> None:
    with platform.store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diff if any(t in repr(d) for t in USAGE_TABLES)]
    assert ours == []


def test_every_kind_of_record_fills_every_column() -> None:
    for record in (call("c"), message("m"), login("l")):
        assert len(record_row(record)) == len(COLUMNS)


def test_records_of_every_kind_come_back_as_they_went_in(platform: Platform) -> None:
    seed_tenants(platform)
    store = _store(platform)
    records: list[UsageRecord] = [
        call("c1", cost_minor=37),
        call("c2", answered_s=None),
        message("m1"),
        login("l1"),
    ]
    with store.transaction() as tx:
        assert tx.insert_records(records) == {r.key for r in records}
    with store.transaction() as tx:
        back = tx.get_records([r.key for r in records])
    assert sorted(back, key=lambda r: r.key) == sorted(records, key=lambda r: r.key)


def test_a_key_already_stored_is_not_inserted_again(platform: Platform) -> None:
    store = _store(platform)
    with store.transaction() as tx:
        assert tx.insert_records([call("c1"), call("c1", leg="b")]) == {("c1", "a"), ("c1", "b")}
    with store.transaction() as tx:
        inserted = tx.insert_records([call("c1", talk_s=999), call("c2"), call("c2")])
    assert inserted == {("c2", "a")}
    with store.transaction() as tx:
        (kept,) = tx.get_records([("c1", "a")])
    assert isinstance(kept, CallRecord) and kept.duration_s == 60  # the first version stays


def test_a_batch_larger_than_one_statement_is_stored_whole(platform: Platform) -> None:
    store = _store(platform)
    batch = [call(f"bulk-{i}", at=T0 + timedelta(seconds=i)) for i in range(12_345)]
    with store.transaction() as tx:
        assert len(tx.insert_records(batch)) == len(batch)
    with store.transaction() as tx:
        again = tx.insert_records([*batch[::2], call("bulk-new")])
        page = tx.list_records(
            UsageQuery("tenant-a", T0, T0 + timedelta(days=1)), PageRequest(limit=1)
        )
    assert again == {("bulk-new", "a")}
    assert page.total == len(batch) + 1


def test_a_rolled_back_batch_leaves_nothing_behind(platform: Platform) -> None:
    store = _store(platform)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.insert_records([call("gone")])
        raise RuntimeError("crash before commit")
    with store.transaction() as tx:
        assert tx.get_records([("gone", "a")]) == []
        assert tx.insert_records([call("gone")]) == {("gone", "a")}


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(keys=st.lists(st.sampled_from([f"k{i}" for i in range(12)]), max_size=30))
def test_inserted_keys_are_exactly_the_distinct_keys_not_stored_before(
    platform: Platform, keys: list[str]
) -> None:
    store = _store(platform)
    with store.transaction() as tx:
        before = {r.key for r in tx.get_records([(k, "a") for k in keys])}
        inserted = tx.insert_records([call(k) for k in keys])
    assert inserted == {(k, "a") for k in keys} - before


def test_a_tenant_period_includes_its_start_and_excludes_its_end(platform: Platform) -> None:
    store = _store(platform)
    march, april = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    with store.transaction() as tx:
        tx.insert_records(
            [
                call("first", at=march),
                call("last", at=april - timedelta(microseconds=1)),
                call("april", at=april),
                call("before", at=march - timedelta(seconds=1)),
                call("other-tenant", tenant_id="tenant-b", at=march),
                message("msg", at=march + timedelta(days=3)),
            ]
        )
    with store.transaction() as tx:
        page = tx.list_records(UsageQuery("tenant-a", march, april), PageRequest(limit=10))
        calls = tx.list_records(UsageQuery("tenant-a", march, april, UsageKind.CALL), PageRequest())
    assert [r.key[0] for r in page.items] == ["first", "msg", "last"]
    assert page.total == 3 and calls.total == 2


def test_a_summary_counts_each_kind_and_sums_cost_per_currency(platform: Platform) -> None:
    store = _store(platform)
    with store.transaction() as tx:
        tx.insert_records(
            [
                call("a1", cost_minor=30, talk_s=60),
                call("a2", cost_minor=12, talk_s=30),
                call("u1", answered_s=None),
                message("m1"),
                login("l1"),
            ]
        )
    with store.transaction() as tx:
        summary = tx.summarise(UsageQuery("tenant-a", T0, T0 + timedelta(hours=1)))
    assert (summary.calls, summary.answered_calls, summary.billable_seconds) == (3, 2, 90)
    assert (summary.messages, summary.logins) == (1, 1)
    assert summary.cost_minor == {"EUR": 50}


def test_records_older_than_the_cutoff_are_deleted(platform: Platform) -> None:
    store = _store(platform)
    with store.transaction() as tx:
        tx.insert_records([call("old", at=T0 - timedelta(days=40)), call("new", at=T0)])
    with store.transaction() as tx:
        assert tx.delete_records_before(T0 - timedelta(days=30)) == 1
    with store.transaction() as tx:
        assert [r.key[0] for r in tx.get_records([("old", "a"), ("new", "a")])] == ["new"]


def test_a_dead_letter_keeps_its_raw_text_exactly_even_with_nul(platform: Platform) -> None:
    store = _store(platform)
    raw = 'header\n"a\x00b",\u00e9\r\n'
    with store.transaction() as tx:
        assert tx.add_dead_letters([_letter("dl_0000000000000001", raw, reason="bad \x00")]) == [
            "dl_0000000000000001"
        ]
    with store.transaction() as tx:
        letter = tx.get_dead_letter("dl_0000000000000001")
    assert letter is not None and letter.raw_text == raw
    assert letter.reason == "bad \\x00"


def test_an_identical_open_dead_letter_is_not_stored_twice(platform: Platform) -> None:
    store = _store(platform)
    with store.transaction() as tx:
        first = tx.add_dead_letters([_letter("dl_0000000000000001", "x")])
    with store.transaction() as tx:
        again = tx.add_dead_letters(
            [
                _letter("dl_0000000000000002", "x", position="line 9"),
                _letter("dl_0000000000000003", "x", tenant_id="tenant-b"),
                _letter("dl_0000000000000004", "y"),
                _letter("dl_0000000000000005", "y"),
            ]
        )
    assert first == ["dl_0000000000000001"]
    assert again == [
        "dl_0000000000000001",
        "dl_0000000000000003",
        "dl_0000000000000004",
        "dl_0000000000000004",
    ]


def test_a_replayed_dead_letter_does_not_absorb_a_new_identical_one(platform: Platform) -> None:
    store = _store(platform)
    with store.transaction() as tx:
        tx.add_dead_letters([_letter("dl_0000000000000001", "x")])
        tx.save_dead_letter(
            _letter("dl_0000000000000001", "x", status=DeadLetterStatus.REPLAYED, replayed_at=T0)
        )
    with store.transaction() as tx:
        assert tx.add_dead_letters([_letter("dl_0000000000000002", "x")]) == ["dl_0000000000000002"]


def test_dead_letters_are_listed_newest_first_and_filtered(platform: Platform) -> None:
    store = _store(platform)
    letters = [
        _letter(f"dl_000000000000000{i}", f"raw {i}", received_at=T0 + timedelta(minutes=i))
        for i in range(1, 6)
    ]
    letters[1] = _letter(
        "dl_0000000000000002",
        "raw 2",
        received_at=T0 + timedelta(minutes=2),
        format=UsageFormat.ASTERISK_CSV,
        tenant_id="tenant-b",
    )
    with store.transaction() as tx:
        tx.add_dead_letters(letters)
        tx.save_dead_letter(
            _letter(
                "dl_0000000000000005",
                "raw 5",
                received_at=T0 + timedelta(minutes=5),
                status=DeadLetterStatus.DISCARDED,
            )
        )
    with store.transaction() as tx:
        page = tx.list_dead_letters(DeadLetterQuery(), PageRequest(limit=2))
        open_csv = tx.list_dead_letters(
            DeadLetterQuery(status=DeadLetterStatus.OPEN, format=UsageFormat.CALLWARDEN_CSV),
            PageRequest(),
        )
        tenant_b = tx.list_dead_letters(DeadLetterQuery(tenant_id="tenant-b"), PageRequest())
        oldest_open = tx.open_dead_letter_ids(DeadLetterQuery(), limit=2)
    assert [d.id[-1] for d in page.items] == ["5", "4"] and page.total == 5
    assert [d.id[-1] for d in open_csv.items] == ["4", "3", "1"]
    assert [d.id[-1] for d in tenant_b.items] == ["2"]
    assert [i[-1] for i in oldest_open] == ["1", "2"]


def test_the_outbox_hands_out_only_entries_older_than_asked(platform: Platform) -> None:
    store = _store(platform)
    with store.transaction() as tx:
        tx.add_outbox("ob_1", [("c1", "a"), ("m1", "msg")], T0)
        tx.add_outbox("ob_2", [("c2", "a")], T0 + timedelta(minutes=5))
    with store.transaction() as tx:
        assert tx.pending_outbox(T0 + timedelta(minutes=1), 10) == [
            ("ob_1", [("c1", "a"), ("m1", "msg")])
        ]
        tx.remove_outbox("ob_1")
    with store.transaction() as tx:
        assert [i for i, _ in tx.pending_outbox(T0 + timedelta(hours=1), 10)] == ["ob_2"]


def test_known_tenants_are_told_apart_from_unknown_ones(platform: Platform) -> None:
    seed_tenants(platform)
    with _store(platform).transaction() as tx:
        assert tx.known_tenants(["tenant-a", "tenant-x", "tenant-c"]) == {"tenant-a", "tenant-c"}


def test_a_batch_meeting_stored_keys_keeps_the_new_ones_and_its_transaction_goes_on(
    platform: Platform,
) -> None:
    store = _store(platform)
    with store.transaction() as tx:
        assert tx.insert_records([call("m1")]) == {("m1", "a")}
    with store.transaction() as tx:
        inserted = tx.insert_records([call("m0"), call("m1", talk_s=5), call("m2")])
        kept = tx.add_dead_letters([_letter("dl_after_conflict", "m9,bad")])
    assert inserted == {("m0", "a"), ("m2", "a")}
    assert kept == ["dl_after_conflict"]
    with store.transaction() as tx:  # all new again after a batch that met stored keys
        assert tx.insert_records([call("m3"), call("m4")]) == {("m3", "a"), ("m4", "a")}
    with store.transaction() as tx:
        stored = tx.get_records([(f"m{i}", "a") for i in range(5)])
        letter = tx.get_dead_letter("dl_after_conflict")
    assert sorted(r.key[0] for r in stored) == ["m0", "m1", "m2", "m3", "m4"]
    first = next(r for r in stored if r.key[0] == "m1")
    assert isinstance(first, CallRecord) and first.duration_s == 60
    assert letter is not None and letter.raw_text == "m9,bad"
