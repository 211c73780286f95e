"""The evapi messages: what Kamailio sends is checked like the HTTP API's input, and the
verdict carries what Kamailio needs to resume the call (status, duration, Reason header)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from callwarden.adapters.evapi.protocol import (
    AttemptQuestion,
    BadMessage,
    CallEventReport,
    read_message,
    refusal_headers,
    verdict_message,
)
from callwarden.core.admission.attempt import Direction
from callwarden.core.admission.decision import Finding, admitted, refused
from callwarden.services.admission import CallEvent

TENANT = "tn_0123456789abcdef"


def _attempt(**fields: object) -> bytes:
    base: dict[str, object] = {
        "type": "attempt",
        "tindex": 1234,
        "tlabel": 987654321,
        "call_id": "a84b4c76e66710@pbx.example",
        "destination": "02079460123",
        "caller": "+442079460000",
        "source_ip": "192.0.2.10",
        "tenant_id": TENANT,
    }
    base.update(fields)
    return orjson.dumps({k: v for k, v in base.items() if v is not None})


def test_an_attempt_becomes_a_call_attempt_with_its_transaction() -> None:
    message = read_message(_attempt(user_id="us_0123456789abcdef"))

    assert isinstance(message, AttemptQuestion)
    assert (message.tindex, message.tlabel) == (1234, 987654321)
    attempt = message.attempt(at=1_700_000_000.0)
    assert attempt.call_id == "a84b4c76e66710@pbx.example"
    assert attempt.tenant_id == TENANT and attempt.user_id == "us_0123456789abcdef"
    assert attempt.direction is Direction.OUTBOUND
    assert attempt.at == 1_700_000_000.0


def test_fields_kamailio_adds_later_are_ignored() -> None:
    assert isinstance(read_message(_attempt(ruri="sip:x@y")), AttemptQuestion)


def test_an_event_names_the_call_and_its_tenant() -> None:
    message = read_message(
        b'{"type":"event","event":"ended","call_id":"c1","source_ip":"192.0.2.10"}'
    )
    assert isinstance(message, CallEventReport)
    assert message.event is CallEvent.ENDED and message.tenant_id is None


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "hello"}', "unknown message type 'hello'"),
        (b'{"type":"event","event":"exploded","call_id":"c1"}', "event: event"),
    ],
)
def test_a_message_that_cannot_be_acted_on_names_the_problem(payload: bytes, names: str) -> None:
    with pytest.raises(BadMessage, match=names) as caught:
        read_message(payload)
    assert caught.value.tindex is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"destination": None}, "destination"),
        ({"call_id": "bad\ncall"}, "call_id"),
        ({"tenant_id": "someone"}, "tenant_id"),
        ({"source_ip": "not-an-address"}, "source_ip"),
        ({"destination": "1" * 200}, "destination"),
    ],
)
def test_a_malformed_attempt_keeps_its_transaction_and_names_the_field(
    fields: dict[str, object], field: str
) -> None:
    with pytest.raises(BadMessage, match=field) as caught:
        read_message(_attempt(**fields))
    assert (caught.value.tindex, caught.value.tlabel) == (1234, 987654321)


def test_a_malformed_attempt_without_transaction_cannot_be_answered() -> None:
    with pytest.raises(BadMessage) as caught:
        read_message(_attempt(tindex="12", destination=None))
    assert caught.value.tindex is None
    assert caught.value.tlabel == 987654321


def test_admission_verdict_resumes_the_transaction_with_the_maximum_duration() -> None:
    verdict = orjson.loads(verdict_message(7, 8, admitted(3600)))

    assert verdict == {
        "type": "verdict",
        "tindex": 7,
        "tlabel": 8,
        "admit": 1,
        "status": 200,
        "phrase": "OK",
        "max_duration": 3600,
        "headers": "",
        "clause_ids": [],
    }


def test_admission_without_a_limit_sends_zero_duration() -> None:
    assert orjson.loads(verdict_message(1, 2, admitted(None)))["max_duration"] == 0


def test_refusal_verdict_carries_status_phrase_and_reason_header_with_clauses() -> None:
    decision = refused(Finding("concurrent_calls", ("LIM-2",), "limit reached (5 calls)", 486))
    verdict = orjson.loads(verdict_message(7, 8, decision))

    assert (verdict["admit"], verdict["status"], verdict["phrase"]) == (0, 486, "Busy Here")
    assert verdict["headers"] == 'Reason: SIP;cause=486;text="LIM-2: limit reached (5 calls)"'
    assert verdict["clause_ids"] == ["LIM-2"]


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    finding = Finding("attempt_rate", ("LIM-5",), "too many", 503, retry_after_s=0.2)
    headers = refusal_headers(refused(finding)).split("\r\n")

    assert headers[1] == "Retry-After: 1"


@given(st.text(max_size=300))
def test_no_reason_can_break_the_header_or_inject_another(reason: str) -> None:
    headers = refusal_headers(refused(Finding("rule", ("FRD-1",), reason)))

    assert "\r" not in headers and "\n" not in headers
    text = headers.split(';text="', 1)[1]
    assert text.endswith('"')
    body = text[:-1]
    # Every quote or backslash inside the quoted text is escaped.
    i = 0
    while i < len(body):
        if body[i] == "\\":
            assert body[i + 1] in '"\\'
            i += 2
            continue
        assert body[i] != '"'
        i += 1
