"""The in-process usage stream: named consumers, batches, redelivery, dead letters, backpressure.

The behaviours it shares with JetStream are tested on both in
tests/adapters/stream/test_jetstream.py; here are the in-process stream's own.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callwarden.adapters.stream import stream_from_url
from callwarden.adapters.stream.memory import InProcessStream
from callwarden.adapters.stream.nats import JetStreamStream
from callwarden.core.usage.record import CallRecord, Direction, Disposition, UsageRecord

pytestmark = pytest.mark.anyio

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def call(n: int) -> CallRecord:
    """An unanswered outbound call with its own call id."""
    return CallRecord(
        call_id=f"call-{n}",
        tenant_id="t1",
        direction=Direction.OUTBOUND,
        callee="+48221234567",
        started_at=T0 + timedelta(seconds=n),
        disposition=Disposition.NO_ANSWER,
        source_format="callwarden-json",
    )


async def until(predicate: Callable[[], bool], *, rounds: int = 2000) -> None:
    """Let the stream's tasks run until `predicate` holds (fails the test if it never does)."""
    for _ in range(rounds):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


async def test_batches_are_no_larger_than_the_batch_size() -> None:
    stream = InProcessStream(batch_size=7)
    sizes: list[int] = []

    async def handler(batch: Sequence[UsageRecord]) -> None:
        sizes.append(len(batch))

    await stream.subscribe("settlement", handler)
    await stream.publish([call(n) for n in range(50)])
    await until(lambda: sum(sizes) == 50)
    await stream.close()
    assert max(sizes) <= 7


async def test_a_failing_batch_is_retried_one_record_at_a_time() -> None:
    stream = InProcessStream(retry_delay_s=0)
    calls: list[list[str]] = []

    async def handler(batch: Sequence[UsageRecord]) -> None:
        ids = [r.key[0] for r in batch]
        calls.append(ids)
        if "call-3" in ids and len(ids) > 1:
            raise RuntimeError("batch refused")

    await stream.subscribe("detector", handler)
    await stream.publish([call(n) for n in range(5)])
    await until(lambda: len(calls) == 6)
    await stream.close()
    assert calls[0] == [f"call-{n}" for n in range(5)]
    assert calls[1:] == [[f"call-{n}"] for n in range(5)]


async def test_publishing_waits_while_a_consumer_queue_is_full() -> None:
    stream = InProcessStream(max_pending=3, batch_size=1)
    release = asyncio.Event()
    started = asyncio.Event()

    async def handler(batch: Sequence[UsageRecord]) -> None:
        started.set()
        await release.wait()

    await stream.subscribe("slow", handler)
    await stream.publish([call(0)])
    await started.wait()
    await stream.publish([call(1), call(2)])
    blocked = asyncio.create_task(stream.publish([call(3)]))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not blocked.done()
    release.set()
    await blocked
    await stream.close()


async def test_records_published_while_stopped_reach_the_next_subscription() -> None:
    stream = InProcessStream()
    first: list[str] = []
    second: list[str] = []

    async def first_handler(batch: Sequence[UsageRecord]) -> None:
        first.extend(r.key[0] for r in batch)

    async def second_handler(batch: Sequence[UsageRecord]) -> None:
        second.extend(r.key[0] for r in batch)

    subscription = await stream.subscribe("reports", first_handler)
    await stream.publish([call(1)])
    await until(lambda: first == ["call-1"])
    await subscription.stop()
    await stream.publish([call(2), call(3)])
    await stream.subscribe("reports", second_handler)
    await until(lambda: len(second) == 2)
    await stream.close()
    assert first == ["call-1"] and second == ["call-2", "call-3"]


async def test_a_batch_interrupted_by_stop_is_delivered_again() -> None:
    stream = InProcessStream()
    started = asyncio.Event()
    later: list[str] = []

    async def stuck(batch: Sequence[UsageRecord]) -> None:
        started.set()
        await asyncio.Event().wait()

    async def handler(batch: Sequence[UsageRecord]) -> None:
        later.extend(r.key[0] for r in batch)

    subscription = await stream.subscribe("detector", stuck)
    await stream.publish([call(1), call(2)])
    await started.wait()
    await subscription.stop()
    await stream.subscribe("detector", handler)
    await until(lambda: len(later) == 2)
    await stream.close()
    assert later == ["call-1", "call-2"]


