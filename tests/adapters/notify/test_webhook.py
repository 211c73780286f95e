"""Signed webhooks against a real local HTTP receiver: signatures, retries, Retry-After."""

from __future__ import annotations

import json
import random
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.adapters.notify.notify_receivers import http_receiver, notification, subscription

from callwarden.adapters.notify.webhook import (
    Backoff,
    WebhookSender,
    retry_after_s,
    sign,
    verify_signature,
)

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000


class RecordedPauses:
    """The sender's pauses, recorded instead of waited for."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


def _sender(pauses: RecordedPauses, **kw: object) -> WebhookSender:
    values: dict[str, object] = {
        "timeout_s": 5.0,
        "max_attempts": 4,
        "backoff": Backoff(base_s=0.5, max_s=30.0),
        "sleep": pauses,
        "rng": random.Random(7),
    }
    values.update(kw)
    return WebhookSender(**values)  # type: ignore[arg-type]


async def test_a_delivered_webhook_carries_a_signature_the_receiver_verifies() -> None:
    with http_receiver() as receiver:
        result = await _sender(RecordedPauses()).send(subscription(receiver.url), notification())
    assert result.delivered
    assert result.attempts == 1
    (request,) = receiver.received
    assert verify_signature("whsec_test", request.headers["x-callwarden-signature"], request.body)
    assert not verify_signature(
        "whsec_other", request.headers["x-callwarden-signature"], request.body
    )
    assert request.headers["x-callwarden-event"] == "spend.threshold"
    assert request.headers["x-callwarden-delivery"] == "dl_00000000000000aa"
    assert request.headers["content-type"] == "application/json"


async def test_the_body_names_the_event_tenant_and_clauses() -> None:
    with http_receiver() as receiver:
        await _sender(RecordedPauses()).send(subscription(receiver.url), notification())
    body = json.loads(receiver.received[0].body)
    assert body["event"] == "spend.threshold"
    assert body["id"] == "dl_00000000000000aa"
    assert body["tenant"] == {"id": "tn_0123456789abcdef", "name": "Acme Contact Ltd"}
    assert body["clause_ids"] == ["LIM-1", "LIM-3"]
    assert body["details"]["mark"] == "hard:80"
    assert body["seq"] == 42


async def test_a_500_is_retried_until_the_receiver_accepts() -> None:
    pauses = RecordedPauses()
    with http_receiver((500, {}), (500, {})) as receiver:
        result = await _sender(pauses).send(subscription(receiver.url), notification())
    assert result.delivered
    assert result.attempts == 3
    assert len(receiver.received) == 3
    assert len(pauses.pauses) == 2
    ids = {r.headers["x-callwarden-delivery"] for r in receiver.received}
    assert ids == {"dl_00000000000000aa"}
    for request in receiver.received:
        assert verify_signature(
            "whsec_test", request.headers["x-callwarden-signature"], request.body
        )


async def test_pauses_grow_exponentially_with_jitter() -> None:
    pauses = RecordedPauses()
    with http_receiver(*[(503, {})] * 4) as receiver:
        await _sender(pauses).send(subscription(receiver.url), notification())
    assert len(pauses.pauses) == 3
    for retry, pause in enumerate(pauses.pauses, start=1):
        ceiling = 0.5 * 2 ** (retry - 1)
        assert ceiling / 2 <= pause <= ceiling


async def test_delivery_gives_up_after_the_attempt_limit() -> None:
    pauses = RecordedPauses()
    with http_receiver(*[(502, {})] * 10) as receiver:
        result = await _sender(pauses, max_attempts=3).send(
            subscription(receiver.url), notification()
        )
    assert not result.delivered
    assert result.attempts == 3
    assert len(receiver.received) == 3
    assert result.last_error is not None and result.last_error.startswith("HTTP 502")


async def test_retry_after_in_seconds_sets_the_pause_before_the_next_attempt() -> None:
    pauses = RecordedPauses()
    with http_receiver((429, {"Retry-After": "7"})) as receiver:
        result = await _sender(pauses).send(subscription(receiver.url), notification())
    assert result.delivered
    assert result.attempts == 2
    assert pauses.pauses == [7.0]


async def test_retry_after_never_holds_a_delivery_past_the_longest_pause() -> None:
    pauses = RecordedPauses()
    with http_receiver((503, {"Retry-After": "86400"})) as receiver:
        await _sender(pauses).send(subscription(receiver.url), notification())
    assert pauses.pauses == [30.0]


async def test_a_client_error_other_than_429_is_not_retried() -> None:
    pauses = RecordedPauses()
    with http_receiver((410, {})) as receiver:
        result = await _sender(pauses).send(subscription(receiver.url), notification())
    assert not result.delivered
    assert result.attempts == 1
    assert pauses.pauses == []
    assert len(receiver.received) == 1


async def test_an_unreachable_receiver_is_retried_then_recorded_as_failed() -> None:
    with http_receiver() as receiver:
        url = receiver.url
    pauses = RecordedPauses()
    result = await _sender(pauses, max_attempts=2).send(subscription(url), notification())
    assert not result.delivered
    assert result.attempts == 2
    assert len(pauses.pauses) == 1
    assert result.last_error is not None and "Connect" in result.last_error


def test_retry_after_reads_an_http_date() -> None:
    assert retry_after_s(formatdate(NOW + 90, usegmt=True), NOW) == pytest.approx(90.0)
    assert retry_after_s(formatdate(NOW - 90, usegmt=True), NOW) == 0.0
    assert retry_after_s("soon", NOW) is None
    assert retry_after_s(None, NOW) is None


@given(st.text(min_size=1), st.binary(), st.integers(0, 2**40))
def test_a_signature_verifies_for_its_secret_and_body(secret: str, body: bytes, t: int) -> None:
    assert verify_signature(secret, sign(secret, t, body), body, now=t)


@given(st.text(min_size=1), st.binary(), st.binary())
def test_a_signature_fails_for_any_other_body(secret: str, body: bytes, other: bytes) -> None:
    if other != body:
        assert not verify_signature(secret, sign(secret, NOW, body), other, now=NOW)


@given(st.integers(301, 10**9))
def test_a_signature_older_than_the_tolerance_fails(age: int) -> None:
    header = sign("whsec_test", NOW, b"{}")
    assert not verify_signature("whsec_test", header, b"{}", now=NOW + age)
    assert verify_signature("whsec_test", header, b"{}", now=NOW + 300)


@given(st.text(max_size=80))
def test_a_malformed_signature_header_is_refused_not_raised(header: str) -> None:
    assert not verify_signature("whsec_test", header, b"{}", now=NOW)


def test_a_signature_from_either_of_two_secrets_verifies_during_rotation() -> None:
    old = sign("whsec_old", NOW, b"{}")
    new = sign("whsec_new", NOW, b"{}")
    both = f"{old},v1={new.rpartition('v1=')[2]}"
    assert verify_signature("whsec_new", both, b"{}", now=NOW)
    assert verify_signature("whsec_old", both, b"{}", now=NOW)
