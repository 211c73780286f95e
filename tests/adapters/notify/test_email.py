"""E-mail notifications handed to a real local SMTP server (aiosmtpd) on a free port."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from email.message import Message

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from tests.adapters.notify.notify_receivers import notification, subscription

from callwarden.adapters.notify.email import EmailSender, SmtpServer, text_of
from callwarden.services.notifications import Channel

pytestmark = pytest.mark.anyio


@dataclass
class Mailbox:
    """An SMTP handler that keeps every message; `refuse_data` answers the first DATA commands
    with the given replies, `refuse_rcpt` every RCPT TO with one."""

    messages: list[tuple[list[str], Message]] = field(default_factory=list)
    refuse_data: list[str] = field(default_factory=list)
    refuse_rcpt: str | None = None
    port: int = 0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.refuse_rcpt is not None:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_data:
            return self.refuse_data.pop(0)
        content = envelope.content
        raw = content if isinstance(content, bytes) else (content or "").encode()
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(raw)))
        return "250 Message accepted"


@asynccontextmanager
async def smtp_server(mailbox: Mailbox) -> AsyncIterator[Mailbox]:
    """aiosmtpd's SMTP protocol listening on 127.0.0.1 and a free port of this event loop."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(mailbox), "127.0.0.1", 0)
    mailbox.port = server.sockets[0].getsockname()[1]
    try:
        yield mailbox
    finally:
        server.close()
        await server.wait_closed()


class RecordedPauses:
    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


def _sender(port: int, pauses: RecordedPauses, **kw: object) -> EmailSender:
    return EmailSender(
        SmtpServer.from_url(f"smtp://127.0.0.1:{port}"),
        "callwarden@noc.example",
        sleep=pauses,
        retry_pause_s=1.0,
        **kw,  # type: ignore[arg-type]
    )


async def test_a_notification_arrives_as_plain_text_naming_tenant_event_and_clauses() -> None:
    async with smtp_server(Mailbox()) as box:
        result = await _sender(box.port, RecordedPauses()).send(
            subscription("fraud-desk@acme.example", channel=Channel.EMAIL, secret=None),
            notification(),
        )
    assert result.delivered
    assert result.attempts == 1
    ((recipients, message),) = box.messages
    assert recipients == ["fraud-desk@acme.example"]
    assert message["From"] == "callwarden@noc.example"
    assert message["Subject"] == "[callwarden] spend.threshold: Acme Contact Ltd"
    assert message["X-Callwarden-Delivery"] == "dl_00000000000000aa"
    assert message.get_content_type() == "text/plain"
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    text = body.decode()
    assert "Acme Contact Ltd (tn_0123456789abcdef)" in text
    assert "Event:    spend.threshold" in text
    assert "LIM-1:" in text and "LIM-3:" in text
    assert '"hard:80"' in text


async def test_a_temporary_refusal_is_tried_again() -> None:
    box = Mailbox(refuse_data=["451 4.3.0 try again later"])
    pauses = RecordedPauses()
    async with smtp_server(box):
        result = await _sender(box.port, pauses).send(
            subscription("a@acme.example", channel=Channel.EMAIL, secret=None), notification()
        )
    assert result.delivered
    assert result.attempts == 2
    assert pauses.pauses == [1.0]
    assert len(box.messages) == 1


async def test_a_permanent_refusal_ends_the_delivery_at_once() -> None:
    box = Mailbox(refuse_rcpt="550 5.1.1 no such user")
    pauses = RecordedPauses()
    async with smtp_server(box):
        result = await _sender(box.port, pauses).send(
            subscription("nobody@acme.example", channel=Channel.EMAIL, secret=None),
            notification(),
        )
    assert not result.delivered
    assert result.attempts == 1
    assert pauses.pauses == []
    assert result.last_error is not None and "no such user" in result.last_error


async def test_an_unreachable_server_is_retried_up_to_the_limit() -> None:
    async with smtp_server(Mailbox()) as box:
        port = box.port
    pauses = RecordedPauses()
    result = await _sender(port, pauses, max_attempts=3).send(
        subscription("a@acme.example", channel=Channel.EMAIL, secret=None), notification()
    )
    assert not result.delivered
    assert result.attempts == 3
    assert pauses.pauses == [1.0, 2.0]


def test_the_smtp_url_gives_host_port_tls_and_login() -> None:
    plain = SmtpServer.from_url("smtp://mail.example:2525", starttls=True)
    assert (plain.host, plain.port, plain.starttls, plain.implicit_tls) == (
        "mail.example",
        2525,
        True,
        False,
    )
    tls = SmtpServer.from_url("smtps://noc%40x.example:p%40ss@mail.example")
    assert (tls.port, tls.implicit_tls, tls.username, tls.password) == (
        465,
        True,
        "noc@x.example",
        "p@ss",
    )


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "mail.example:25"])
def test_an_smtp_url_of_another_kind_is_refused_with_its_reason(url: str) -> None:
    with pytest.raises(ValueError, match="smtp"):
        SmtpServer.from_url(url)


def test_a_platform_wide_event_says_so_in_place_of_a_tenant() -> None:
    text = text_of(replace(notification(), tenant_id=None, tenant_name=None, clause_ids=()))
    assert "Tenant:   (no tenant: a platform-wide event)" in text
    assert "Clauses:  none cited" in text
