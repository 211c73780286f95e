"""The redirect server's request handling, the same over UDP and TCP.

- INVITE: one admission decision per server transaction, answered 302 (admit) or a refusal
  (see `answers`). A retransmission gets the identical final response without a second
  decision, or 100 Trying while the decision is still under way. Over UDP the final response
  is retransmitted (Timer G: T1 doubling up to T2) until the ACK comes or 32 s pass (Timer H).
  An INVITE inside a dialog (To tag present) is answered 481: only initial INVITEs are decided.
- ACK: absorbed; it confirms its INVITE's transaction and stops the retransmissions.
- CANCEL: 200 when it matches an INVITE transaction (481 otherwise); if that INVITE is still
  being decided it is answered 487, and an admission that arrives afterwards gives its
  concurrency leases back at once, since that call will not happen.
- OPTIONS: 200, for the SIP server's health checks. Any other method: 405.
- Malformed input: answered 400 (or 416, 505, 513) when the request line and the mandatory
  headers could be read, else dropped; both are counted. Nothing a peer sends can make
  `handle` raise: an unexpected failure is logged and counted as an error.

If a decision fails with an exception, an emergency call is still redirected (flagged degraded)
and anything else is answered 500 so the SIP server's own failure handling takes over.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import REGISTRY, Metric
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from callwarden.adapters.sip.answers import (
    ALLOWED_METHODS,
    DECISION_HEADER,
    DEGRADED_HEADER,
    EMERGENCY_HEADER,
    RefusalStatus,
    bad_request,
    decision_answer,
    reply,
    respond,
)
from callwarden.adapters.sip.attempts import TrustedProxies, call_attempt
from callwarden.adapters.sip.fields import (
    Via,
    parse_via,
    quoted,
    split_list,
    uri_user,
    with_source,
)
from callwarden.adapters.sip.incoming import (
    IncomingRequest,
    answerable,
    check_request,
    is_emergency_urn,
)
from callwarden.adapters.sip.message import (
    DEFAULT_LIMITS,
    Header,
    Limits,
    ParseError,
    Request,
    Response,
    parse_message,
)
from callwarden.adapters.sip.transactions import (
    T1,
    T2,
    Phase,
    ServerTransaction,
    TransactionTable,
    transaction_key,
)
from callwarden.core.admission.attempt import CallAttempt
from callwarden.core.admission.decision import Decision
from callwarden.core.admission.pipeline import is_emergency_anywhere
from callwarden.core.numbering import NumberingPlan
from callwarden.services.admission import CallEvent
from callwarden.settings import Settings

log = logging.getLogger("callwarden.sip")

LOOPBACK = TrustedProxies((ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")))
"""The default trusted proxies: the loopback addresses."""


class Channel(Protocol):
    """Where a request came from and how its responses go back."""

    @property
    def reliable(self) -> bool:
        """True for a stream transport (no retransmissions needed)."""
        ...

    @property
    def source(self) -> tuple[str, int]:
        """The packet's source address (normalised) and port."""
        ...

    def send(self, data: bytes, via: Via | None) -> None:
        """Send a response; over UDP the top Via says where (RFC 3261 section 18.2.2)."""
        ...


class Admission(Protocol):
    """What the handler needs of the admission service."""

    numbering: NumberingPlan

    async def decide(self, attempt: CallAttempt) -> Decision:
        """Admit or refuse one call attempt."""
        ...

    async def call_event(
        self, call_id: str, event: CallEvent, *, tenant_id: str | None, source_ip: str | None
    ) -> bool:
        """Apply a call's progress or end to its leases."""
        ...


@dataclass(frozen=True, slots=True)
class RedirectConfig:
    """How the interface answers: refusal status, trusted proxies and message limits."""

    refusal_status: RefusalStatus = RefusalStatus.DECISION
    trusted_proxies: TrustedProxies = LOOPBACK
    limits: Limits = DEFAULT_LIMITS

    @classmethod
    def from_settings(cls, settings: Settings) -> RedirectConfig:
        """The configuration the settings ask for."""
        return cls(
            refusal_status=RefusalStatus(settings.sip_refusal_status),
            trusted_proxies=TrustedProxies(tuple(settings.sip_trusted_proxies)),
        )


