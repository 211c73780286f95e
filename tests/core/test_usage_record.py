"""The usage record's own checks: aware UTC times in order, answer facts, keys and kinds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from callwarden.core.admission.attempt import Direction
from callwarden.core.errors import InvalidInput
from callwarden.core.usage.record import (
    CallRecord,
    Disposition,
    LoginRecord,
    MessageRecord,
    UsageError,
    UsageKind,
)

START = datetime(2024, 3, 12, 9, 0, tzinfo=UTC)


def call(**changes: object) -> CallRecord:
    values: dict[str, object] = {
        "call_id": "c-1",
        "direction": Direction.OUTBOUND,
        "callee": "+442079460123",
        "started_at": START,
        "answered_at": START + timedelta(seconds=5),
        "ended_at": START + timedelta(seconds=65),
        "duration_s": 60,
        "disposition": Disposition.ANSWERED,
        "source_format": "callwarden-json",
    }
    values.update(changes)
    return CallRecord(**values)  # type: ignore[arg-type]


def test_a_call_record_is_keyed_by_call_id_and_leg() -> None:
    assert call().key == ("c-1", "a")
    assert call(leg="b:2").key == ("c-1", "b:2")
    assert call().kind is UsageKind.CALL


def test_message_and_login_records_have_their_own_kind_and_key() -> None:
    message = MessageRecord(
        message_id="m-1",
        direction=Direction.OUTBOUND,
        recipient="+442079460124",
        sent_at=START,
        status="delivered",
        source_format="callwarden-json",
    )
    login = LoginRecord(
        event_id="l-1", at=START, success=True, method="password", source_format="callwarden-json"
    )
    assert (message.kind, message.key) == (UsageKind.MESSAGE, ("m-1", "msg"))
    assert (login.kind, login.key) == (UsageKind.LOGIN, ("l-1", "login"))


def test_usage_error_is_an_invalid_input_that_names_the_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        call(callee="")
    assert isinstance(caught.value, UsageError)
    assert caught.value.field == "callee"


def test_a_naive_start_time_is_refused() -> None:
    with pytest.raises(UsageError, match="started_at must carry a time zone"):
        call(started_at=datetime(2024, 3, 12, 9, 0))


def test_aware_times_in_another_zone_are_stored_in_utc() -> None:
    warsaw = datetime(2024, 3, 12, 10, 0, tzinfo=ZoneInfo("Europe/Warsaw"))
    record = call(
        started_at=warsaw,
        answered_at=warsaw + timedelta(seconds=5),
        ended_at=datetime(2024, 3, 12, 4, 1, 5, tzinfo=timezone(timedelta(hours=-5))),
    )
    assert record.started_at == START and record.started_at.tzinfo is UTC
    assert record.answered_at is not None and record.answered_at.tzinfo is UTC
    assert record.ended_at == START + timedelta(seconds=65)


def test_an_answer_before_the_start_is_refused() -> None:
    with pytest.raises(UsageError, match="answered_at is before started_at"):
        call(answered_at=START - timedelta(seconds=1))


def test_an_end_before_the_answer_is_refused() -> None:
    with pytest.raises(UsageError, match="ended_at is before answered_at"):
        call(ended_at=START + timedelta(seconds=4))


def test_an_end_before_the_start_of_an_unanswered_call_is_refused() -> None:
    with pytest.raises(UsageError, match="ended_at is before started_at"):
        call(
            answered_at=None,
            duration_s=0,
            disposition=Disposition.BUSY,
            ended_at=START - timedelta(seconds=1),
        )


def test_a_negative_duration_is_refused() -> None:
    with pytest.raises(UsageError, match="duration_s must not be negative"):
        call(duration_s=-1)


def test_an_answered_call_needs_its_answer_time() -> None:
    with pytest.raises(UsageError, match="an answered call needs answered_at"):
        call(answered_at=None, duration_s=0)


def test_a_call_with_an_answer_time_cannot_be_busy() -> None:
    with pytest.raises(UsageError, match="cannot have disposition busy"):
        call(disposition=Disposition.BUSY)


def test_an_unanswered_call_has_no_billable_seconds() -> None:
    with pytest.raises(UsageError, match="unanswered call has no billable duration"):
        call(answered_at=None, disposition=Disposition.NO_ANSWER, duration_s=3)


def test_attestation_must_be_a_b_or_c() -> None:
    with pytest.raises(UsageError, match="attestation 'D'"):
        call(attestation="D")


def test_a_cost_needs_a_currency_code() -> None:
    with pytest.raises(UsageError, match="cost_minor is given without a currency"):
        call(cost_minor=12)
    with pytest.raises(UsageError, match="not an ISO 4217 code"):
        call(cost_minor=12, currency="euro")
    assert call(cost_minor=12, currency="EUR").cost_minor == 12


def test_a_message_needs_at_least_one_segment() -> None:
    with pytest.raises(UsageError, match="segments must be at least 1"):
        MessageRecord(
            message_id="m-1",
            direction=Direction.OUTBOUND,
            recipient="+442079460124",
            sent_at=START,
            status="sent",
            segments=0,
            source_format="callwarden-json",
        )


def test_a_login_needs_a_method() -> None:
    with pytest.raises(UsageError, match="method must not be empty"):
        LoginRecord(event_id="l-1", at=START, success=False, method="", source_format="x")