async def test_a_consumer_name_has_one_running_subscription() -> None:
    stream = InProcessStream()

    async def handler(batch: Sequence[UsageRecord]) -> None:
        return None

    await stream.subscribe("detector", handler)
    with pytest.raises(ValueError, match="detector"):
        await stream.subscribe("detector", handler)
    await stream.close()


async def test_records_published_before_the_first_subscription_are_not_replayed() -> None:
    stream = InProcessStream()
    seen: list[str] = []

    async def handler(batch: Sequence[UsageRecord]) -> None:
        seen.extend(r.key[0] for r in batch)

    await stream.publish([call(1)])
    await stream.subscribe("late", handler)
    await stream.publish([call(2)])
    await until(lambda: len(seen) == 1)
    await stream.close()
    assert seen == ["call-2"]


def test_bad_limits_are_refused_naming_them() -> None:
    with pytest.raises(ValueError, match="max_deliver"):
        InProcessStream(max_deliver=0)
    with pytest.raises(ValueError, match="retry_delay_s"):
        InProcessStream(retry_delay_s=-1)


def test_the_url_chooses_the_stream() -> None:
    assert isinstance(stream_from_url(None), InProcessStream)
    assert isinstance(stream_from_url("nats://127.0.0.1:4222"), JetStreamStream)
    nats = stream_from_url("nats://a:4222, nats://b:4222", max_age_s=0)
    assert isinstance(nats, JetStreamStream)
    assert nats.servers == ["nats://a:4222", "nats://b:4222"] and nats.max_age_s is None
    with pytest.raises(ValueError, match="redis://x"):
        stream_from_url("redis://x")


@settings(max_examples=60, deadline=None)
@given(
    failures=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=25),
    max_deliver=st.integers(min_value=1, max_value=4),
    batch_size=st.integers(min_value=1, max_value=8),
)
def test_every_record_is_consumed_once_or_dead_lettered(
    failures: list[int], max_deliver: int, batch_size: int
) -> None:
    """Record n fails its first failures[n] deliveries; it ends consumed exactly once when it
    succeeds within max_deliver deliveries, otherwise as one dead letter."""

    async def scenario() -> tuple[Counter[str], list[str], list[int]]:
        stream = InProcessStream(max_deliver=max_deliver, batch_size=batch_size, retry_delay_s=0)
        attempts: Counter[str] = Counter()
        consumed: Counter[str] = Counter()
        budget = {call(n).call_id: f for n, f in enumerate(failures)}

        async def handler(batch: Sequence[UsageRecord]) -> None:
            if len(batch) > 1 and any(attempts[r.key[0]] < budget[r.key[0]] for r in batch):
                raise RuntimeError("some record in the batch fails")
            for record in batch:
                attempts[record.key[0]] += 1
                if attempts[record.key[0]] <= budget[record.key[0]]:
                    raise RuntimeError(f"{record.key[0]} fails")
                consumed[record.key[0]] += 1

        await stream.subscribe("property", handler)
        await stream.publish([call(n) for n in range(len(failures))])
        dead: list[str] = []
        deliveries: list[int] = []

        def settled() -> bool:
            return sum(consumed.values()) + len(dead) == len(failures)

        for _ in range(5000):
            letters = await stream.dead_letters("property", limit=1000)
            dead = [letter.record.key[0] for letter in letters if letter.record is not None]
            deliveries = [letter.deliveries for letter in letters]
            if settled():
                break
            await asyncio.sleep(0)
        await stream.close()
        return consumed, dead, deliveries

    consumed, dead, deliveries = asyncio.run(scenario())
    expected_dead = {call(n).call_id for n, f in enumerate(failures) if f >= max_deliver}
    assert set(dead) == expected_dead and len(dead) == len(expected_dead)
    assert all(d == max_deliver for d in deliveries)
    assert set(consumed) == {call(n).call_id for n in range(len(failures))} - expected_dead
    assert all(count == 1 for count in consumed.values())
