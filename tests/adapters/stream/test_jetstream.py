"""The usage stream on NATS JetStream, against the real server at 127.0.0.1:4222.

The consumer-interface tests run on both implementations (in-process and JetStream). Each test
uses a stream and subject prefix of its own and deletes the stream afterwards; nothing else on
the server is touched. The central test kills a real ingestion process (SIGKILL) in the middle
of the input and finds every record stored exactly once after a restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from fastapi.testclient import TestClient
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from callwarden.adapters.api.app import create_app
from callwarden.adapters.api.server import listeners
from callwarden.adapters.cli.main import app as cli
from callwarden.adapters.stream.memory import InProcessStream
from callwarden.adapters.stream.nats import INGEST_CONSUMER, JetStreamStream, message_units
from callwarden.core.model import Billing, Channel, PlanLimits
from callwarden.core.usage.record import (
    CallRecord,
    Direction,
    Disposition,
    RawItem,
    UsageFormat,
    UsageRecord,
)
from callwarden.core.usage.schema import from_json, to_json
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import PageRequest
from callwarden.services.stream import UsageStream
from callwarden.services.usage import DeadLetterQuery
from callwarden.settings import Settings

pytestmark = pytest.mark.anyio

NATS_URL = "nats://127.0.0.1:4222"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
KINDS = ["memory", pytest.param("jetstream", marks=pytest.mark.nats)]
MAX_DELIVER = 3


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def call(n: int, tenant_id: str = "t1") -> CallRecord:
    """An unanswered outbound call with its own call id."""
    return CallRecord(
        call_id=f"call-{n}",
        tenant_id=tenant_id,
        direction=Direction.OUTBOUND,
        callee="+48221234567",
        started_at=T0 + timedelta(seconds=n),
        disposition=Disposition.NO_ANSWER,
        source_format="callwarden-json",
    )


def ids(records: Sequence[UsageRecord]) -> list[str]:
    return [record.key[0] for record in records]


async def eventually(predicate: Callable[[], bool], *, within_s: float = 30.0) -> None:
    """Wait (a bounded time) for the stream's consumers to make `predicate` true."""
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the stream did not get there")
        await asyncio.sleep(0.02)


