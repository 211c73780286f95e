"""The usage stream on NATS JetStream: durable, shared by every callwarden instance.

One stream (``CALLWARDEN_USAGE`` by default) holds every subject under the prefix
(``callwarden.usage`` by default):

- ``<prefix>.record.<kind>``: stored usage records in callwarden's JSON schema, each with a
  ``Nats-Msg-Id`` header of its key, so a republish inside the duplicate window is dropped by
  the server;
- ``<prefix>.in.<format>``: raw usage from the provider's switches, read by the ingestion
  consumer. A message holds one unit (a JSON document, a CSV row under its header line, a
  syslog line) or a batch of them, written as a body of that format would be (JSON lines or
  an array, CSV rows under one header line, one syslog line per line): it is cut into units
  exactly like an HTTP body, and each unit is stored or dead-lettered on its own. Batches of
  100 or more units per message carry several times the records per second of one unit per
  message, since every message costs a fetch and an acknowledgement;
- ``<prefix>.dead.<consumer>``: what a consumer gave up on, with the error.

Consumers are durable pull consumers, one per consumer name; several processes subscribing
under one name share its messages. A batch is acknowledged only after the handler returned
(that is, after storage). A handler that raises gets the batch back one message at a time, so
a bad record does not hold up the others; a failing message is redelivered after a delay and,
at its `max_deliver`-th failure, published to the dead-letter subject and then terminated.
The delivery limit is applied here rather than by the server, so a message is never abandoned
at the limit without its dead letter: one that was delivered more than `max_deliver` times
without an answer (the process died while handling it each time) is dead-lettered on arrival.
While a handler runs, the batch is kept alive with progress acknowledgements. The client
reconnects for as long as it takes after losing the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from callwarden.adapters.stream.tasks import cancel_and_wait
from callwarden.core.usage.normalise import split
from callwarden.core.usage.record import (
    CallRecord,
    LoginRecord,
    MessageRecord,
    RawItem,
    UsageError,
    UsageFormat,
    UsageRecord,
)
from callwarden.core.usage.schema import from_json, to_json
from callwarden.services.stream import DEFAULT_MAX_DELIVER, Handler, StreamDeadLetter

__all__ = ["INGEST_CONSUMER", "JetStreamStream", "RawHandler", "message_units", "run_ingestion"]

log = logging.getLogger("callwarden.stream")

INGEST_CONSUMER = "ingest"
"""The durable consumer name of the ingestion of raw usage from the input subjects."""

RawHandler = Callable[[UsageFormat, Sequence[RawItem]], Awaitable[object]]
"""Takes raw units of one format (e.g. `UsageIngestion.ingest`); returns once they are stored."""

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_STREAM_NAME_IN_USE = 10058
_RECORD_TYPES = (CallRecord, MessageRecord, LoginRecord)
_V1_ACK_TOKENS = 9  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<time>.<pending>
_T = TypeVar("_T")


class _Unreadable(Exception):
    """A stream message that cannot be turned into what its consumer handles."""


@dataclass(frozen=True, slots=True)
class _RawUnit:
    """One message of an input subject: its format and the units it holds."""

    fmt: UsageFormat
    items: list[RawItem]


def message_units(fmt: UsageFormat, text: str, position: str) -> list[RawItem]:
    """The units one input message holds, cut as an HTTP body of `fmt` would be.

    A message of one unit keeps the message's own position (``<subject> #<sequence>``); the
    units of a batch add theirs (``... #17 line 3``). A message holding no unit at all (only
    a header line, say) is kept whole as one unit, so it becomes a dead letter with its reason
    rather than vanishing.
    """
    items = list(split(fmt, text))
    if not items:
        return [RawItem(text, position)]
    if len(items) == 1:
        return [RawItem(items[0].text, position)]
    return [RawItem(item.text, f"{position} {item.position}") for item in items]


def _check_name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} must be 1-64 letters, digits, '-' or '_' (it names a NATS "
            "consumer and a subject token)"
        )
    return value


def _check_prefix(prefix: str) -> str:
    tokens = prefix.split(".")
    if not all(_NAME.fullmatch(token) for token in tokens):
        raise ValueError(
            f"subject prefix {prefix!r} must be dot-separated tokens of letters, digits, '-', '_'"
        )
    return prefix


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class JetStreamStream:
    """The usage stream on a NATS JetStream server (see the module docstring).

    `servers` are ``nats://host:port`` URLs. `stream_name` and `subject_prefix` let several
    installations share one server. `ack_wait_s` is how long the server waits for an answer
    before redelivering; `max_age_s` how long the stream keeps messages (None: until removed
    by other limits); `duplicate_window_s` how long a record key is remembered against
    republishing. `batch_size` messages are fetched and handed to a handler at once. A publish
    raises when no acknowledgement arrives for `publish_timeout_s`.
    """

    def __init__(
        self,
        servers: str | Sequence[str],
        *,
        stream_name: str = "CALLWARDEN_USAGE",
        subject_prefix: str = "callwarden.usage",
        max_deliver: int = DEFAULT_MAX_DELIVER,
        ack_wait_s: float = 30.0,
        max_age_s: float | None = None,
        duplicate_window_s: float = 120.0,
        batch_size: int = 500,
        fetch_timeout_s: float = 1.0,
        retry_delay_s: float = 1.0,
        connect_timeout_s: float = 2.0,
        publish_timeout_s: float = 5.0,
    ) -> None:
        if max_deliver < 1 or batch_size < 1:
            raise ValueError("max_deliver and batch_size must be at least 1")
        if ack_wait_s <= 0 or fetch_timeout_s <= 0 or duplicate_window_s <= 0:
            raise ValueError("ack_wait_s, fetch_timeout_s and duplicate_window_s must be positive")
        if max_age_s is not None and max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive when set (got {max_age_s})")
        self.servers = [servers] if isinstance(servers, str) else list(servers)
        self.stream_name = _check_name(stream_name, "stream name")
        self.subject_prefix = _check_prefix(subject_prefix)
        self.max_deliver = max_deliver
        self.ack_wait_s = ack_wait_s
        self.max_age_s = max_age_s
        self.duplicate_window_s = duplicate_window_s
        self.batch_size = batch_size
        self.fetch_timeout_s = fetch_timeout_s
        self.retry_delay_s = retry_delay_s
        self.connect_timeout_s = connect_timeout_s
        self.publish_timeout_s = publish_timeout_s
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Lock | None = None
        self._closing = False
        self._subscriptions: list[_PullConsumer[Any]] = []

    # subjects

    def record_subject(self, record: UsageRecord) -> str:
        """The subject a stored record is published on."""
        return f"{self.subject_prefix}.record.{record.kind.value}"

    def input_subject(self, fmt: UsageFormat) -> str:
        """The subject raw usage of one format is sent to for ingestion."""
        return f"{self.subject_prefix}.in.{fmt.value}"

    def dead_subject(self, consumer: str) -> str:
        """The subject a consumer's dead letters are published on."""
        return f"{self.subject_prefix}.dead.{consumer}"

    # connection

    async def jetstream(self) -> JetStreamContext:
        """The JetStream context, connecting and creating (or updating) the stream first.

        A connection belongs to the event loop that opened it; called from another loop (a
        command-line run after an earlier one), it connects afresh.
        """
        loop = asyncio.get_running_loop()
        if self._js is not None and self._loop is loop:
            return self._js
        if self._loop is not loop:
            self._client, self._js, self._loop = None, None, loop
            self._connecting = asyncio.Lock()
        assert self._connecting is not None
        async with self._connecting:
            if self._js is None:
                self._closing = False
                client = await nats.connect(
                    self.servers,
                    name="callwarden",
                    connect_timeout=max(1, round(self.connect_timeout_s)),
                    reconnect_time_wait=1,
                    max_reconnect_attempts=1,  # a first connection fails fast (NoServersError)
                    error_cb=self._log_error,
                    disconnected_cb=self._log_disconnected,
                    reconnected_cb=self._log_reconnected,
                )
                client.options["max_reconnect_attempts"] = -1  # once connected, never give up
                js = client.jetstream(publish_async_max_pending=max(4000, 4 * self.batch_size))
                try:
                    await self._ensure_stream(js)
                except BaseException:
                    await client.close()
                    raise
                self._client, self._js = client, js
        assert self._js is not None
        return self._js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        config = StreamConfig(
            name=self.stream_name,
            subjects=[f"{self.subject_prefix}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=self.max_age_s or 0,
            duplicate_window=self.duplicate_window_s,
        )
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != _STREAM_NAME_IN_USE:
                raise
            await js.update_stream(config)

    # publishing

    async def publish(self, records: Sequence[UsageRecord]) -> None:
        """Publish records without waiting for each acknowledgement in turn; returns once the
        server acknowledged them all (raises if any was refused)."""
        await self._publish_all(
            (
                self.record_subject(record),
                orjson.dumps(to_json(record)),
                {"Nats-Msg-Id": _message_id(record)},
            )
            for record in records
        )

    async def publish_raw(
        self, fmt: UsageFormat, texts: Sequence[str], *, message_ids: Sequence[str] | None = None
    ) -> None:
        """Send raw usage of one format to the input subject, one message per text: a single
        unit or a batch of units (see the module docstring). `message_ids` (one per text) let
        the server drop a message sent twice within the duplicate window."""
        if message_ids is not None and len(message_ids) != len(texts):
            raise ValueError("message_ids must have one id per text")
        subject = self.input_subject(fmt)
        await self._publish_all(
            (
                subject,
                text.encode(),
                None if message_ids is None else {"Nats-Msg-Id": message_ids[n]},
            )
            for n, text in enumerate(texts)
        )

    async def _publish_all(
        self, messages: Iterable[tuple[str, bytes, dict[str, str] | None]]
    ) -> None:
        """Send every message, then wait for all acknowledgements together."""
        js = await self.jetstream()
        pending: list[asyncio.Future[Any]] = []
        try:
            for subject, payload, headers in messages:
                pending.append(await js.publish_async(subject, payload, headers=headers))
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        await _all_acknowledged(pending, self.publish_timeout_s)

    # consuming

    async def subscribe(self, consumer: str, handler: Handler) -> _PullConsumer[UsageRecord]:
        """Deliver stored records to `handler` under the durable name `consumer`."""
        _check_name(consumer, "consumer name")

        def read(msg: Msg) -> UsageRecord:
            try:
                return from_json(orjson.loads(msg.data))
            except (orjson.JSONDecodeError, UsageError) as exc:
                raise _Unreadable(f"not a usage record: {exc}") from exc

        pull = _PullConsumer(self, consumer, f"{self.subject_prefix}.record.>", read, handler)
        await self._start(pull)
        return pull

    async def consume_raw(
        self, handler: RawHandler, *, consumer: str = INGEST_CONSUMER
    ) -> _PullConsumer[_RawUnit]:
        """Hand raw units from every input subject to `handler` (one call per format in a
        batch), acknowledging them only once it returned."""
        _check_name(consumer, "consumer name")
        inputs = f"{self.subject_prefix}.in."

        def read(msg: Msg) -> _RawUnit:
            name = msg.subject.removeprefix(inputs)
            try:
                fmt = UsageFormat(name)
            except ValueError:
                known = ", ".join(f.value for f in UsageFormat)
                raise _Unreadable(f"unknown usage format {name!r} (use one of {known})") from None
            try:
                text = msg.data.decode()
            except UnicodeDecodeError as exc:
                raise _Unreadable(f"raw usage is not UTF-8 text: {exc}") from exc
            position = f"{msg.subject} #{_delivery(msg)[1]}"
            return _RawUnit(fmt, message_units(fmt, text, position))

        async def handle(units: Sequence[_RawUnit]) -> None:
            by_format: dict[UsageFormat, list[RawItem]] = {}
            for unit in units:
                by_format.setdefault(unit.fmt, []).extend(unit.items)
            for fmt, items in by_format.items():
                await handler(fmt, items)

        pull = _PullConsumer(self, consumer, f"{inputs}>", read, handle)
        await self._start(pull)
        return pull

    async def _start(self, pull: _PullConsumer[_T]) -> None:
        await pull.start()
        self._subscriptions.append(pull)

    async def dead_letters(self, consumer: str, *, limit: int = 100) -> list[StreamDeadLetter]:
        """The oldest `limit` dead letters of a consumer, read from its dead-letter subject."""
        _check_name(consumer, "consumer name")
        if limit < 1:
            return []
        letters: list[StreamDeadLetter] = []
        async for msg in self._read_subject(self.dead_subject(consumer), limit):
            letters.append(_dead_letter_from(consumer, msg.data))
        return letters

    async def _read_subject(self, subject: str, limit: int) -> AsyncIterator[Msg]:
        """Up to `limit` messages of a subject, oldest first, through a short-lived consumer."""
        js = await self.jetstream()
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.ALL,
            inactive_threshold=30.0,
            filter_subject=subject,
        )
        info = await js.add_consumer(self.stream_name, config)
        sub = await js.pull_subscribe_bind(info.name, stream=self.stream_name)
        try:
            remaining = min(limit, info.num_pending or 0)
            while remaining > 0:
                try:
                    msgs = await sub.fetch(min(remaining, 256), timeout=self.fetch_timeout_s)
                except TimeoutError:
                    break
                for msg in msgs[:remaining]:
                    yield msg
                remaining -= len(msgs)
        finally:
            await sub.unsubscribe()
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_consumer(self.stream_name, info.name)

    async def close(self) -> None:
        """Stop every subscription, wait for outstanding publishes and disconnect."""
        for pull in self._subscriptions:
            await pull.stop()
        self._subscriptions.clear()
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            self._closing = True
            await client.drain()

    async def _log_error(self, exc: Exception) -> None:
        log.warning("NATS error: %s", exc)

    async def _log_disconnected(self) -> None:
        if not self._closing:
            log.warning("disconnected from NATS; reconnecting")

    async def _log_reconnected(self) -> None:
        log.info("reconnected to NATS")

    async def delete(self) -> None:
        """Delete the stream with everything in it (tests and decommissioning), then close."""
        js = await self.jetstream()
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(self.stream_name)
        await self.close()

    async def _dead_letter(self, consumer: str, msg: Msg, payload: dict[str, object]) -> None:
        """Publish a dead letter (deduplicated by the message's stream sequence) and wait."""
        js = await self.jetstream()
        seq = _delivery(msg)[1]
        await js.publish(
            self.dead_subject(consumer),
            orjson.dumps(payload),
            headers={"Nats-Msg-Id": f"dead:{consumer}:{seq}"},
        )


