"""FreeSWITCH mod_json_cdr documents: legs, dispositions, URL-encoded values, missing fields."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from callwarden.core.admission.attempt import Direction
from callwarden.core.usage import CallRecord, Disposition, RawItem, UsageError, normalise, split

DATA = Path(__file__).parent / "data" / "usage" / "freeswitch"
FMT = "freeswitch-json"


def sample(name: str) -> CallRecord:
    items = list(split(FMT, (DATA / name).read_text()))
    assert len(items) == 1
    (record,) = normalise(FMT, items[0])
    assert isinstance(record, CallRecord)
    return record


def document(**variables: str) -> RawItem:
    base = {
        "uuid": "u-1",
        "hangup_cause": "NORMAL_CLEARING",
        "start_epoch": "1711875600",
        "answer_epoch": "0",
        "end_epoch": "1711875630",
        "destination_number": "+442079460123",
    }
    base.update(variables)
    return RawItem(orjson.dumps({"variables": base}).decode(), "item 1")


def test_pretty_printed_answered_a_leg_is_one_call_with_decoded_values() -> None:
    record = sample("answered_a_leg.json")
    assert record.key == ("2b9e3f64-8d1a-4c7b-b0f2-9e5d7a1c4e01", "a")
    assert record.started_at == datetime(2024, 3, 31, 9, 0, 0, 120000, tzinfo=UTC)
    assert record.answered_at == datetime(2024, 3, 31, 9, 0, 5, 300000, tzinfo=UTC)
    assert record.ended_at == datetime(2024, 3, 31, 9, 1, 5, 400000, tzinfo=UTC)
    assert (record.duration_s, record.disposition) == (60, Disposition.ANSWERED)
    assert (record.caller, record.callee) == ("+442079460999", "+442079460123")
    assert (record.tenant_id, record.user_id) == ("tenant-a", "agent-1001")
    assert record.campaign == "spring renewals"  # "spring%20renewals" decoded
    assert (record.attestation, record.source_ip) == ("A", "198.51.100.23")
    assert record.direction is Direction.OUTBOUND  # authenticated user on the a-leg
    assert record.source_format == "freeswitch-json"


def test_unanswered_leg_has_no_answer_time_and_no_billable_seconds() -> None:
    record = sample("no_answer.json")
    assert record.answered_at is None
    assert (record.disposition, record.duration_s) == (Disposition.NO_ANSWER, 0)
    assert record.ended_at == datetime(2024, 3, 31, 9, 7, 10, tzinfo=UTC)


def test_busy_b_leg_belongs_to_its_a_leg_call_with_its_own_leg() -> None:
    record = sample("busy_b_leg.json")
    assert record.call_id == "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c02"
    assert record.leg == "b:9e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a03"
    assert record.disposition is Disposition.BUSY
    assert record.direction is Direction.OUTBOUND  # sent to a gateway


def test_originator_cancel_is_a_cancelled_call() -> None:
    assert sample("cancelled.json").disposition is Disposition.CANCELLED


def test_transferred_a_leg_keeps_the_number_first_dialled_and_the_declared_direction() -> None:
    record = sample("transferred_a_leg.json")
    assert record.callee == "+442079460500"
    assert record.duration_s == 120
    assert record.direction is Direction.INBOUND


def test_missing_optional_fields_stay_empty_and_unknown_causes_are_failures() -> None:
    record = sample("missing_fields.json")
    assert (record.caller, record.source_ip, record.tenant_id, record.user_id) == (
        None,
        None,
        None,
        None,
    )
    assert record.callee == "999123"
    assert record.disposition is Disposition.FAILED
    assert record.direction is Direction.INBOUND  # no authenticated user on the a-leg


def test_values_without_url_encoding_are_kept_as_written() -> None:
    record = sample("unencoded_values.json")
    assert record.campaign == "summer 50%"
    assert record.tenant_id == "tenant a"
    assert record.source_ip == "2001:db8::15"


def test_encoded_plus_signs_decode_and_literal_plus_signs_stay() -> None:
    (encoded,) = normalise(FMT, document(destination_number="%2B48221234567"))
    (literal,) = normalise(FMT, document(destination_number="+48221234567"))
    assert isinstance(encoded, CallRecord) and isinstance(literal, CallRecord)
    assert encoded.callee == literal.callee == "+48221234567"


def test_epoch_seconds_are_used_when_microsecond_times_are_absent() -> None:
    (record,) = normalise(FMT, document(answer_epoch="1711875605", billsec="25"))
    assert isinstance(record, CallRecord)
    assert record.answered_at == datetime(2024, 3, 31, 9, 0, 5, tzinfo=UTC)
    assert record.duration_s == 25


def test_billable_seconds_come_from_the_times_when_billsec_is_missing() -> None:
    (record,) = normalise(FMT, document(answer_epoch="1711875605"))
    assert isinstance(record, CallRecord)
    assert record.duration_s == 25


def test_declared_call_direction_wins_over_the_leg_facts() -> None:
    (record,) = normalise(FMT, document(call_direction="outbound"))
    assert isinstance(record, CallRecord)
    assert record.direction is Direction.OUTBOUND


@pytest.mark.parametrize(
    ("cause", "disposition"),
    [
        ("NO_ANSWER", Disposition.NO_ANSWER),
        ("USER_BUSY", Disposition.BUSY),
        ("ORIGINATOR_CANCEL", Disposition.CANCELLED),
        ("LOSE_RACE", Disposition.CANCELLED),
        ("UNALLOCATED_NUMBER", Disposition.FAILED),
        ("NORMAL_TEMPORARY_FAILURE", Disposition.FAILED),
    ],
)
def test_hangup_causes_map_to_dispositions(cause: str, disposition: Disposition) -> None:
    (record,) = normalise(FMT, document(hangup_cause=cause))
    assert isinstance(record, CallRecord)
    assert record.disposition is disposition


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (RawItem("not json", "line 1"), "not a JSON document"),
        (RawItem("[1]", "line 1"), "must be a JSON object"),
        (RawItem('{"channel_data": {}}', "line 1"), "variables is missing"),
        (document(uuid=""), "variables.uuid is missing"),
        (document(start_epoch="yesterday"), "variables.start_epoch 'yesterday' is not an epoch"),
        (document(destination_number=""), "destination_number is missing"),
        (document(answer_epoch="1711875640"), "ended_at is before answered_at"),
        (document(billsec="-3", answer_epoch="1711875605"), "billsec must not be negative"),
        (document(sip_network_ip="not-an-ip"), "is not an IP address"),
        (document(hangup_cause=""), "hangup_cause is missing"),
    ],
)
def test_bad_documents_are_refused_with_the_field_named(item: RawItem, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        normalise(FMT, item)


def test_truncated_sample_is_refused_not_skipped() -> None:
    items = list(split(FMT, (DATA / "truncated.json").read_text()))
    assert len(items) == 1
    with pytest.raises(UsageError, match="not a JSON document"):
        normalise(FMT, items[0])


_VALUE = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="%"),
    min_size=1,
    max_size=30,
).filter(lambda text: text.strip() == text and text != "")


@given(tenant=_VALUE, campaign=_VALUE, callee=_VALUE, caller=_VALUE)
def test_url_encoded_variables_read_the_same_as_plain_ones(
    tenant: str, campaign: str, callee: str, caller: str
) -> None:
    plain = {
        "callwarden_tenant": tenant,
        "callwarden_campaign": campaign,
        "destination_number": callee,
        "sip_from_user": caller,
    }
    encoded = {name: quote(value, safe="") for name, value in plain.items()}
    assert normalise(FMT, document(**plain)) == normalise(FMT, document(**encoded))
