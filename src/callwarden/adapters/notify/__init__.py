"""Notification channels: signed webhooks over HTTP and e-mail over SMTP."""