class _PullConsumer(Generic[_T]):
    """One running durable pull consumer: fetches, decodes, hands batches over, answers."""

    def __init__(
        self,
        owner: JetStreamStream,
        name: str,
        filter_subject: str,
        read: Callable[[Msg], _T],
        handler: Callable[[Sequence[_T]], Awaitable[None]],
    ) -> None:
        self._owner = owner
        self._name = name
        self._filter = filter_subject
        self._read = read
        self._handler = handler
        self._task: asyncio.Task[None] | None = None
        self._unanswered: dict[int, Msg] = {}

    @property
    def consumer(self) -> str:
        """The durable consumer name."""
        return self._name

    async def start(self) -> None:
        """Create the durable consumer if needed and start fetching in the background."""
        sub = await self._bind()
        self._task = asyncio.create_task(self._run(sub), name=f"jetstream:{self._name}")

    async def stop(self) -> None:
        """Stop fetching; messages being handled are handed back for immediate redelivery."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def _bind(self) -> JetStreamContext.PullSubscription:
        owner = self._owner
        js = await owner.jetstream()
        config = ConsumerConfig(
            durable_name=self._name,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=owner.ack_wait_s,
            max_deliver=-1,  # the limit is applied in `_failed` so nothing ends without a letter
            max_ack_pending=max(1000, 4 * owner.batch_size),
            filter_subject=self._filter,
        )
        return await js.pull_subscribe(
            self._filter, durable=self._name, stream=owner.stream_name, config=config
        )

    async def _run(self, sub: JetStreamContext.PullSubscription) -> None:
        """Handle batch after batch while the next one is already being fetched."""
        ahead: asyncio.Queue[list[Msg]] = asyncio.Queue(maxsize=1)
        fetcher = asyncio.create_task(self._fetch_ahead(sub, ahead))
        try:
            while True:
                await self._handle(await ahead.get())
        finally:
            await cancel_and_wait(fetcher)
            await self._hand_back()
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _fetch_ahead(
        self, sub: JetStreamContext.PullSubscription, ahead: asyncio.Queue[list[Msg]]
    ) -> None:
        owner = self._owner
        while True:
            try:
                msgs = await sub.fetch(owner.batch_size, timeout=owner.fetch_timeout_s)
            except TimeoutError:  # nothing to fetch yet (nats-py raises both kinds)
                continue
            except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
                log.warning("consumer %s: fetch failed (%s); retrying", self._name, _describe(exc))
                await asyncio.sleep(owner.retry_delay_s)
                continue
            for msg in msgs:
                self._unanswered[id(msg)] = msg
            await ahead.put(msgs)

    async def _hand_back(self) -> None:
        """Negative-acknowledge what was fetched but not answered, for prompt redelivery."""
        unanswered, self._unanswered = self._unanswered, {}
        for msg in unanswered.values():
            with contextlib.suppress(Exception):
                await msg.nak()

    async def _handle(self, msgs: list[Msg]) -> None:
        batch: list[tuple[Msg, _T]] = []
        for msg in msgs:
            delivered = _delivery(msg)[0]
            try:
                unit = self._read(msg)
            except _Unreadable as exc:
                await self._give_up(msg, None, str(exc), delivered)
                continue
            if delivered > self._owner.max_deliver:
                await self._give_up(
                    msg,
                    unit,
                    f"delivered {delivered} times without an answer (the consumer stopped "
                    "while handling it)",
                    delivered,
                )
                continue
            batch.append((msg, unit))
        if not batch:
            return
        async with self._kept_alive([msg for msg, _ in batch]):
            try:
                await self._handler([unit for _, unit in batch])
            except Exception:  # the handler's failure belongs to the records; find which
                await self._one_by_one(batch)
                return
        for msg, _ in batch:
            await self._answer(msg.ack(), msg)

    async def _one_by_one(self, batch: list[tuple[Msg, _T]]) -> None:
        for msg, unit in batch:
            try:
                async with self._kept_alive([msg]):
                    await self._handler([unit])
            except Exception as exc:  # as above: it belongs to this record
                await self._failed(msg, unit, exc)
            else:
                await self._answer(msg.ack(), msg)

    async def _failed(self, msg: Msg, unit: _T, exc: Exception) -> None:
        delivered = _delivery(msg)[0]
        if delivered >= self._owner.max_deliver:
            await self._give_up(msg, unit, _describe(exc), delivered)
        else:
            await self._answer(msg.nak(delay=self._owner.retry_delay_s), msg)

    async def _give_up(self, msg: Msg, unit: _T | None, error: str, delivered: int) -> None:
        """Dead-letter a message, then terminate it; if the dead letter cannot be published
        the message is left for redelivery instead, so it is never dropped."""
        log.warning(
            "consumer %s dead-lettered %s #%s after %d deliveries: %s",
            self._name,
            msg.subject,
            _delivery(msg)[1],
            delivered,
            error,
        )
        payload: dict[str, object] = {
            "consumer": self._name,
            "error": error,
            "deliveries": delivered,
            "failed_at": datetime.now(UTC).isoformat(),
            "subject": msg.subject,
            "sequence": _delivery(msg)[1],
            "record": to_json(unit) if isinstance(unit, _RECORD_TYPES) else None,
            "raw": msg.data.decode(errors="backslashreplace"),
        }
        try:
            await self._owner._dead_letter(self._name, msg, payload)
        except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
            log.error("consumer %s: dead letter not published (%s); will retry", self._name, exc)
            await self._answer(msg.nak(delay=self._owner.retry_delay_s), msg)
            return
        await self._answer(msg.term(), msg)

    async def _answer(self, answer: Awaitable[None], msg: Msg) -> None:
        """Send an acknowledgement; a lost one only means a redelivery, which is harmless."""
        try:
            await answer
        except (nats.errors.Error, OSError) as exc:
            log.warning("consumer %s: acknowledgement not sent (%s)", self._name, exc)
        self._unanswered.pop(id(msg), None)

    @contextlib.asynccontextmanager
    async def _kept_alive(self, msgs: list[Msg]) -> AsyncIterator[None]:
        """Tell the server every third of the ack wait that these messages are in progress."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(self._owner.ack_wait_s / 3)
                for msg in msgs:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            await cancel_and_wait(task)


