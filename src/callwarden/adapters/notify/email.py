"""E-mail notifications over SMTP, with the standard library's smtplib in a worker thread.

The server is named by a URL: ``smtp://host:port`` (plain, upgraded with STARTTLS when asked)
or ``smtps://host:port`` (TLS from the first byte); ``user:password@`` before the host logs in.
The message is plain text naming the tenant, the event and the clauses behind it. A refused
connection, a dropped one or a temporary (4xx) answer is tried again after a pause; a permanent
(5xx) refusal, such as an unknown recipient, ends the delivery at once.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Final
from urllib.parse import unquote, urlsplit

import anyio
import anyio.to_thread

from callwarden.core.clauses import CATALOGUE
from callwarden.services.notifications import Notification, SendResult, Subscription

DEFAULT_PORTS: Final[dict[str, int]] = {"smtp": 25, "smtps": 465}

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how to hand mail over."""

    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str, *, starttls: bool = False) -> SmtpServer:
        """Read ``smtp://[user:password@]host[:port]`` or ``smtps://...``; `ValueError` names
        what is wrong with any other URL."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS:
            raise ValueError(f"smtp_url must start with smtp:// or smtps://, not {url!r}")
        if not parts.hostname:
            raise ValueError("smtp_url names no host")
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        return cls(
            host=parts.hostname,
            port=port,
            implicit_tls=parts.scheme == "smtps",
            starttls=starttls and parts.scheme == "smtp",
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


def subject_of(notification: Notification) -> str:
    """The message's subject: the event and whose it is."""
    whose = notification.tenant_name or notification.tenant_id or "all tenants"
    return f"[callwarden] {notification.event}: {whose}"


def text_of(notification: Notification) -> str:
    """The plain-text body: the tenant, the event, what happened, and the clauses cited."""
    tenant = (
        f"{notification.tenant_name} ({notification.tenant_id})"
        if notification.tenant_name
        else notification.tenant_id or "(no tenant: a platform-wide event)"
    )
    lines = [
        f"Event:    {notification.event}",
        f"Tenant:   {tenant}",
        f"Subject:  {notification.subject_type} {notification.subject_id}",
        f"When:     {notification.at.isoformat()}",
        f"By:       {notification.actor}",
    ]
    if notification.reason:
        lines.append(f"Reason:   {notification.reason}")
    if notification.seq is not None:
        lines.append(f"Audit:    entry {notification.seq}")
    lines.append("")
    if notification.clause_ids:
        lines.append("Clauses:")
        for clause_id in notification.clause_ids:
            clause = CATALOGUE.get(clause_id)
            lines.append(f"  {clause_id}: {clause.summary}" if clause else f"  {clause_id}")
    else:
        lines.append("Clauses:  none cited")
    if notification.details:
        lines.append("")
        lines.append("Details:")
        for key, value in sorted(notification.details.items()):
            lines.append(f"  {key}: {json.dumps(value, ensure_ascii=False)}")
    lines.append("")
    lines.append(f"Delivery {notification.delivery_id}")
    return "\n".join(lines) + "\n"


def message_of(sender: str, recipient: str, notification: Notification) -> EmailMessage:
    """The e-mail for one notification."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject_of(notification)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=notification.delivery_id)
    message["X-Callwarden-Event"] = notification.event
    message["X-Callwarden-Delivery"] = notification.delivery_id
    message.set_content(text_of(notification))
    return message


def _temporary(exc: Exception) -> bool:
    """True for faults worth another attempt: the connection, or a 4xx answer."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(400 <= code < 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, smtplib.SMTPServerDisconnected | OSError)


class EmailSender:
    """Delivers notifications to e-mail subscriptions through one SMTP server."""

    def __init__(
        self,
        server: SmtpServer,
        sender: str,
        *,
        timeout_s: float = 10.0,
        max_attempts: int = 3,
        retry_pause_s: float = 5.0,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.server = server
        self.sender = sender
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.retry_pause_s = retry_pause_s
        self.sleep = sleep

    def _deliver(self, message: EmailMessage) -> None:
        server = self.server
        context = ssl.create_default_context()
        client: smtplib.SMTP
        if server.implicit_tls:
            client = smtplib.SMTP_SSL(
                server.host, server.port, timeout=self.timeout_s, context=context
            )
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=self.timeout_s)
        with client:
            client.ehlo()
            if server.starttls:
                client.starttls(context=context)
                client.ehlo()
            if server.username is not None:
                client.login(server.username, server.password or "")
            client.send_message(message)

    async def send(self, subscription: Subscription, notification: Notification) -> SendResult:
        """Hand the message to the SMTP server, trying again after temporary faults."""
        message = message_of(self.sender, subscription.target, notification)
        last_error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                await anyio.to_thread.run_sync(self._deliver, message)
            except (smtplib.SMTPException, OSError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                if not _temporary(exc):
                    return SendResult(delivered=False, attempts=attempt, last_error=last_error)
            else:
                return SendResult(delivered=True, attempts=attempt)
            if attempt < self.max_attempts:
                await self.sleep(self.retry_pause_s * 2 ** (attempt - 1))
        return SendResult(delivered=False, attempts=self.max_attempts, last_error=last_error)
