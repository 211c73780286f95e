"""The in-process usage stream: the embedded default, for one callwarden process.

Each durable consumer name has its own bounded queue, so every consumer sees every record
published while it is registered. Publishing waits while any consumer's queue is full
(backpressure rather than loss). A handler that raises gets its batch back one record at a time,
so one bad record does not hold up the rest; a record that fails `max_deliver` times becomes a
dead letter. Stopping a subscription keeps the consumer's queue (and anything it was handling)
for the next subscription of the same name.

Unlike JetStream nothing outlives the process and records published before a consumer name was
first subscribed are not replayed to it: the store is the durable copy, this is its live feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from callwarden.adapters.stream.tasks import cancel_and_wait
from callwarden.core.usage.record import UsageRecord
from callwarden.services.stream import DEFAULT_MAX_DELIVER, Handler, StreamDeadLetter

__all__ = ["InProcessStream"]

log = logging.getLogger("callwarden.stream")


@dataclass(slots=True)
class _Pending:
    """A record waiting for (or in) delivery to one consumer, with its delivery count."""

    record: UsageRecord
    deliveries: int = 0


@dataclass(slots=True)
class _Consumer:
    """One durable consumer name: its queue, records waiting to be retried, its dead letters."""

    name: str
    capacity: int
    queue: deque[_Pending] = field(default_factory=deque)
    retry: list[tuple[float, int, _Pending]] = field(default_factory=list)
    in_flight: list[_Pending] = field(default_factory=list)
    dead: list[StreamDeadLetter] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    task: asyncio.Task[None] | None = None

    @property
    def held(self) -> int:
        """Records this consumer holds and has not consumed yet."""
        return len(self.queue) + len(self.retry) + len(self.in_flight)


class _InProcessSubscription:
    """The handle `InProcessStream.subscribe` returns."""

    def __init__(self, stream: InProcessStream, state: _Consumer) -> None:
        self._stream = stream
        self._state = state

    @property
    def consumer(self) -> str:
        """The durable consumer name."""
        return self._state.name

    async def stop(self) -> None:
        """Stop delivering; unconsumed records wait for the next subscription of this name."""
        await self._stream._stop(self._state)


class InProcessStream:
    """A bounded in-process queue per durable consumer name (see the module docstring).

    `max_pending` bounds each consumer's unconsumed records, `batch_size` the records handed to
    a handler at once, `retry_delay_s` the wait before a failed record is handed over again,
    and `duplicate_window` how many recent record keys a republish is checked against.
    """

    def __init__(
        self,
        *,
        max_pending: int = 10_000,
        max_deliver: int = DEFAULT_MAX_DELIVER,
        batch_size: int = 500,
        retry_delay_s: float = 0.05,
        duplicate_window: int = 100_000,
    ) -> None:
        if max_pending < 1 or max_deliver < 1 or batch_size < 1 or duplicate_window < 0:
            raise ValueError(
                "max_pending, max_deliver and batch_size must be at least 1, "
                "duplicate_window not negative"
            )
        if retry_delay_s < 0:
            raise ValueError(f"retry_delay_s must not be negative (got {retry_delay_s})")
        self.max_pending = max_pending
        self.max_deliver = max_deliver
        self.batch_size = batch_size
        self.retry_delay_s = retry_delay_s
        self._duplicate_window = duplicate_window
        self._recent: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._consumers: dict[str, _Consumer] = {}
        self._order = itertools.count()

    async def publish(self, records: Sequence[UsageRecord]) -> None:
        """Queue records for every registered consumer, dropping keys published recently;
        waits while a consumer's queue is full. With no consumer registered nothing is kept
        (nor read: bulk ingestion's records are then never built)."""
        if not self._consumers:
            return
        fresh = [r for r in records if self._first_time(r)]
        for start in range(0, len(fresh), self.max_pending):
            chunk = fresh[start : start + self.max_pending]
            for state in list(self._consumers.values()):
                async with state.changed:
                    while state.held + len(chunk) > state.capacity:
                        await state.changed.wait()
                    state.queue.extend(_Pending(record) for record in chunk)
                    state.changed.notify_all()

    def _first_time(self, record: UsageRecord) -> bool:
        """Whether the record's key is outside the duplicate window (and remember it)."""
        if self._duplicate_window == 0:
            return True
        key = (record.kind.value, *record.key)
        if key in self._recent:
            return False
        self._recent[key] = None
        if len(self._recent) > self._duplicate_window:
            self._recent.popitem(last=False)
        return True

    async def subscribe(self, consumer: str, handler: Handler) -> _InProcessSubscription:
        """Start delivering to `handler` under `consumer`; a name has one subscription at a
        time (ValueError while it is running)."""
        if not consumer:
            raise ValueError("consumer name must not be empty")
        state = self._consumers.get(consumer)
        if state is None:
            state = _Consumer(consumer, self.max_pending)
            self._consumers[consumer] = state
        if state.task is not None and not state.task.done():
            raise ValueError(f"consumer {consumer!r} already has a running subscription")
        state.task = asyncio.create_task(self._run(state, handler), name=f"stream:{consumer}")
        return _InProcessSubscription(self, state)

    async def dead_letters(self, consumer: str, *, limit: int = 100) -> list[StreamDeadLetter]:
        """The consumer's oldest `limit` dead letters (none for an unknown name)."""
        state = self._consumers.get(consumer)
        return [] if state is None else state.dead[:limit]

    async def close(self) -> None:
        """Stop every subscription."""
        for state in list(self._consumers.values()):
            await self._stop(state)

    async def _stop(self, state: _Consumer) -> None:
        task, state.task = state.task, None
        if task is not None:
            await cancel_and_wait(task)
        if state.in_flight:
            state.queue.extendleft(reversed(state.in_flight))
            state.in_flight = []

    async def _run(self, state: _Consumer, handler: Handler) -> None:
        while True:
            batch = await self._take(state)
            for pending in batch:
                pending.deliveries += 1
            try:
                await handler([p.record for p in batch])
            except Exception as exc:  # the handler's failure is the record's, not the stream's
                if len(batch) == 1:
                    await self._failed(state, batch[0], exc)
                else:
                    await self._one_by_one(state, handler, batch)
            async with state.changed:
                state.in_flight = []
                state.changed.notify_all()

    async def _one_by_one(self, state: _Consumer, handler: Handler, batch: list[_Pending]) -> None:
        """After a batch failed: hand each record over alone so only the bad ones are retried."""
        for pending in batch:
            try:
                await handler([pending.record])
            except Exception as exc:  # as above: it belongs to this record
                await self._failed(state, pending, exc)
            else:
                state.in_flight.remove(pending)

    async def _take(self, state: _Consumer) -> list[_Pending]:
        """The next batch: due retries first, then queued records; waits for either."""
        loop = asyncio.get_running_loop()
        async with state.changed:
            while True:
                now = loop.time()
                batch: list[_Pending] = []
                while state.retry and state.retry[0][0] <= now and len(batch) < self.batch_size:
                    batch.append(heapq.heappop(state.retry)[2])
                while state.queue and len(batch) < self.batch_size:
                    batch.append(state.queue.popleft())
                if batch:
                    state.in_flight = list(batch)
                    return batch
                timeout = state.retry[0][0] - now if state.retry else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(state.changed.wait(), timeout)

    async def _failed(self, state: _Consumer, pending: _Pending, exc: Exception) -> None:
        """Schedule the record again, or dead-letter it once it has had `max_deliver` tries."""
        state.in_flight.remove(pending)
        if pending.deliveries >= self.max_deliver:
            log.warning(
                "usage record %s dead-lettered for consumer %s after %d deliveries: %s",
                pending.record.key,
                state.name,
                pending.deliveries,
                exc,
            )
            state.dead.append(
                StreamDeadLetter(
                    consumer=state.name,
                    error=_describe(exc),
                    deliveries=pending.deliveries,
                    failed_at=datetime.now(UTC),
                    record=pending.record,
                )
            )
            return
        due = asyncio.get_running_loop().time() + self.retry_delay_s
        heapq.heappush(state.retry, (due, next(self._order), pending))


def _describe(exc: BaseException) -> str:
    """The error as a dead letter records it: its type and message."""
    return f"{type(exc).__name__}: {exc}"