def _delivery(msg: Msg) -> tuple[int, int]:
    """(times delivered, stream sequence) of a JetStream message, read from its reply subject.

    Cheaper than `msg.metadata`, which also builds timestamps; this runs for every message.
    """
    tokens = (msg.reply or "").split(".")
    try:
        if len(tokens) == _V1_ACK_TOKENS:
            return int(tokens[4]), int(tokens[5])
        return int(tokens[Msg.Ack.NumDelivered]), int(tokens[Msg.Ack.StreamSeq])
    except (IndexError, ValueError):
        metadata = msg.metadata
        return metadata.num_delivered or 1, metadata.sequence.stream


def _message_id(record: UsageRecord) -> str:
    """The `Nats-Msg-Id` of a record: its kind and key, so republishing it is a duplicate."""
    call_or_event, leg = record.key
    return f"{record.kind.value}:{call_or_event}:{leg}"


def _dead_letter_from(consumer: str, data: bytes) -> StreamDeadLetter:
    """A dead letter read back from its subject."""
    try:
        payload = orjson.loads(data)
        record_json = payload.get("record")
        record = None if record_json is None else from_json(record_json)
        return StreamDeadLetter(
            consumer=consumer,
            error=str(payload["error"]),
            deliveries=int(payload["deliveries"]),
            failed_at=datetime.fromisoformat(payload["failed_at"]),
            record=record,
            raw=None if record is not None else payload.get("raw"),
        )
    except (ValueError, KeyError, TypeError, AttributeError, UsageError) as exc:
        return StreamDeadLetter(
            consumer=consumer,
            error=f"unreadable dead letter ({exc})",
            deliveries=0,
            failed_at=datetime.now(UTC),
            record=None,
            raw=data.decode(errors="backslashreplace"),
        )


