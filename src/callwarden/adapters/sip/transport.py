"""UDP and TCP transports of the SIP redirect interface (RFC 3261 section 18), on one port.

UDP: one message per datagram; responses go to the packet's source address, at the port the
top Via names (or the source port when the Via carries `rport`, RFC 3581). TCP: messages are
framed by Content-Length (none means no body); CRLF keep-alives are skipped and a double-CRLF
ping is answered with a CRLF pong (RFC 5626). A stream that cannot be framed (header section
too long, bad Content-Length) gets a 400 when possible and the connection is closed.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

from callwarden.adapters.sip.attempts import normalise_address
from callwarden.adapters.sip.fields import Via
from callwarden.adapters.sip.handler import RedirectConfig, RedirectHandler
from callwarden.adapters.sip.message import Limits
from callwarden.platform import Platform

log = logging.getLogger("callwarden.sip")

DEFAULT_SIP_PORT = 5060
UDP_RECEIVE_BUFFER = 8 * 1024 * 1024
"""Bytes of UDP receive buffer asked for (Linux caps it at net.core.rmem_max): room for the
datagrams that arrive while the event loop is busy, instead of dropping them (a dropped INVITE
costs the SIP server a 500 ms retransmission)."""
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(.*?)[ \t]*\r?$", re.I | re.M)


def _address(peer: Any) -> tuple[str, int]:
    """(normalised IP, port) of a socket peer address tuple."""
    return normalise_address(str(peer[0])), int(peer[1])


class UdpChannel:
    """One datagram's way back."""

    __slots__ = ("_peer", "_transport", "source")
    reliable = False

    def __init__(self, transport: asyncio.DatagramTransport, peer: Any) -> None:
        self._transport = transport
        self._peer = peer
        self.source = _address(peer)

    def send(self, data: bytes, via: Via | None) -> None:
        """Send to the source address; the port is the Via's unless it asked for rport."""
        if self._transport.is_closing():
            return
        port = self._peer[1]
        if via is not None and not via.has("rport"):
            port = via.port or DEFAULT_SIP_PORT
        self._transport.sendto(data, (self._peer[0], port, *self._peer[2:]))


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: RedirectHandler) -> None:
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The loop's datagram transports implement DatagramTransport without subclassing it.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.transport is not None:
            self.handler.handle(data, UdpChannel(self.transport, addr))

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error", extra={"error": str(exc)})


class TcpChannel:
    """One TCP connection's way back."""

    __slots__ = ("_transport", "source")
    reliable = True

    def __init__(self, transport: asyncio.WriteTransport, peer: Any) -> None:
        self._transport = transport
        self.source = _address(peer)

    def send(self, data: bytes, via: Via | None) -> None:
        """Write to the connection the request came on (if it is still open)."""
        if not self._transport.is_closing():
            self._transport.write(data)


