"""Building SIP requests for the tests, and real UDP and TCP clients that read the answers."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

from callwarden.adapters.sip.message import Response, parse_message

_numbers = itertools.count(1)


def request(
    method: str,
    uri: str = "sip:+442079460123@gw.example;user=phone",
    *,
    port: int = 5060,
    transport: str = "UDP",
    branch: str | None = None,
    call_id: str | None = None,
    from_uri: str = "sip:+442079460000@pbx.example",
    to_uri: str | None = None,
    cseq: int = 1,
    cseq_method: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """A well-formed request from 127.0.0.1:`port`, unique per call unless told otherwise."""
    n = next(_numbers)
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport} 127.0.0.1:{port};branch={branch or f'z9hG4bK-t{n}'}",
        "Max-Forwards: 70",
        f"From: <{from_uri}>;tag=f{n}",
        f"To: <{to_uri or uri}>",
        f"Call-ID: {call_id or f'call-{n}@test'}",
        f"CSeq: {cseq} {cseq_method or method}",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines += [f"Content-Length: {len(body)}", "", ""]
    return "\r\n".join(lines).encode() + body


def ack_for(invite: bytes, response: Response) -> bytes:
    """The ACK of a non-2xx final response: the INVITE's Via, From, Call-ID and Request-URI,
    the response's To (with its tag), CSeq method ACK (RFC 3261 section 17.1.1.3)."""
    parsed = parse_message(invite)
    lines = [
        f"ACK {parsed.uri} SIP/2.0",  # type: ignore[union-attr]
        f"Via: {parsed.get('Via')}",
        "Max-Forwards: 70",
        f"From: {parsed.get('From')}",
        f"To: {response.get('To')}",
        f"Call-ID: {parsed.get('Call-ID')}",
        f"CSeq: {(parsed.get('CSeq') or '').split()[0]} ACK",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def cancel_for(invite: bytes) -> bytes:
    """The CANCEL of an INVITE: same Request-URI, Via, From, To, Call-ID and CSeq number."""
    parsed = parse_message(invite)
    lines = [
        f"CANCEL {parsed.uri} SIP/2.0",  # type: ignore[union-attr]
        f"Via: {parsed.get('Via')}",
        "Max-Forwards: 70",
        f"From: {parsed.get('From')}",
        f"To: {parsed.get('To')}",
        f"Call-ID: {parsed.get('Call-ID')}",
        f"CSeq: {(parsed.get('CSeq') or '').split()[0]} CANCEL",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def response_of(data: bytes) -> Response:
    """Parse bytes that must be a response."""
    message = parse_message(data)
    assert isinstance(message, Response), data
    return message


@dataclass
class _Inbox(asyncio.DatagramProtocol):
    received: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)


class UdpClient:
    """A UDP socket on loopback that sends requests and collects whatever comes back."""

    def __init__(self, transport: asyncio.DatagramTransport, inbox: _Inbox, server: int):
        self.transport = transport
        self.inbox = inbox
        self.server = server
        self.port = int(transport.get_extra_info("sockname")[1])

    @classmethod
    async def open(cls, server_port: int) -> UdpClient:
        """A client bound to a free loopback port."""
        loop = asyncio.get_running_loop()
        transport, inbox = await loop.create_datagram_endpoint(_Inbox, local_addr=("127.0.0.1", 0))
        return cls(transport, inbox, server_port)  # type: ignore[arg-type]

    def send(self, data: bytes) -> None:
        """Send one datagram to the server."""
        self.transport.sendto(data, ("127.0.0.1", self.server))

    async def receive(self, timeout: float = 5.0) -> bytes:
        """The next datagram from the server."""
        return await asyncio.wait_for(self.inbox.received.get(), timeout)

    async def ask(self, data: bytes) -> Response:
        """Send a request and parse the next datagram as its response."""
        self.send(data)
        return response_of(await self.receive())

    async def final(self, data: bytes) -> Response:
        """Send a request and return its first final (non-1xx) response."""
        self.send(data)
        while True:
            answer = response_of(await self.receive())
            if answer.status >= 200:
                return answer

    def close(self) -> None:
        """Close the socket."""
        self.transport.close()


class TcpClient:
    """A TCP connection to the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.port = int(writer.get_extra_info("sockname")[1])

    @classmethod
    async def open(cls, server_port: int) -> TcpClient:
        """A connection to the server on loopback."""
        reader, writer = await asyncio.open_connection("127.0.0.1", server_port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        """Write bytes to the stream."""
        self.writer.write(data)
        await self.writer.drain()

    async def receive(self, timeout: float = 5.0) -> Response:
        """Read one response framed by its Content-Length."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await asyncio.wait_for(self.reader.readexactly(length), timeout)
        return response_of(head + body)

    async def close(self) -> None:
        """Close the connection."""
        self.writer.close()
        await self.writer.wait_closed()