@dataclass
class SipStats:
    """What one interface received and answered. Plain counters on the hot path; Prometheus
    reads them from every live handler when it scrapes (`callwarden_sip_events_total`,
    `callwarden_sip_responses_total`)."""

    events: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    def count(self, event: str) -> None:
        """Count one event (received, dropped, retransmission...)."""
        self.events[event] += 1

    def answered(self, status: int) -> None:
        """Count one response sent."""
        self.statuses[status] += 1


_LIVE: weakref.WeakSet[RedirectHandler] = weakref.WeakSet()


class _SipCollector(Collector):
    """Exports the counts of every live handler to Prometheus."""

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "callwarden_sip_events",
            "What the SIP redirect interface received and did, by event",
            labels=["event"],
        )
        responses = CounterMetricFamily(
            "callwarden_sip_responses",
            "Responses of the SIP redirect interface, by status",
            labels=["status"],
        )
        event_totals: Counter[str] = Counter()
        status_totals: Counter[int] = Counter()
        for handler in list(_LIVE):
            event_totals.update(handler.stats.events)
            status_totals.update(handler.stats.statuses)
        for event, count in sorted(event_totals.items()):
            events.add_metric([event], count)
        for status, count in sorted(status_totals.items()):
            responses.add_metric([str(status)], count)
        yield events
        yield responses


REGISTRY.register(_SipCollector())


@dataclass(slots=True)
class _Pending:
    """An INVITE whose decision is under way: what a CANCEL needs to answer it 487."""

    incoming: IncomingRequest
    channel: Channel
    top_via: str