class _TcpProtocol(asyncio.Protocol):
    """Frames messages out of one TCP connection."""

    def __init__(
        self, handler: RedirectHandler, limits: Limits, connections: set[asyncio.Transport]
    ) -> None:
        self.handler = handler
        self.limits = limits
        self.connections = connections
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.channel: TcpChannel | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.connections.add(self.transport)
        self.channel = TcpChannel(self.transport, transport.get_extra_info("peername"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.connections.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            self._frame()
        except Exception:  # framing must never take the server down
            log.exception("TCP framing failed")
            self._close()

    def _frame(self) -> None:
        transport, channel = self.transport, self.channel
        assert transport is not None and channel is not None
        while self.buffer and not transport.is_closing():
            if self.buffer.startswith(b"\r\n\r\n"):
                transport.write(b"\r\n")  # RFC 5626 keep-alive pong
                del self.buffer[:4]
                continue
            if self.buffer.startswith(b"\r\n"):
                if len(self.buffer) < 4 and b"\r\n\r\n".startswith(bytes(self.buffer)):
                    return  # perhaps the start of a ping: wait for the rest
                del self.buffer[:2]
                continue
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > self.limits.max_head_bytes:
                    self.handler.stats.count("dropped")
                    self._close()
                return
            head_end = end + 4
            length = _content_length(bytes(self.buffer[:end]))
            if length is None or length > self.limits.max_body_bytes:
                # Unframeable: the handler answers the head (400 or 513) if it can; then close.
                self.handler.handle(bytes(self.buffer[:head_end]), channel)
                self._close()
                return
            total = head_end + length
            if len(self.buffer) < total:
                return
            message = bytes(self.buffer[:total])
            del self.buffer[:total]
            self.handler.handle(message, channel)

    def _close(self) -> None:
        self.buffer.clear()
        if self.transport is not None:
            self.transport.close()


def _content_length(head: bytes) -> int | None:
    """The Content-Length of a header section: 0 when absent, None when unusable."""
    values = _CONTENT_LENGTH.findall(head)
    if not values:
        return 0
    if len(values) > 1 or not values[0].isdigit() or len(values[0]) > 10:
        return None
    return int(values[0])


@dataclass(frozen=True, slots=True)
class SipEndpoint:
    """A running SIP redirect interface: where it listens and its handler (with stats)."""

    host: str
    port: int
    handler: RedirectHandler


async def _bind(
    handler: RedirectHandler, host: str, port: int, connections: set[asyncio.Transport]
) -> tuple[asyncio.DatagramTransport, asyncio.Server]:
    """Bind UDP and TCP on one port; with port 0, retry until both get the same free port."""
    loop = asyncio.get_running_loop()
    for _ in range(20):
        udp, _protocol = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(handler), local_addr=(host, port)
        )
        _enlarge_receive_buffer(udp)
        bound = int(udp.get_extra_info("sockname")[1])
        try:
            tcp = await loop.create_server(
                lambda: _TcpProtocol(handler, handler.config.limits, connections), host, bound
            )
        except OSError as exc:
            udp.close()
            if port != 0 or exc.errno != errno.EADDRINUSE:
                raise
            continue
        return udp, tcp
    raise OSError(errno.EADDRINUSE, "no port free for both UDP and TCP")


def _enlarge_receive_buffer(udp: asyncio.DatagramTransport) -> None:
    """Ask for `UDP_RECEIVE_BUFFER` bytes of receive buffer; log what the kernel granted."""
    sock = udp.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
    except OSError as exc:
        log.warning("could not enlarge the UDP receive buffer", extra={"error": str(exc)})
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    log.debug("UDP receive buffer", extra={"bytes": granted})


@asynccontextmanager
async def serve_sip(
    platform: Platform, host: str | None = None, port: int | None = None
) -> AsyncIterator[SipEndpoint]:
    """Run the SIP redirect interface over `platform` for the duration of the block.

    `host` and `port` default to the settings (`sip_host`, `sip_port`); port 0 picks a free
    port, the same for UDP and TCP, given back as `SipEndpoint.port`.
    """
    settings = platform.settings
    bind_host = host if host is not None else settings.sip_host
    bind_port = port if port is not None else (settings.sip_port or DEFAULT_SIP_PORT)
    handler = RedirectHandler(platform.admission, RedirectConfig.from_settings(settings))
    connections: set[asyncio.Transport] = set()
    udp, tcp = await _bind(handler, bind_host, bind_port, connections)
    endpoint = SipEndpoint(bind_host, int(udp.get_extra_info("sockname")[1]), handler)
    try:
        yield endpoint
    finally:
        tcp.close()
        for connection in list(connections):
            connection.close()
        udp.close()
        await handler.aclose()


async def run_sip(platform: Platform) -> None:
    """Serve the SIP redirect interface on the configured address until cancelled."""
    async with serve_sip(platform) as endpoint:
        log.info(
            "SIP redirect interface listening",
            extra={"host": endpoint.host, "port": endpoint.port, "transports": "udp,tcp"},
        )
        await asyncio.Event().wait()