def jetstream(url: str = NATS_URL, **options: float) -> JetStreamStream:
    """A JetStream usage stream with a stream name and subject prefix of its own."""
    tag = uuid.uuid4().hex[:12]
    return JetStreamStream(
        url,
        stream_name=f"CWTEST_{tag}",
        subject_prefix=f"cwtest{tag}.usage",
        max_deliver=int(options.pop("max_deliver", MAX_DELIVER)),
        retry_delay_s=options.pop("retry_delay_s", 0.05),
        fetch_timeout_s=options.pop("fetch_timeout_s", 0.5),
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
async def nats_stream() -> AsyncIterator[JetStreamStream]:
    stream = jetstream()
    try:
        yield stream
    finally:
        await stream.delete()


@pytest.fixture(params=KINDS)
async def stream(request: pytest.FixtureRequest) -> AsyncIterator[UsageStream]:
    """Each consumer-interface test runs on the in-process stream and on JetStream."""
    if request.param == "memory":
        memory = InProcessStream(max_deliver=MAX_DELIVER, retry_delay_s=0.01)
        yield memory
        await memory.close()
        return
    nats_backed = jetstream()
    try:
        yield nats_backed
    finally:
        await nats_backed.delete()


class Seen:
    """A consumer's handler that records what it was given and can be told to fail."""

    def __init__(self, fails: Callable[[UsageRecord, int], bool] = lambda r, n: False) -> None:
        self.consumed: list[str] = []
        self.tries: Counter[str] = Counter()
        self._fails = fails

    async def __call__(self, batch: Sequence[UsageRecord]) -> None:
        for record in batch:
            self.tries[record.key[0]] += 1
        bad = [r for r in batch if self._fails(r, self.tries[r.key[0]])]
        if bad:
            raise RuntimeError(f"cannot handle {bad[0].key[0]}")
        self.consumed.extend(ids(batch))


# The consumer interface, on both implementations


async def test_every_consumer_name_receives_every_record_once(stream: UsageStream) -> None:
    detector, settlement = Seen(), Seen()
    await stream.subscribe("detector", detector)
    await stream.subscribe("settlement", settlement)
    await stream.publish([call(n) for n in range(40)])
    await eventually(lambda: len(detector.consumed) >= 40 and len(settlement.consumed) >= 40)
    await stream.publish([call(99)])
    await eventually(lambda: "call-99" in detector.consumed and "call-99" in settlement.consumed)
    expected = sorted(ids([call(n) for n in (*range(40), 99)]))
    assert sorted(detector.consumed) == expected and sorted(settlement.consumed) == expected


async def test_a_republished_record_is_delivered_once(stream: UsageStream) -> None:
    seen = Seen()
    await stream.subscribe("detector", seen)
    await stream.publish([call(1), call(2)])
    await stream.publish([call(2), call(1)])
    await stream.publish([call(3)])
    await eventually(lambda: "call-3" in seen.consumed)
    assert sorted(seen.consumed) == ["call-1", "call-2", "call-3"]


async def test_a_failing_record_is_delivered_again_until_it_succeeds(stream: UsageStream) -> None:
    seen = Seen(fails=lambda record, tries: record.key[0] == "call-2" and tries < MAX_DELIVER)
    await stream.subscribe("detector", seen)
    await stream.publish([call(n) for n in range(5)])
    await eventually(lambda: "call-2" in seen.consumed)
    await stream.publish([call(9)])
    await eventually(lambda: "call-9" in seen.consumed)
    assert sorted(seen.consumed) == sorted(ids([call(n) for n in (0, 1, 2, 3, 4, 9)]))
    assert await stream.dead_letters("detector") == []


async def test_a_record_failing_every_delivery_becomes_a_dead_letter_with_the_error(
    stream: UsageStream,
) -> None:
    seen = Seen(fails=lambda record, tries: record.key[0] == "call-3")
    await stream.subscribe("detector", seen)
    await stream.publish([call(n) for n in range(6)])
    letters = []
    for _ in range(1500):
        letters = await stream.dead_letters("detector")
        if letters:
            break
        await asyncio.sleep(0.02)
    assert [letter.record for letter in letters] == [call(3)]
    assert letters[0].deliveries == MAX_DELIVER and letters[0].consumer == "detector"
    assert letters[0].error == "RuntimeError: cannot handle call-3"
    await eventually(lambda: len(seen.consumed) == 5)
    assert sorted(seen.consumed) == sorted(ids([call(n) for n in (0, 1, 2, 4, 5)]))
    assert await stream.dead_letters("settlement") == []


async def test_a_stopped_consumer_resumes_with_what_it_had_not_consumed(
    stream: UsageStream,
) -> None:
    first, second = Seen(), Seen()
    subscription = await stream.subscribe("reports", first)
    assert subscription.consumer == "reports"
    await stream.publish([call(1), call(2)])
    await eventually(lambda: len(first.consumed) == 2)
    await subscription.stop()
    await stream.publish([call(3), call(4)])
    await stream.subscribe("reports", second)
    await eventually(lambda: len(second.consumed) == 2)
    await stream.publish([call(5)])
    await eventually(lambda: "call-5" in second.consumed)
    assert first.consumed == ["call-1", "call-2"]
    assert second.consumed == ["call-3", "call-4", "call-5"]


# JetStream only


async def _read_all(js_stream: JetStreamStream, subject: str) -> list[nats.aio.msg.Msg]:
    """Every message of a subject, through a consumer that acknowledges nothing."""
    js = await js_stream.jetstream()
    sub = await js.pull_subscribe(
        subject,
        stream=js_stream.stream_name,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
    )
    pending = (await sub.consumer_info()).num_pending or 0
    msgs: list[nats.aio.msg.Msg] = []
    while len(msgs) < pending:
        msgs.extend(await sub.fetch(pending - len(msgs), timeout=2))
    await sub.unsubscribe()
    return msgs


@pytest.mark.nats
async def test_records_travel_as_callwarden_json_with_their_key_as_message_id(
    nats_stream: JetStreamStream,
) -> None:
    answered = CallRecord(
        call_id="abc@pbx",
        leg="b",
        tenant_id="t1",
        direction=Direction.OUTBOUND,
        caller="+48221230000",
        callee="+48221234567",
        started_at=T0,
        answered_at=T0 + timedelta(seconds=5),
        ended_at=T0 + timedelta(seconds=65),
        duration_s=60,
        disposition=Disposition.ANSWERED,
        cost_minor=12,
        currency="PLN",
        source_format="freeswitch-json",
    )
    await nats_stream.publish([answered])
    [msg] = await _read_all(nats_stream, f"{nats_stream.subject_prefix}.record.call")
    assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == "call:abc@pbx:b"
    assert from_json(json.loads(msg.data)) == answered


@pytest.mark.nats
async def test_raw_input_reaches_the_handler_by_format_and_is_acknowledged_after_it(
    nats_stream: JetStreamStream,
) -> None:
    handed: list[tuple[UsageFormat, list[str]]] = []
    failed_once: list[bool] = []

    async def ingest(fmt: UsageFormat, items: Sequence[RawItem]) -> None:
        if not failed_once:
            failed_once.append(True)
            raise OSError("database unavailable")
        handed.append((fmt, [item.text for item in items]))

    await nats_stream.publish_raw(UsageFormat.CALLWARDEN_JSON, ['{"a": 1}', '{"a": 2}'])
    await nats_stream.publish_raw(UsageFormat.KAMAILIO_ACC_SYSLOG, ["acc line"])
    subscription = await nats_stream.consume_raw(ingest)
    await eventually(lambda: sum(len(texts) for _, texts in handed) == 3)
    by_format: dict[UsageFormat, list[str]] = {}
    for fmt, texts in handed:
        by_format.setdefault(fmt, []).extend(texts)
    assert by_format == {
        UsageFormat.CALLWARDEN_JSON: ['{"a": 1}', '{"a": 2}'],
        UsageFormat.KAMAILIO_ACC_SYSLOG: ["acc line"],
    }
    js = await nats_stream.jetstream()

    async def settled() -> bool:
        info = await js.consumer_info(nats_stream.stream_name, INGEST_CONSUMER)
        return info.num_ack_pending == 0 and info.num_pending == 0

    for _ in range(100):
        if await settled():
            break
        await asyncio.sleep(0.05)
    assert await settled()
    await subscription.stop()


def test_an_input_message_is_cut_into_units_like_a_body() -> None:
    one = message_units(UsageFormat.CALLWARDEN_JSON, '{"a": 1}\n', "in #7")
    assert one == [RawItem('{"a": 1}', "in #7")]
    batch = message_units(
        UsageFormat.CALLWARDEN_CSV, "call_id,callee\nc-1,+4420\n\nc-2,+4421\n", "in #8"
    )
    assert batch == [
        RawItem("call_id,callee\nc-1,+4420", "in #8 line 2"),
        RawItem("call_id,callee\nc-2,+4421", "in #8 line 4"),
    ]
    assert message_units(UsageFormat.CALLWARDEN_CSV, "call_id,callee\n", "in #9") == [
        RawItem("call_id,callee\n", "in #9")
    ]


@pytest.mark.nats
async def test_a_batch_message_is_stored_unit_by_unit_and_acknowledged_once(
    tmp_path: Path, nats_stream: JetStreamStream
) -> None:
    platform = Platform.build(Settings(database_url=f"sqlite:///{tmp_path / 'usage.db'}"))
    tenant_id = _seed_tenant(platform.settings.database_url)
    lines = [json.dumps(to_json(call(n, tenant_id))) for n in range(250)]
    lines[7] = lines[7].replace('"callee": "+48221234567"', '"callee": ""')
    await nats_stream.publish_raw(
        UsageFormat.CALLWARDEN_JSON, ["\n".join(lines[:200]), "\n".join(lines[200:])]
    )
    results = []

    async def ingest(fmt: UsageFormat, items: Sequence[RawItem]) -> None:
        results.append(await platform.usage.ingest(fmt, items))

    subscription = await nats_stream.consume_raw(ingest)
    try:
        await eventually(lambda: sum(r.stored + r.dead_lettered for r in results) == 250)
        js = await nats_stream.jetstream()
        for _ in range(100):
            info = await js.consumer_info(nats_stream.stream_name, INGEST_CONSUMER)
            if info.num_ack_pending == 0 and info.num_pending == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        await subscription.stop()
    letters = platform.usage.list_dead_letters(SYSTEM, DeadLetterQuery(), PageRequest()).items
    platform.close()
    assert sum(r.stored for r in results) == 249
    assert [(d.position, d.reason) for d in letters] == [
        (f"{nats_stream.subject_prefix}.in.callwarden-json #1 line 8", "callee is missing")
    ]
    assert info.num_ack_pending == 0 and info.num_pending == 0
    assert info.delivered.consumer_seq == 2  # two messages, each delivered and answered once


@pytest.mark.nats
async def test_raw_input_on_an_unknown_format_is_dead_lettered_with_the_reason(
    nats_stream: JetStreamStream,
) -> None:
    async def ingest(fmt: UsageFormat, items: Sequence[RawItem]) -> None:
        raise AssertionError("nothing should reach ingestion")

    js = await nats_stream.jetstream()
    await js.publish(f"{nats_stream.subject_prefix}.in.cisco-cdr", b"1,2,3")
    await nats_stream.consume_raw(ingest)
    letters = []
    for _ in range(500):
        letters = await nats_stream.dead_letters(INGEST_CONSUMER)
        if letters:
            break
        await asyncio.sleep(0.02)
    [letter] = letters
    assert letter.raw == "1,2,3" and letter.record is None and letter.deliveries == 1
    assert "unknown usage format 'cisco-cdr'" in letter.error


@pytest.mark.nats
async def test_a_record_never_answered_for_is_dead_lettered_once_past_the_limit() -> None:
    """A consumer that dies while handling a message, delivery after delivery, must not
    make JetStream drop it silently: past the limit it becomes a dead letter."""
    stream = jetstream(ack_wait_s=1.0, max_deliver=2)
    try:
        await (await stream.subscribe("detector", Seen())).stop()  # the durable consumer
        await stream.publish([call(1)])
        js = await stream.jetstream()
        dying = await js.pull_subscribe_bind("detector", stream=stream.stream_name)
        for delivery in (1, 2):  # fetched and never answered, as by a process that died
            [msg] = await dying.fetch(1, timeout=10)
            assert msg.metadata.num_delivered == delivery
        await dying.unsubscribe()
        seen = Seen()
        await stream.subscribe("detector", seen)
        letters = []
        for _ in range(500):
            letters = await stream.dead_letters("detector")
            if letters:
                break
            await asyncio.sleep(0.02)
        assert [letter.record for letter in letters] == [call(1)]
        assert "without an answer" in letters[0].error and letters[0].deliveries == 3
        assert seen.consumed == []
    finally:
        await stream.delete()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_nats(port: int, store: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["nats-server", "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nats-server did not start")


@pytest.fixture
def private_nats(tmp_path: Path) -> Iterator[tuple[int, Path, list[subprocess.Popen[bytes]]]]:
    """A nats-server of our own, so the test can stop it without touching the shared one."""
    port = _free_port()
    procs = [_start_nats(port, tmp_path / "nats")]
    yield port, tmp_path / "nats", procs
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.mark.nats
async def test_a_consumer_carries_on_after_the_server_restarts(
    private_nats: tuple[int, Path, list[subprocess.Popen[bytes]]],
) -> None:
    port, store, procs = private_nats
    stream = jetstream(f"nats://127.0.0.1:{port}", publish_timeout_s=1.0)
    seen = Seen()
    await stream.subscribe("detector", seen)
    await stream.publish([call(n) for n in range(10)])
    await eventually(lambda: len(seen.consumed) == 10)
    procs[0].terminate()
    procs[0].wait()
    procs.append(_start_nats(port, store))
    for _ in range(300):  # the client reconnects on its own; publish once it has
        try:
            await stream.publish([call(n) for n in range(10, 20)])
            break
        except (nats.errors.Error, TimeoutError):
            await asyncio.sleep(0.1)
    await eventually(lambda: len(seen.consumed) >= 20)
    assert sorted(seen.consumed) == sorted(ids([call(n) for n in range(20)]))
    await stream.delete()


# The ingestion process, killed in the middle of the input

TOTAL = 5000


def _query(database_url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql)).all()]
    finally:
        engine.dispose()


