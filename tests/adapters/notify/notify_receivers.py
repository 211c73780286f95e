"""Real local receivers for notification tests: an HTTP server and an SMTP server on port 0."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from callwarden.services.notifications import Channel, Notification, Subscription

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """Answers each POST with the next scripted (status, headers) and records the request;
    once the script runs out it answers 200."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> tuple[int, dict[str, str]]:
        with self.lock:
            return self.script.pop(0) if self.script else (200, {})


@contextmanager
def http_receiver(*script: tuple[int, dict[str, str]]) -> Iterator[HttpReceiver]:
    """A webhook receiver on 127.0.0.1 and a free port, for the duration of the block."""
    receiver = HttpReceiver(script=list(script))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
            status, headers = receiver.answer()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/callwarden"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def subscription(
    target: str, *, channel: Channel = Channel.WEBHOOK, secret: str | None = "whsec_test"
) -> Subscription:
    """A subscription to every event, for sender tests."""
    return Subscription(
        id="ns_0123456789abcdef",
        channel=channel,
        target=target,
        actions=("*",),
        tenant_id="tn_0123456789abcdef",
        created_by="system",
        created_at=T0,
        last_seq=0,
        secret=secret,
    )


def notification(
    event: str = "spend.threshold", delivery_id: str = "dl_00000000000000aa"
) -> Notification:
    """A spend alert as the follower builds it."""
    return Notification(
        delivery_id=delivery_id,
        event=event,
        seq=42,
        at=T0,
        tenant_id="tn_0123456789abcdef",
        tenant_name="Acme Contact Ltd",
        subject_type="tenant",
        subject_id="tn_0123456789abcdef",
        actor="system",
        reason="the month's charges reached hard limit 80%",
        clause_ids=("LIM-1", "LIM-3"),
        details={"month": "2026-11", "mark": "hard:80", "settled_minor": 8000, "currency": "EUR"},
    )
