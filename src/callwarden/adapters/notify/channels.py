"""The notification channels a process offers, built from its settings."""

from __future__ import annotations

from callwarden.adapters.notify.email import EmailSender, SmtpServer
from callwarden.adapters.notify.webhook import WebhookSender
from callwarden.services.notifications import Channel, Sender
from callwarden.settings import Settings


def channels_from_settings(settings: Settings) -> dict[Channel, Sender]:
    """Webhooks always; e-mail only when ``smtp_url`` names a server."""
    channels: dict[Channel, Sender] = {
        Channel.WEBHOOK: WebhookSender(
            timeout_s=settings.webhook_timeout_s, max_attempts=settings.webhook_max_attempts
        )
    }
    if settings.smtp_url:
        channels[Channel.EMAIL] = EmailSender(
            SmtpServer.from_url(settings.smtp_url, starttls=settings.smtp_starttls),
            settings.smtp_from,
            timeout_s=settings.smtp_timeout_s,
        )
    return channels
