"""Usage ingestion: every unit stored once or dead-lettered, published after commit, replayable."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.usage_world import SAMPLES, T0, call, login, message, seed_tenants

from callwarden.adapters.store.usage import SqlUsageStore
from callwarden.adapters.stream.memory import InProcessStream
from callwarden.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from callwarden.core.model import Principal, UserRole
from callwarden.core.usage.normalise import split
from callwarden.core.usage.record import RawItem, UsageFormat, UsageRecord
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import AuditQuery, PageRequest
from callwarden.services.usage import (
    DeadLetterQuery,
    DeadLetterStatus,
    IngestResult,
    UnreadableUsage,
    UsageIngestion,
    UsageQuery,
)

pytestmark = pytest.mark.anyio

JSON = UsageFormat.CALLWARDEN_JSON
ADMIN_A = Principal(user_id="us_admin_a", tenant_id="tenant-a", role=UserRole.TENANT_ADMIN)
ADMIN_B = Principal(user_id="us_admin_b", tenant_id="tenant-b", role=UserRole.TENANT_ADMIN)
AGENT_A = Principal(user_id="us_agent_a", tenant_id="tenant-a", role=UserRole.AGENT)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def seeded(platform: Platform) -> Platform:
    """A platform (SQLite and PostgreSQL) with the sample tenants."""
    seed_tenants(platform)
    return platform


def _ingestion(platform: Platform, **kw: object) -> UsageIngestion:
    return UsageIngestion(SqlUsageStore(platform.store.engine), **kw)  # type: ignore[arg-type]


def _json(**fields: object) -> str:
    record: dict[str, object] = {
        "kind": "call",
        "call_id": "cw-1",
        "tenant_id": "tenant-a",
        "direction": "outbound",
        "callee": "+442079460123",
        "started_at": "2026-03-12T09:15:00Z",
        "disposition": "no_answer",
    }
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not None})


def _item(text: str, n: int = 1) -> RawItem:
    return RawItem(text, f"line {n}")


def _sample_files() -> Iterator[tuple[Path, UsageFormat]]:
    formats = {
        "asterisk": UsageFormat.ASTERISK_CSV,
        "freeswitch": UsageFormat.FREESWITCH_JSON,
    }
    for path in sorted(SAMPLES.glob("*/*")):
        if path.parent.name in formats:
            yield path, formats[path.parent.name]
        elif path.parent.name == "kamailio":
            syslog = path.suffix == ".log"
            yield path, (UsageFormat.KAMAILIO_ACC_SYSLOG if syslog else UsageFormat.KAMAILIO_ACC_DB)
        elif path.parent.name == "callwarden":
            csv = path.suffix == ".csv"
            yield path, UsageFormat.CALLWARDEN_CSV if csv else UsageFormat.CALLWARDEN_JSON


SAMPLE_FILES = list(_sample_files())


class Collector:
    """A stream consumer that keeps what it is handed."""

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    async def __call__(self, records: Sequence[UsageRecord]) -> None:
        self.records.extend(records)

    async def wait_for(self, count: int) -> None:
        with anyio.fail_after(10):
            while len(self.records) < count:
                await anyio.sleep(0.01)


class FlakyStream(InProcessStream):
    """The in-process stream, with an outage that can be switched on."""

    down = False

    async def publish(self, records: Sequence[UsageRecord]) -> None:
        if self.down:
            raise ConnectionError("stream unreachable")
        await super().publish(records)


# -- every unit is accounted for ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "fmt"), SAMPLE_FILES, ids=[f"{p.parent.name}/{p.name}" for p, _ in SAMPLE_FILES]
)
async def test_every_unit_of_a_sample_file_is_stored_or_dead_lettered_once(
    seeded: Platform, path: Path, fmt: UsageFormat
) -> None:
    text = path.read_text("utf-8")
    units = list(split(fmt, text))
    first = await seeded.usage.ingest(fmt, units)
    assert first.dead_lettered <= len(units)
    assert first.stored + first.duplicates >= len(units) - first.dead_lettered
    with seeded.usage.store.transaction() as tx:
        open_letters = tx.list_dead_letters(DeadLetterQuery(), PageRequest(limit=500))
    assert {d.id for d in open_letters.items} == set(first.dead_letter_ids)
    assert all(d.reason and d.raw_text for d in open_letters.items)
    again = await seeded.usage.ingest(fmt, split(fmt, text))
    assert again.stored == 0
    assert again.duplicates == first.stored + first.duplicates
    assert again.dead_letter_ids == first.dead_letter_ids


async def test_the_garbage_sample_becomes_dead_letters_naming_each_fault(seeded: Platform) -> None:
    path = SAMPLES / "asterisk" / "garbage.csv"
    result = await seeded.usage.ingest(
        UsageFormat.ASTERISK_CSV, split(UsageFormat.ASTERISK_CSV, path.read_text("utf-8"))
    )
    assert result.dead_lettered >= 3
    letters = [seeded.usage.get_dead_letter(SYSTEM, i) for i in result.dead_letter_ids]
    assert all(letter.position.startswith("line") for letter in letters)
    assert len({letter.reason for letter in letters}) == len(letters)


async def test_a_record_key_seen_twice_in_one_batch_is_stored_once(platform: Platform) -> None:
    result = await platform.usage.ingest_records([call("c1", tenant_id=None)] * 3)
    assert (result.stored, result.duplicates, result.dead_lettered) == (1, 2, 0)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(st.integers(min_value=0, max_value=9), max_size=12), min_size=1, max_size=4
    ),
)
def test_stored_and_duplicates_add_up_to_every_record_over_any_batches(
    api_platform: Platform, batches: list[list[int]]
) -> None:
    platform = api_platform  # one store for every example; their keys differ
    run = next(_RUNS)  # keys of one example never meet another example's
    seen: set[int] = set()
    for batch in batches:
        records = [call(f"{run}-{n}", tenant_id=None) for n in batch]
        result = anyio.run(platform.usage.ingest_records, records)
        new = set(batch) - seen
        assert result.stored == len(new)
        assert result.stored + result.duplicates == len(batch)
        seen |= new


_RUNS = itertools.count()


# -- batches, progress and publishing -------------------------------------------------------------
async def test_large_input_is_committed_batch_by_batch_with_progress(platform: Platform) -> None:
    usage = _ingestion(platform, batch_size=3)
    heard: list[IngestResult] = []
    items = [_item(_json(call_id=f"b{i}", tenant_id=None), i) for i in range(10)]
    result = await usage.ingest(JSON, items, on_progress=heard.append)
    assert [r.stored for r in heard] == [3, 6, 9, 10]
    assert result.stored == 10


async def test_newly_stored_records_reach_a_subscriber_once(platform: Platform) -> None:
    stream = InProcessStream()
    collector = Collector()
    await stream.subscribe("surveillance", collector)
    usage = _ingestion(platform, publisher=stream)
    await usage.ingest_records([call("p1", tenant_id=None), call("p2", tenant_id=None)])
    await usage.ingest_records([call("p1", tenant_id=None), call("p3", tenant_id=None)])
    await collector.wait_for(3)
    await stream.close()
    assert sorted(r.key[0] for r in collector.records) == ["p1", "p2", "p3"]


async def test_records_stored_while_the_stream_is_down_are_published_later(
    platform: Platform,
) -> None:
    stream = FlakyStream()
    collector = Collector()
    await stream.subscribe("settlement", collector)
    clock = [T0]
    usage = _ingestion(platform, publisher=stream, clock=lambda: clock[0])
    stream.down = True
    result = await usage.ingest_records([call("late-1", tenant_id=None)])
    assert result.stored == 1  # stored is stored: the answer does not wait for the stream
    assert collector.records == []
    assert await usage.publish_pending() == 0  # too young: its own publish may be under way
    clock[0] = T0 + timedelta(minutes=5)
    assert await usage.publish_pending() == 0  # still down
    stream.down = False
    assert await usage.publish_pending() == 1
    await collector.wait_for(1)
    assert await usage.publish_pending() == 0
    await stream.close()
    assert [r.key for r in collector.records] == [("late-1", "a")]


async def test_a_stream_that_does_not_take_records_does_not_hold_up_the_answer(
    platform: Platform,
) -> None:
    stream = InProcessStream(max_pending=1)
    subscription = await stream.subscribe("stalled", Collector())
    await subscription.stop()  # its queue stays, full after one record: publishing waits
    usage = _ingestion(platform, publisher=stream, publish_timeout_s=0.2)
    result = await usage.ingest_records([call(f"stuck-{i}", tenant_id=None) for i in range(3)])
    assert result.stored == 3
    with usage.store.transaction() as tx:
        (entry,) = tx.pending_outbox(T0 + timedelta(days=3650), 10)
    assert sorted(entry[1]) == [(f"stuck-{i}", "a") for i in range(3)]


# -- tenants --------------------------------------------------------------------------------------
async def test_a_tenant_key_stores_its_own_usage_and_dead_letters_another_tenants(
    seeded: Platform,
) -> None:
    items = [
        _item(_json(call_id="own", tenant_id=None), 1),
        _item(_json(call_id="mine", tenant_id="tenant-a"), 2),
        _item(_json(call_id="theirs", tenant_id="tenant-b"), 3),
    ]
    result = await seeded.usage.ingest(JSON, items, by=ADMIN_A)
    assert (result.stored, result.dead_lettered) == (2, 1)
    letter = seeded.usage.get_dead_letter(ADMIN_A, result.dead_letter_ids[0])
    assert letter.tenant_id == "tenant-a" and "another tenant" in letter.reason
    month = UsageQuery("tenant-a", T0 - timedelta(days=1), T0 + timedelta(days=1))
    stored = seeded.usage.list_records(ADMIN_A, month, PageRequest()).items
    assert sorted(r.key[0] for r in stored) == ["mine", "own"]


async def test_a_role_without_usage_rights_may_not_ingest(seeded: Platform) -> None:
    with pytest.raises(Forbidden):
        await seeded.usage.ingest_records([call("x")], by=AGENT_A)


async def test_a_record_naming_an_unknown_tenant_is_dead_lettered(seeded: Platform) -> None:
    result = await seeded.usage.ingest(JSON, [_item(_json(tenant_id="tenant-zz"))])
    letter = seeded.usage.get_dead_letter(SYSTEM, result.dead_letter_ids[0])
    assert "not a known tenant" in letter.reason


async def test_a_record_without_a_tenant_is_attributed_by_its_trunk_address(
    platform: Platform,
) -> None:
    from tests.world import build_world

    world = build_world(platform)
    result = await platform.usage.ingest(
        JSON,
        [
            _item(_json(call_id="via-trunk", tenant_id=None, source_ip="192.0.2.2"), 1),
            _item(_json(call_id="stranger", tenant_id=None, source_ip="203.0.113.9"), 2),
        ],
    )
    assert result.stored == 2
    with platform.usage.store.transaction() as tx:
        via, stranger = sorted(
            tx.get_records([("via-trunk", "a"), ("stranger", "a")]), key=lambda r: r.key[0]
        )[::-1]
    assert via.tenant_id == world.tenants[1]
    assert stranger.tenant_id is None


async def test_a_unit_with_one_bad_record_is_dead_lettered_whole(seeded: Platform) -> None:
    unit = f"[{_json(call_id='good')}, {_json(call_id='bad', tenant_id='tenant-zz')}]"
    result = await seeded.usage.ingest(JSON, [_item(unit)])
    assert (result.stored, result.dead_lettered) == (0, 1)


@pytest.mark.parametrize(
    "fields",
    [
        {"callee": "+4420\u00007946"},
        {"call_id": "x" * 300},
        {"campaign": "c" * 256},
    ],
    ids=["nul", "long-call-id", "long-campaign"],
)
async def test_a_value_the_store_cannot_hold_is_dead_lettered(
    seeded: Platform, fields: dict[str, object]
) -> None:
    result = await seeded.usage.ingest(JSON, [_item(_json(**fields))])
    assert (result.stored, result.dead_lettered) == (0, 1)


# -- bodies ---------------------------------------------------------------------------------------
async def test_a_body_of_which_no_unit_can_be_read_is_kept_and_then_refused(
    seeded: Platform,
) -> None:
    with pytest.raises(UnreadableUsage) as refused:
        await seeded.usage.ingest_body(JSON, b'{"kind": "call"}\nnot json at all\n')
    assert refused.value.result.dead_lettered == 2
    assert [r.position for r in refused.value.refusals] == ["line 1", "line 2"]
    for refusal in refused.value.refusals:
        letter = seeded.usage.get_dead_letter(SYSTEM, refusal.dead_letter_id)
        assert letter.status is DeadLetterStatus.OPEN


async def test_a_body_that_is_not_utf8_is_kept_whole_and_refused(seeded: Platform) -> None:
    with pytest.raises(UnreadableUsage) as refused:
        await seeded.usage.ingest_body(JSON, b'{"call_id": "caf\xe9"}')
    (refusal,) = refused.value.refusals
    letter = seeded.usage.get_dead_letter(SYSTEM, refusal.dead_letter_id)
    assert letter.whole_body and "UTF-8" in letter.reason


async def test_an_empty_body_is_refused_without_a_dead_letter(seeded: Platform) -> None:
    with pytest.raises(InvalidInput):
        await seeded.usage.ingest_body(JSON, b" \n")
    page = seeded.usage.list_dead_letters(SYSTEM, DeadLetterQuery(), PageRequest())
    assert page.total == 0


# -- dead letters ---------------------------------------------------------------------------------
async def _one_letter(platform: Platform, text: str, by: Principal = SYSTEM) -> str:
    result = await platform.usage.ingest(JSON, [_item(text)], by=by)
    assert result.dead_lettered == 1
    return result.dead_letter_ids[0]


async def test_a_fixed_dead_letter_is_replayed_into_storage_and_audited(
    seeded: Platform,
) -> None:
    letter_id = await _one_letter(seeded, _json(call_id="fix-me", callee=None))
    seeded.usage.fix_dead_letter(SYSTEM, letter_id, _json(call_id="fix-me"))
    outcome = await seeded.usage.replay(SYSTEM, letter_id)
    assert outcome.dead_letter.status is DeadLetterStatus.REPLAYED
    assert outcome.dead_letter.replayed_at is not None
    assert outcome.result.stored == 1
    assert seeded.usage.get_dead_letter(SYSTEM, letter_id).status is DeadLetterStatus.REPLAYED
    actions = [
        e.action
        for e in seeded.audit.list(SYSTEM, AuditQuery(subject_id=letter_id), PageRequest()).items
    ]
    assert actions == ["dead_letter.replayed", "dead_letter.fixed"]


async def test_a_replay_that_still_fails_keeps_the_letter_open_with_the_new_reason(
    seeded: Platform,
) -> None:
    letter_id = await _one_letter(seeded, _json(callee=None))
    seeded.usage.fix_dead_letter(SYSTEM, letter_id, _json(tenant_id="tenant-zz"))
    outcome = await seeded.usage.replay(SYSTEM, letter_id)
    assert outcome.dead_letter.status is DeadLetterStatus.OPEN
    assert "not a known tenant" in outcome.dead_letter.reason
    assert seeded.usage.get_dead_letter(SYSTEM, letter_id).reason == outcome.dead_letter.reason


async def test_only_an_open_dead_letter_can_be_fixed_replayed_or_discarded(
    seeded: Platform,
) -> None:
    letter_id = await _one_letter(seeded, _json(callee=None))
    seeded.usage.discard_dead_letter(SYSTEM, letter_id, "test traffic")
    with pytest.raises(Conflict):
        await seeded.usage.replay(SYSTEM, letter_id)
    with pytest.raises(Conflict):
        seeded.usage.fix_dead_letter(SYSTEM, letter_id, _json())
    with pytest.raises(Conflict):
        seeded.usage.discard_dead_letter(SYSTEM, letter_id, "again")


async def test_replaying_all_takes_open_letters_only(seeded: Platform) -> None:
    discarded = await _one_letter(seeded, _json(call_id="d", callee=None))
    seeded.usage.discard_dead_letter(SYSTEM, discarded, "duplicate of a CDR resent later")
    fixable = await _one_letter(seeded, _json(call_id="f", callee=None))
    seeded.usage.fix_dead_letter(SYSTEM, fixable, _json(call_id="f"))
    hopeless = await _one_letter(seeded, "not json")
    outcomes = await seeded.usage.replay_open(SYSTEM)
    statuses = {o.dead_letter.id: o.dead_letter.status for o in outcomes}
    assert statuses == {fixable: DeadLetterStatus.REPLAYED, hopeless: DeadLetterStatus.OPEN}


async def test_a_whole_body_letter_is_cut_into_units_again_on_replay(seeded: Platform) -> None:
    with pytest.raises(UnreadableUsage) as refused:
        await seeded.usage.ingest_body(JSON, b'{"kind": "call", "call_id": "caf\xe9"}')
    letter_id = refused.value.refusals[0].dead_letter_id
    body = "\n".join([_json(call_id="w1"), _json(call_id="w2"), _json(call_id="w3", callee=None)])
    seeded.usage.fix_dead_letter(SYSTEM, letter_id, body)
    outcome = await seeded.usage.replay(SYSTEM, letter_id)
    assert outcome.dead_letter.status is DeadLetterStatus.REPLAYED
    assert (outcome.result.stored, outcome.result.dead_lettered) == (2, 1)
    (still_bad,) = outcome.result.dead_letter_ids
    assert seeded.usage.get_dead_letter(SYSTEM, still_bad).position == "line 3"


async def test_a_tenant_sees_and_replays_only_its_own_dead_letters(seeded: Platform) -> None:
    mine = await _one_letter(seeded, _json(callee=None, tenant_id=None), by=ADMIN_A)
    providers = await _one_letter(seeded, _json(call_id="p", callee=None))
    listed = seeded.usage.list_dead_letters(ADMIN_A, DeadLetterQuery(), PageRequest()).items
    assert [d.id for d in listed] == [mine]
    with pytest.raises(NotFound):
        seeded.usage.get_dead_letter(ADMIN_B, mine)
    with pytest.raises(NotFound):
        await seeded.usage.replay(ADMIN_A, providers)
    with pytest.raises(Forbidden):
        seeded.usage.list_dead_letters(
            ADMIN_A, DeadLetterQuery(tenant_id="tenant-b"), PageRequest()
        )


async def test_an_operator_replay_keeps_the_submitting_tenants_scope(seeded: Platform) -> None:
    letter_id = await _one_letter(seeded, _json(callee=None, tenant_id=None), by=ADMIN_A)
    seeded.usage.fix_dead_letter(SYSTEM, letter_id, _json(call_id="scoped", tenant_id="tenant-b"))
    outcome = await seeded.usage.replay(SYSTEM, letter_id)
    assert outcome.dead_letter.status is DeadLetterStatus.OPEN
    assert "another tenant" in outcome.dead_letter.reason


# -- retention ------------------------------------------------------------------------------------
async def test_prune_deletes_usage_past_its_retention_and_audits_it(seeded: Platform) -> None:
    usage = _ingestion(seeded, retention_days=30, clock=lambda: T0)
    await usage.ingest_records(
        [call("old", at=T0 - timedelta(days=31)), message("m", at=T0), login("l", at=T0)]
    )
    assert usage.prune() == 1
    assert usage.prune() == 0
    entries = seeded.audit.list(SYSTEM, AuditQuery(action="usage.pruned"), PageRequest()).items
    assert len(entries) == 1 and entries[0].details["deleted"] == 1
    assert entries[0].clause_ids == ("GOV-6",)


async def test_without_a_retention_nothing_is_pruned(seeded: Platform) -> None:
    await seeded.usage.ingest_records([call("ancient", at=T0 - timedelta(days=3650))])
    assert seeded.usage.prune() == 0


async def test_a_tenant_month_is_summarised(seeded: Platform) -> None:
    await seeded.usage.ingest_records(
        [call("s1", cost_minor=10), call("s2", answered_s=None), message("s3"), login("s4")]
    )
    month = UsageQuery("tenant-a", T0.replace(day=1, hour=0, minute=0), T0 + timedelta(days=1))
    summary = seeded.usage.summarise(ADMIN_A, month)
    assert (summary.calls, summary.answered_calls, summary.messages, summary.logins) == (2, 1, 1, 1)
    assert summary.cost_minor == {"EUR": 18}
    with pytest.raises(Forbidden):
        seeded.usage.summarise(ADMIN_B, month)
