"""The usage stream: how stored usage records reach the consumers that read what happened.

Ingestion publishes every newly stored record; surveillance detectors and spend settlement
subscribe under a durable consumer name. Two implementations sit behind this one port: an
in-process queue (the embedded default) and NATS JetStream (scaled out). Both deliver every
record to every named consumer at least once, hand records to the handler in batches, and count
a batch as consumed only when the handler returned. A handler that raises gets the failing
records again, up to `max_deliver` deliveries; a record that still fails then becomes a dead
letter with the handler's error, and delivery goes on with the next record. Handlers must be
idempotent (storage is keyed by call id and leg), since at-least-once delivery can repeat one.

`callwarden.adapters.stream.stream_from_url` builds the implementation the settings name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from callwarden.core.usage.record import UsageRecord

__all__ = [
    "DEFAULT_MAX_DELIVER",
    "Handler",
    "StreamDeadLetter",
    "Subscription",
    "UsageStream",
]

DEFAULT_MAX_DELIVER = 5
"""How many times a record is handed to a failing handler before it becomes a dead letter."""

Handler = Callable[[Sequence[UsageRecord]], Awaitable[None]]
"""A consumer's callback: handles one batch of records; returning means they are consumed."""


@dataclass(frozen=True, slots=True)
class StreamDeadLetter:
    """A record a consumer's handler failed on `deliveries` times, with the last error.

    `record` is None when the stream message could not even be read back as a usage record;
    `raw` then holds its text so nothing is lost.
    """

    consumer: str
    error: str
    deliveries: int
    failed_at: datetime
    record: UsageRecord | None
    raw: str | None = None


class Subscription(Protocol):
    """A running durable consumer; stopping it keeps its place for the next subscriber."""

    @property
    def consumer(self) -> str:
        """The durable consumer name records are delivered under."""
        ...

    async def stop(self) -> None:
        """Stop delivering. Records not yet consumed are delivered to the next subscription
        of the same consumer name."""
        ...


class UsageStream(Protocol):
    """Publishes stored usage records and delivers them to named, durable consumers."""

    async def publish(self, records: Sequence[UsageRecord]) -> None:
        """Append records to the stream; returns once the stream holds them. Republishing a
        record (same key) within the stream's duplicate window is dropped, not repeated."""
        ...

    async def subscribe(self, consumer: str, handler: Handler) -> Subscription:
        """Start delivering to `handler` under the durable name `consumer`: every record once
        per consumer name (more than once only after a failure), in batches."""
        ...

    async def dead_letters(self, consumer: str, *, limit: int = 100) -> list[StreamDeadLetter]:
        """The oldest `limit` records that consumer's handler gave up on, oldest first."""
        ...

    async def close(self) -> None:
        """Stop every subscription and release connections."""
        ...