class RedirectHandler:
    """Answers SIP requests as a redirect server consulting the admission service."""

    def __init__(
        self,
        admission: Admission,
        config: RedirectConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        table: TransactionTable | None = None,
    ) -> None:
        self.admission = admission
        self.config = config or RedirectConfig()
        self.clock = clock
        self.monotonic = monotonic
        self.table = table or TransactionTable()
        self.stats = SipStats()
        _LIVE.add(self)
        self._pending: dict[ServerTransaction, _Pending] = {}
        self._timers: dict[ServerTransaction, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- entry point ---------------------------------------------------------------------------
    def handle(self, data: bytes, channel: Channel) -> None:
        """Handle one message (a datagram, or one framed from a stream). Never raises."""
        self.stats.count("received")
        try:
            self._handle(data, channel)
        except Exception:  # a bug must not take the listener down; it is logged and counted
            self.stats.count("error")
            log.exception("SIP message handling failed", extra={"source": channel.source[0]})

    @property
    def retransmitting(self) -> int:
        """How many final responses are waiting for their ACK, retransmitted over UDP."""
        return len(self._timers)

    async def idle(self) -> None:
        """Wait until every decision under way has been answered."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop retransmitting and abandon the decisions under way."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _handle(self, data: bytes, channel: Channel) -> None:
        if not data.strip(b" \t\r\n"):
            self.stats.count("keepalive")
            return
        try:
            message = parse_message(data, self.config.limits)
            if isinstance(message, Response):
                self.stats.count("response_ignored")
                return
            incoming = check_request(message)
        except ParseError as exc:
            self._malformed(exc, channel)
            return
        method = incoming.method
        self.stats.count(f"request_{method.lower()}" if method in _COUNTED else "request_other")
        if method == "INVITE":
            self._invite(incoming, channel)
        elif method == "ACK":
            self._ack(incoming)
        elif method == "CANCEL":
            self._cancel(incoming, channel)
        elif method == "OPTIONS":
            self._answer(
                incoming,
                channel,
                200,
                Header("Allow", ALLOWED_METHODS),
                Header("Accept", "application/sdp"),
            )
        else:
            self._answer(incoming, channel, 405, Header("Allow", ALLOWED_METHODS))

    # -- malformed input -------------------------------------------------------------------
    def _malformed(self, exc: ParseError, channel: Channel) -> None:
        request = exc.request
        log.debug("malformed SIP message", extra={"source": channel.source[0], "error": exc.reason})
        if request is None or not answerable(request):
            self.stats.count("dropped")
            return
        via = _top_via(request)
        if request.method == "INVITE" and self._is_emergency(request):
            # Emergency calls are always admitted, even in a request we cannot otherwise use.
            self.stats.count("emergency_unchecked")
            headers = _emergency_redirect(request.uri)
            self._send(channel, respond(request, 302, headers=headers), via, 302)
            return
        self.stats.count("malformed_answered")
        self._send(channel, bad_request(request, exc.status, exc.reason), via, exc.status)

    # -- INVITE --------------------------------------------------------------------------------
    def _invite(self, incoming: IncomingRequest, channel: Channel) -> None:
        now = self.monotonic()
        key = transaction_key(incoming)
        txn = self.table.find(key, now)
        top = self._top_via(incoming, channel)
        if txn is not None:
            self.stats.count("retransmission")
            if txn.response is not None:
                self._send(channel, txn.response, incoming.top_via, None)
            else:
                self._send(channel, reply(incoming, 100, top), incoming.top_via, 100)
            return
        if incoming.to_tag is not None:
            self._answer(incoming, channel, 481)
            return
        txn = self.table.open(key, now)
        if is_emergency_urn(incoming.request.uri):
            self.stats.count("emergency_urn")
            headers = _emergency_redirect(incoming.request.uri)
            self._finish(txn, reply(incoming, 302, top, *headers), 302, channel, incoming)
            return
        try:
            attempt = call_attempt(
                incoming, channel.source[0], self.config.trusted_proxies, self.clock()
            )
        except ParseError as exc:
            if self._is_emergency(incoming.request):
                self.stats.count("emergency_unchecked")
                headers = _emergency_redirect(incoming.request.uri)
                self._finish(txn, reply(incoming, 302, top, *headers), 302, channel, incoming)
                return
            self.stats.count("malformed_answered")
            warning = Header("Warning", f"399 callwarden {quoted(exc.reason)}")
            response = reply(incoming, exc.status, top, warning)
            self._finish(txn, response, exc.status, channel, incoming)
            return
        self._pending[txn] = _Pending(incoming, channel, top)
        task = asyncio.get_running_loop().create_task(self._decide(txn, attempt))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _decide(self, txn: ServerTransaction, attempt: CallAttempt) -> None:
        try:
            decision: Decision | None = await self.admission.decide(attempt)
        except Exception:
            log.exception("admission decision failed", extra={"call_id": attempt.call_id})
            self.stats.count("decision_error")
            decision = None
        self.stats.count("decision")
        pending = self._pending.pop(txn, None)
        if pending is None or txn.cancelled:
            if decision is not None and decision.admit:
                await self._give_back(attempt)
            return
        incoming, channel, top = pending.incoming, pending.channel, pending.top_via
        if decision is None:
            status, headers = self._failure_answer(incoming)
        else:
            status, headers = decision_answer(incoming, decision, self.config.refusal_status)
        self._finish(txn, reply(incoming, status, top, *headers), status, channel, incoming)

    def _failure_answer(self, incoming: IncomingRequest) -> tuple[int, list[Header]]:
        """No decision could be taken: an emergency call is still admitted, anything else gets
        500 so the SIP server falls back to its own failure handling."""
        if self._is_emergency(incoming.request):
            return 302, _emergency_redirect(incoming.request.uri, degraded=True)
        text = quoted("the admission decision failed")
        return 500, [Header("Reason", f"SIP;cause=500;text={text}")]

    def _is_emergency(self, request: Request) -> bool:
        """Whether the Request-URI is an emergency service URN (RFC 5031) or its user part is
        an emergency number in some country."""
        if is_emergency_urn(request.uri):
            return True
        try:
            user = uri_user(request.uri)
        except ParseError:
            return False
        return user is not None and is_emergency_anywhere(self.admission.numbering, user)

    async def _give_back(self, attempt: CallAttempt) -> None:
        """The call was admitted after its INVITE was cancelled: release its leases now."""
        try:
            await self.admission.call_event(
                attempt.call_id,
                CallEvent.CANCELLED,
                tenant_id=attempt.tenant_id,
                source_ip=attempt.source_ip,
            )
        except Exception:
            log.exception("releasing a cancelled call failed", extra={"call_id": attempt.call_id})

    def _finish(
        self,
        txn: ServerTransaction,
        response: bytes,
        status: int,
        channel: Channel,
        incoming: IncomingRequest,
    ) -> None:
        """Send an INVITE's final response, keep it for retransmissions, and over UDP
        retransmit it until the ACK comes."""
        txn.complete(response)
        self._send(channel, response, incoming.top_via, status)
        if not channel.reliable:
            self._retransmit_later(txn, channel, incoming.top_via, T1)

    def _retransmit_later(
        self, txn: ServerTransaction, channel: Channel, via: Via, interval: float
    ) -> None:
        loop = asyncio.get_running_loop()
        self._timers[txn] = loop.call_later(interval, self._retransmit, txn, channel, via, interval)

    def _retransmit(
        self, txn: ServerTransaction, channel: Channel, via: Via, interval: float
    ) -> None:
        """Timer G: send the final response again, at doubling intervals up to T2, until the
        ACK confirms it or Timer H (64*T1) runs out."""
        self._timers.pop(txn, None)
        if txn.phase is not Phase.COMPLETED or txn.response is None:
            return
        if self.monotonic() - txn.opened_at >= 64 * T1:
            return
        try:
            channel.send(txn.response, via)
        except Exception:
            log.exception("retransmitting a response failed")
            return
        self.stats.count("response_retransmitted")
        self._retransmit_later(txn, channel, via, min(2 * interval, T2))

    # -- ACK and CANCEL ------------------------------------------------------------------------
    def _ack(self, incoming: IncomingRequest) -> None:
        txn = self.table.find(transaction_key(incoming), self.monotonic())
        if txn is None:
            self.stats.count("ack_unmatched")
            return
        self.table.confirm(txn, self.monotonic())
        timer = self._timers.pop(txn, None)
        if timer is not None:
            timer.cancel()

    def _cancel(self, incoming: IncomingRequest, channel: Channel) -> None:
        txn = self.table.find(transaction_key(incoming, "INVITE"), self.monotonic())
        if txn is None:
            self._answer(incoming, channel, 481)
            return
        self._answer(incoming, channel, 200)
        pending = self._pending.pop(txn, None)
        if pending is None or txn.response is not None:
            return
        txn.cancelled = True
        response = reply(pending.incoming, 487, pending.top_via)
        self._finish(txn, response, 487, pending.channel, pending.incoming)

    # -- sending -------------------------------------------------------------------------------
    def _answer(
        self, incoming: IncomingRequest, channel: Channel, status: int, *headers: Header
    ) -> None:
        top = self._top_via(incoming, channel)
        self._send(channel, reply(incoming, status, top, *headers), incoming.top_via, status)

    def _top_via(self, incoming: IncomingRequest, channel: Channel) -> str:
        """The top Via as the response carries it (received and rport added if needed)."""
        ip, port = channel.source
        via = with_source(incoming.top_via, ip, port)
        return incoming.vias[0] if via is incoming.top_via else via.serialize()

    def _send(self, channel: Channel, data: bytes, via: Via | None, status: int | None) -> None:
        channel.send(data, via)
        if status is not None:
            self.stats.answered(status)


_COUNTED = frozenset({"INVITE", "ACK", "CANCEL", "OPTIONS", "BYE", "REGISTER"})
"""Methods counted by name; any other is counted as request_other (bounded label values)."""


def _emergency_redirect(uri: str, *, degraded: bool = False) -> list[Header]:
    """A 302's headers for an emergency call admitted without a decision (`degraded` when
    the decision failed)."""
    headers = [Header("Contact", f"<{uri}>"), Header(DECISION_HEADER, "admit")]
    if degraded:
        headers.append(Header(DEGRADED_HEADER, "yes"))
    headers.append(Header(EMERGENCY_HEADER, "yes"))
    return headers


def _top_via(request: Request) -> Via | None:
    """The top Via of a malformed request, if it can be read (for the response address)."""
    for line in request.get_all("Via"):
        for value in split_list(line):
            try:
                return parse_via(value)
            except ParseError:
                return None
    return None