def _stored_keys(database_url: str) -> list[tuple[str, str]]:
    return [
        (str(r[0]), str(r[1]))
        for r in _query(database_url, "SELECT record_id, leg FROM usage_records")
    ]


def _seed_tenant(database_url: str) -> str:
    """Migrate the store and create the tenant the records belong to; its id."""
    platform = Platform.build(Settings(database_url=database_url))
    try:
        gov = platform.governance
        plan = gov.create_plan(
            SYSTEM,
            name="Standard",
            billing=Billing.METERED,
            channels=[Channel.VOICE],
            currency="EUR",
            limits=PlanLimits(),
        )
        tenant = gov.create_tenant(
            SYSTEM, name="Tenant", country="PL", timezone="Europe/Warsaw", plan_id=plan.id
        )
    finally:
        platform.close()
    return tenant.id


def _start_ingestion(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = Path(sys.executable).parent / "callwarden"
    return subprocess.Popen(
        [str(command), "stream", "ingest"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_stored(database_url: str, at_least: int, proc: subprocess.Popen[bytes]) -> int:
    for _ in range(3000):
        stored = len(_stored_keys(database_url))
        if stored >= at_least:
            return stored
        assert proc.poll() is None, "the ingestion process exited on its own"
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {at_least} records were stored")


@pytest.mark.nats
async def test_an_ingestion_process_killed_mid_stream_stores_every_record_exactly_once(
    tmp_path: Path, nats_stream: JetStreamStream
) -> None:
    database_url = f"sqlite:///{tmp_path / 'usage.db'}"
    tenant_id = _seed_tenant(database_url)
    records = [call(n, tenant_id) for n in range(TOTAL)]
    texts = [json.dumps(to_json(record)) for record in records]
    await nats_stream.publish_raw(UsageFormat.CALLWARDEN_JSON, texts)
    env = {
        **os.environ,
        "CALLWARDEN_DATABASE_URL": database_url,
        "CALLWARDEN_NATS_URL": NATS_URL,
        "CALLWARDEN_NATS_STREAM": nats_stream.stream_name,
        "CALLWARDEN_NATS_SUBJECT_PREFIX": nats_stream.subject_prefix,
        # Small batches: the process needs many commits to get through the records, so the
        # kills below land while it is still working, however fast the machine.
        "CALLWARDEN_NATS_BATCH_SIZE": "10",
        "CALLWARDEN_NATS_ACK_WAIT_S": "2",
        "CALLWARDEN_LOG_FORMAT": "text",
    }
    killed_at: list[int] = []
    for threshold in (1, TOTAL // 5):
        proc = _start_ingestion(env)
        try:
            await _wait_stored(database_url, threshold, proc)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        killed_at.append(len(_stored_keys(database_url)))
    assert all(0 < n < TOTAL for n in killed_at), f"killed at {killed_at}, not mid-stream"
    proc = _start_ingestion(env)
    try:
        await _wait_stored(database_url, TOTAL, proc)
        js = await nats_stream.jetstream()
        for _ in range(500):
            info = await js.consumer_info(nats_stream.stream_name, INGEST_CONSUMER)
            if info.num_ack_pending == 0 and info.num_pending == 0:
                break
            await asyncio.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    keys = _stored_keys(database_url)
    assert len(keys) == TOTAL
    assert sorted(keys) == sorted(record.key for record in records)
    assert _query(database_url, "SELECT count(*) FROM usage_dead_letters") == [(0,)]
    assert info.num_ack_pending == 0 and info.num_pending == 0
    # What the killed processes held was delivered again: more deliveries than input messages.
    assert info.delivered.consumer_seq > TOTAL
    assert await nats_stream.dead_letters(INGEST_CONSUMER) == []
    # Stored records go on to the record subjects once each; a batch stored just before a
    # kill waits in the outbox until its publish is retried.
    published = [
        (record["call_id"], record["leg"])
        for msg in await _read_all(nats_stream, f"{nats_stream.subject_prefix}.record.>")
        for record in [json.loads(msg.data)]
    ]
    outbox = [
        (key[0], key[1])
        for (keys_json,) in _query(database_url, "SELECT keys FROM usage_outbox")
        for key in (json.loads(keys_json) if isinstance(keys_json, str) else keys_json)
    ]
    assert len(published) == len(set(published))
    assert set(published) | set(outbox) == set(keys)


@pytest.mark.nats
def test_the_cli_lists_a_consumers_dead_letters(tmp_path: Path) -> None:
    stream = jetstream()

    async def dead_letter_one() -> None:
        async def ingest(fmt: UsageFormat, items: Sequence[RawItem]) -> None:
            return None

        js = await stream.jetstream()
        await js.publish(f"{stream.subject_prefix}.in.no-such-format", b"x;y;z")
        subscription = await stream.consume_raw(ingest)
        for _ in range(500):
            if await stream.dead_letters(INGEST_CONSUMER):
                break
            await asyncio.sleep(0.02)
        await subscription.stop()
        await stream.close()

    asyncio.run(dead_letter_one())
    try:
        result = CliRunner().invoke(
            cli,
            ["stream", "dead-letters", INGEST_CONSUMER, "--nats-url", NATS_URL],
            env={
                "CALLWARDEN_NATS_STREAM": stream.stream_name,
                "CALLWARDEN_NATS_SUBJECT_PREFIX": stream.subject_prefix,
                "CALLWARDEN_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
            },
        )
        assert result.exit_code == 0, result.output
        assert "x;y;z" in result.output and "1 dead letter(s) for ingest" in result.output
    finally:
        asyncio.run(stream.delete())


@pytest.mark.nats
def test_the_server_ingests_the_input_subjects_when_nats_is_configured(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'served.db'}"
    tenant_id = _seed_tenant(database_url)
    sender = jetstream()
    platform = Platform.build(
        Settings(
            database_url=database_url,
            nats_url=NATS_URL,
            nats_stream=sender.stream_name,
            nats_subject_prefix=sender.subject_prefix,
        )
    )
    app = create_app(platform, background=listeners(platform))
    try:
        with TestClient(app):
            asyncio.run(
                sender.publish_raw(
                    UsageFormat.CALLWARDEN_JSON,
                    [json.dumps(to_json(call(n, tenant_id))) for n in range(3)],
                )
            )
            for _ in range(1500):
                if len(_stored_keys(database_url)) == 3:
                    break
                time.sleep(0.02)
        assert sorted(_stored_keys(database_url)) == [call(n).key for n in range(3)]
    finally:
        platform.close()
        asyncio.run(sender.delete())
