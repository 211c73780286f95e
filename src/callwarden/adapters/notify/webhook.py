"""Signed webhooks: a notification POSTed as JSON, signed with HMAC-SHA256, retried with backoff.

Every attempt carries three headers:

- ``X-Callwarden-Signature: t=<unix seconds>,v1=<hex>``, where the hex is HMAC-SHA256 with the
  subscription's secret over ``"<t>.<body>"`` (the timestamp binds the signature to the moment
  it was made, so a captured request cannot be replayed later);
- ``X-Callwarden-Event``: the event, e.g. ``spend.threshold``;
- ``X-Callwarden-Delivery``: the delivery id, the same on every attempt and every redelivery of
  one event to one subscription, so a receiver can drop duplicates.

A network error, a 5xx or a 429 is retried after an exponentially growing, jittered pause (a
``Retry-After`` header in seconds or as an HTTP date is honoured, up to the longest pause); any
other answer, or the last failed attempt, ends the delivery. Each attempt is signed anew.

Receivers check a request with :func:`verify_signature`::

    from callwarden.adapters.notify.webhook import verify_signature

    ok = verify_signature(secret, request.headers["X-Callwarden-Signature"], raw_body)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Final

import anyio
import httpx

from callwarden.services.notifications import Notification, SendResult, Subscription

SIGNATURE_HEADER: Final[str] = "X-Callwarden-Signature"
EVENT_HEADER: Final[str] = "X-Callwarden-Event"
DELIVERY_HEADER: Final[str] = "X-Callwarden-Delivery"
DEFAULT_TOLERANCE_S: Final[int] = 300
"""How old a signature :func:`verify_signature` accepts by default (5 minutes)."""
_RETRIED: Final[frozenset[int]] = frozenset({429, 500, 502, 503, 504})
_ERROR_TEXT: Final[int] = 200
"""Characters of an error answer's body kept in the delivery log."""

Sleep = Callable[[float], Awaitable[None]]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Callwarden-Signature`` value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True when `header` (an ``X-Callwarden-Signature`` value) signs `body` with `secret` and
    was made at most `tolerance_s` seconds from `now` (default: the current time).

    For receivers: pass the raw request body, before any JSON parsing, since re-serialised JSON
    need not match byte for byte. Several ``v1=`` parts are accepted (one matching is enough),
    so a sender may sign with an old and a new secret while they are rotated.
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).rpartition("v1=")[2]
    return any(hmac.compare_digest(expected, c) for c in candidates)


def retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delta seconds or an HTTP date); None when
    it is absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Pauses between attempts: ``base_s * 2**n`` with full jitter, at most ``max_s``."""

    base_s: float = 1.0
    max_s: float = 60.0

    def pause(self, retry: int, rng: random.Random) -> float:
        """The pause before retry number `retry` (1 for the first retry)."""
        ceiling = min(self.max_s, self.base_s * 2 ** (retry - 1))
        return rng.uniform(ceiling / 2, ceiling)


class WebhookSender:
    """Delivers notifications to webhook subscriptions over HTTP(S)."""

    def __init__(
        self,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 5,
        backoff: Backoff | None = None,
        sleep: Sleep = anyio.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.clock = clock
        self.rng = rng or random.Random()
        self.transport = transport

    async def send(self, subscription: Subscription, notification: Notification) -> SendResult:
        """POST `notification` to the subscription's URL until it is accepted (2xx) or the
        attempts run out; never raises for the receiver's faults."""
        body = json.dumps(notification.payload(), ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8"
        )
        secret = subscription.secret or ""
        last_error = ""
        async with httpx.AsyncClient(
            timeout=self.timeout_s, transport=self.transport, follow_redirects=False
        ) as client:
            for attempt in range(1, self.max_attempts + 1):
                wait: float | None = None
                headers = {
                    "Content-Type": "application/json",
                    "User-Agent": "callwarden-webhook",
                    SIGNATURE_HEADER: sign(secret, int(self.clock()), body),
                    EVENT_HEADER: notification.event,
                    DELIVERY_HEADER: notification.delivery_id,
                }
                try:
                    response = await client.post(subscription.target, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    last_error = f"{type(exc).__name__}: {exc}".rstrip(": ")
                else:
                    if 200 <= response.status_code < 300:
                        return SendResult(delivered=True, attempts=attempt)
                    last_error = f"HTTP {response.status_code}: {response.text[:_ERROR_TEXT]}"
                    if response.status_code not in _RETRIED:
                        return SendResult(delivered=False, attempts=attempt, last_error=last_error)
                    wait = retry_after_s(response.headers.get("retry-after"), self.clock())
                if attempt == self.max_attempts:
                    break
                pause = self.backoff.pause(attempt, self.rng)
                if wait is not None:
                    pause = min(max(pause, wait), self.backoff.max_s)
                await self.sleep(pause)
        return SendResult(delivered=False, attempts=self.max_attempts, last_error=last_error)
