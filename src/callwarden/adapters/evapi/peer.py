"""callwarden's end of Kamailio's evapi: answers call attempts and applies call events.

Kamailio's evapi module is the TCP server; callwarden connects to it (and reconnects, with
backoff, whenever the connection is lost) and then serves the messages Kamailio sends:

- an attempt is decided by `AdmissionService.decide` and answered with a verdict that resumes
  the suspended transaction. Attempts are decided concurrently, many in flight, each answered
  as soon as its decision is ready (Kamailio matches answers by transaction, not by order);
- a call event (answered, ended, failed) renews or releases the call's leases.

While no connection is up, Kamailio applies its own backstops (integrations/kamailio).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable

from callwarden.adapters.evapi.netstring import NetstringDecoder, NetstringError, encode
from callwarden.adapters.evapi.protocol import (
    AttemptQuestion,
    BadMessage,
    CallEventReport,
    read_message,
    verdict_message,
)
from callwarden.core.admission.decision import Decision, Finding, admitted, refused
from callwarden.core.admission.pipeline import is_emergency_anywhere
from callwarden.services.admission import AdmissionService

log = logging.getLogger("callwarden.evapi")

READ_CHUNK = 65_536
MAX_IN_FLIGHT = 4096
"""Messages handled at once per connection; beyond it, reading pauses (TCP pushes back)."""


class EvapiPeer:
    """One connection at a time to Kamailio's evapi at `host`:`port`, kept up for as long as
    `run` runs."""

    def __init__(
        self,
        admission: AdmissionService,
        host: str,
        port: int,
        *,
        clock: Callable[[], float] = time.time,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
        on_connect: Callable[[], Awaitable[None] | None] | None = None,
    ) -> None:
        self.admission = admission
        self.host = host
        self.port = port
        self.clock = clock
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.on_connect = on_connect
        self.connected = asyncio.Event()
        self.answered = 0
        """Attempts answered since start (all connections)."""

    async def run(self) -> None:
        """Connect, serve until the connection drops, reconnect with growing backoff; forever
        (until cancelled)."""
        delay = self.backoff_initial_s
        failures = 0
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                failures += 1
                if failures == 1 or failures % 50 == 0:
                    log.warning(
                        "Kamailio evapi unreachable; retrying",
                        extra={"address": f"{self.host}:{self.port}", "error": str(exc)},
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max_s)
                continue
            failures = 0
            delay = self.backoff_initial_s
            log.info("connected to Kamailio evapi", extra={"address": f"{self.host}:{self.port}"})
            try:
                await self.serve(reader, writer)
            finally:
                log.warning(
                    "Kamailio evapi connection lost", extra={"address": f"{self.host}:{self.port}"}
                )

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one established connection until Kamailio closes it or it breaks."""
        decoder = NetstringDecoder()
        in_flight: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self.connected.set()
        if self.on_connect is not None:
            started = self.on_connect()
            if started is not None:
                await started
        try:
            while True:
                data = await reader.read(READ_CHUNK)
                _prompt_acks(writer)
                if not data:
                    return
                try:
                    payloads = decoder.feed(data)
                except NetstringError as exc:
                    log.error(
                        "evapi stream is not netstrings; reconnecting", extra={"error": str(exc)}
                    )
                    return
                for payload in payloads:
                    await slots.acquire()
                    task = asyncio.create_task(self._handle(payload, writer))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    task.add_done_callback(lambda _: slots.release())
        except (ConnectionError, OSError) as exc:
            log.warning("evapi connection failed", extra={"error": str(exc)})
        finally:
            self.connected.clear()
            for task in in_flight:
                task.cancel()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _handle(self, payload: bytes, writer: asyncio.StreamWriter) -> None:
        """Answer one message; a failure is logged and never stops the connection."""
        try:
            message = read_message(payload)
        except BadMessage as bad:
            log.warning("bad message from Kamailio", extra={"error": bad.reason})
            if bad.tindex is not None and bad.tlabel is not None:
                await self._send(
                    writer, verdict_message(bad.tindex, bad.tlabel, self._malformed(bad))
                )
            return
        try:
            if isinstance(message, AttemptQuestion):
                decision = await self.decide(message)
                await self._send(writer, verdict_message(message.tindex, message.tlabel, decision))
                self.answered += 1
            else:
                await self.apply_event(message)
        except asyncio.CancelledError:
            raise
        except Exception:  # one broken message must not end the connection
            log.exception("evapi message failed", extra={"call_id": message.call_id})

    async def decide(self, question: AttemptQuestion) -> Decision:
        """The admission decision for one attempt."""
        return await self.admission.decide(question.attempt(self.clock()))

    async def apply_event(self, report: CallEventReport) -> bool:
        """Renew or release the leases of the call the event is about."""
        return await self.admission.call_event(
            report.call_id, report.event, tenant_id=report.tenant_id, source_ip=report.source_ip
        )

    def _malformed(self, bad: BadMessage) -> Decision:
        """A malformed attempt is refused with a 400 naming the problem, unless its
        destination is an emergency number, which is always admitted (CID-3)."""
        if bad.destination is not None and is_emergency_anywhere(
            self.admission.numbering, bad.destination
        ):
            return admitted(None, emergency=True, warnings=(bad.reason,))
        return refused(Finding("evapi_message", (), f"malformed call attempt: {bad.reason}", 400))

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, message: bytes) -> None:
        """Send one framed message, waiting while Kamailio is slow to read; a closed
        connection drops it (Kamailio's timer then lets the backstops decide)."""
        if writer.is_closing():
            return
        writer.write(encode(message))
        with contextlib.suppress(ConnectionError):
            await writer.drain()


def _prompt_acks(writer: asyncio.StreamWriter) -> None:
    """Acknowledge Kamailio's segments at once. evapi writes each message with Nagle's
    algorithm on, so after a message that gets no answer (a call event) the next one, often a
    call attempt, waits for our ACK, which Linux delays by up to 40 ms. Linux leaves quick-ACK
    mode by itself, so it is set again after every read."""
    sock = writer.get_extra_info("socket")
    if sock is not None and hasattr(socket, "TCP_QUICKACK"):
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