async def _all_acknowledged(pending: Sequence[asyncio.Future[Any]], timeout_s: float) -> None:
    """Wait for every publish acknowledgement; the first refusal is raised, and so is a
    TimeoutError when no acknowledgement at all arrives for `timeout_s` (say, while the
    server restarts). The caller publishes again; the server drops what it already has by
    the message id."""
    waiting: set[asyncio.Future[Any]] = set(pending)
    try:
        while waiting:
            done, waiting = await asyncio.wait(
                waiting, timeout=timeout_s, return_when=asyncio.FIRST_EXCEPTION
            )
            if not done:
                raise TimeoutError(
                    f"NATS acknowledged none of {len(waiting)} outstanding publishes "
                    f"within {timeout_s} s"
                )
            for future in done:
                future.result()
    except BaseException:
        for future in pending:
            future.cancel()
        raise


async def run_ingestion(
    stream: JetStreamStream,
    ingest: RawHandler,
    *,
    consumer: str = INGEST_CONSUMER,
    ready: Callable[[], None] | None = None,
) -> None:
    """Ingest raw usage from the input subjects until cancelled: the server's background task
    and `callwarden stream ingest`. Until the NATS server answers it keeps trying, so a server
    started before NATS still ingests once NATS is up. `ready` is called once consuming."""
    while True:
        try:
            subscription = await stream.consume_raw(ingest, consumer=consumer)
            break
        except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
            log.warning("usage ingestion from NATS not started (%s); retrying", exc)
            await asyncio.sleep(max(stream.retry_delay_s, 1.0))
    log.info("ingesting usage from %s.in.>", stream.subject_prefix)
    if ready is not None:
        ready()
    try:
        await asyncio.Event().wait()
    finally:
        await subscription.stop()
