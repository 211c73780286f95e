"""callwarden's own JSON and CSV usage schema: samples, refusals and exact round trips."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callwarden.core.admission.attempt import Direction
from callwarden.core.usage import (
    CallRecord,
    Disposition,
    LoginRecord,
    MessageRecord,
    UsageError,
    UsageRecord,
    from_json,
    normalise,
    split,
    to_json,
)
from callwarden.core.usage.schema import fields_for, from_text_fields, to_text_fields

DATA = Path(__file__).parent / "data" / "usage" / "callwarden"


def read(fmt: str, name: str) -> list[tuple[str, list[UsageRecord] | str]]:
    """Each item of a sample file with its records or the UsageError message."""
    results: list[tuple[str, list[UsageRecord] | str]] = []
    for item in split(fmt, (DATA / name).read_text()):
        try:
            results.append((item.position, normalise(fmt, item, default_tz="Europe/Warsaw")))
        except UsageError as exc:
            results.append((item.position, str(exc)))
    return results


# --- samples --------------------------------------------------------------------------------


def test_json_array_sample_gives_one_record_per_element_with_times_in_utc() -> None:
    (first_pos, first), (second_pos, second) = read("callwarden-json", "calls.json")
    assert (first_pos, second_pos) == ("lines 1-31 item 1", "lines 1-31 item 2")
    assert isinstance(first, list) and isinstance(second, list)
    call = first[0]
    assert isinstance(call, CallRecord)
    assert call.caller == "+442079460999"
    assert call.answered_at == datetime(2024, 3, 12, 9, 15, 9, tzinfo=UTC)
    assert (call.currency, call.attestation, call.cost_minor) == ("EUR", "A", 37)
    unanswered = second[0]
    assert isinstance(unanswered, CallRecord)
    assert unanswered.kind == "call" and unanswered.leg == "a"
    assert unanswered.ended_at == datetime(2024, 3, 12, 9, 15, 32, 500000, tzinfo=UTC)
    assert (unanswered.duration_s, unanswered.tenant_id) == (0, None)


def test_json_lines_sample_reads_messages_logins_and_refuses_bad_calls() -> None:
    results = dict(read("callwarden-json", "events.jsonl"))
    message = results["line 1"]
    assert isinstance(message, list) and isinstance(message[0], MessageRecord)
    assert message[0].sent_at == datetime(2024, 3, 12, 8, 20, tzinfo=UTC)  # local Warsaw time
    assert message[0].segments == 2
    login = results["line 2"]
    assert isinstance(login, list) and isinstance(login[0], LoginRecord)
    assert login[0].success is False
    assert results["line 3"] == "answered_at is before started_at"
    assert results["line 4"] == "direction 'sideways' is not one of outbound, inbound"
    assert results["line 5"] == "unknown fields for a call record: colour"


def test_csv_sample_maps_header_columns_and_names_bad_cells() -> None:
    results = dict(read("callwarden-csv", "calls.csv"))
    answered = results["line 2"]
    assert isinstance(answered, list) and isinstance(answered[0], CallRecord)
    assert answered[0].duration_s == 122
    cancelled = results["line 3"]
    assert isinstance(cancelled, list) and isinstance(cancelled[0], CallRecord)
    assert cancelled[0].caller is None and cancelled[0].leg == "b:2"
    assert cancelled[0].started_at == datetime(2024, 3, 12, 9, 15, 2, tzinfo=UTC)
    assert results["line 4"] == "duration_s must be a whole number, not 'twelve'"


def test_csv_logins_accept_epoch_times_and_yes_no_booleans() -> None:
    results = dict(read("callwarden-csv", "logins.csv"))
    second = results["line 3"]
    assert isinstance(second, list) and isinstance(second[0], LoginRecord)
    assert second[0].at == datetime.fromtimestamp(1710234000, UTC)
    assert second[0].success is False
    assert second[0].source_ip == "2001:db8::7"


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"direction": "outbound"}, "kind is missing"),
        ({"kind": "fax"}, "kind 'fax' is not one of call, message, login"),
        (
            {"call_id": "x", "direction": "outbound", "started_at": "2024-03-12T09:00:00Z"},
            "callee is missing",
        ),
        (
            {"call_id": "x", "direction": "outbound", "callee": 4412, "started_at": 0},
            "callee must be a string, not int",
        ),
        (
            {"call_id": "x", "direction": "outbound", "callee": "1", "started_at": "soon"},
            "started_at 'soon' is not a date and time",
        ),
        (
            {"call_id": "x", "direction": "outbound", "callee": "1", "started_at": 1e300},
            "not a plausible epoch time",
        ),
        (
            {"call_id": "x", "direction": "outbound", "callee": "1", "started_at": 0},
            "disposition is missing for an unanswered call",
        ),
        (
            {
                "call_id": "x",
                "direction": "outbound",
                "callee": "1",
                "started_at": 0,
                "disposition": "busy",
                "source_ip": "10.0.0.300",
            },
            "source_ip '10.0.0.300' is not an IP address",
        ),
        (
            {
                "event_id": "e",
                "at": "2024-03-12T09:00:00Z",
                "success": "yes",
                "method": "password",
            },
            "success must be true or false",
        ),
        (
            {"call_id": "x\u0007", "direction": "outbound", "callee": "1", "started_at": 0},
            "call_id contains control characters",
        ),
        ([1, 2], "a usage record must be a JSON object, not list"),
    ],
)
def test_from_json_refuses_bad_documents_with_a_reason(document: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        from_json(document)


def test_an_answered_call_without_duration_gets_its_billable_seconds_from_the_times() -> None:
    record = from_json(
        {
            "call_id": "x",
            "direction": "outbound",
            "callee": "+442079460123",
            "started_at": "2024-03-12T09:00:00Z",
            "answered_at": "2024-03-12T09:00:04Z",
            "ended_at": "2024-03-12T09:01:04.900Z",
        }
    )
    assert isinstance(record, CallRecord)
    assert (record.disposition, record.duration_s) == (Disposition.ANSWERED, 60)


def test_garbage_json_is_refused_as_not_a_document() -> None:
    with pytest.raises(UsageError, match="not a JSON document"):
        normalise("callwarden-json", next(split("callwarden-json", '{"call_id": ')))


def test_a_csv_row_with_too_many_cells_is_refused() -> None:
    items = list(split("callwarden-csv", "call_id,callee\nx,1,extra\n"))
    with pytest.raises(UsageError, match="row has 3 cells but the header names 2 columns"):
        normalise("callwarden-csv", items[0])


def test_a_quoted_cell_across_a_line_break_is_refused_not_joined() -> None:
    body = (
        "call_id,tenant_id,direction,callee,started_at,ended_at,disposition,campaign\n"
        "cw-nl-1,tenant-a,outbound,+442079460123,2024-03-12T09:15:02Z,2024-03-12T09:17:11Z,"
        'cancelled,"p-89\nsecond line"\n'
    )
    (item,) = split("callwarden-csv", body)
    with pytest.raises(UsageError, match="campaign contains control characters"):
        normalise("callwarden-csv", item)


def test_csv_rows_keep_the_line_breaks_inside_quoted_cells() -> None:
    from callwarden.core.usage.fields import csv_rows

    assert csv_rows('a,"b\nc"\r\nd,e\n') == [["a", "b\nc"], ["d", "e"]]


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(UsageError, match="format 'xml' is not one of"):
        split("xml", "")


# --- round trips ----------------------------------------------------------------------------

_TEXT = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
        min_size=1,
        max_size=40,
    )
    .map(str.strip)
    .filter(bool)
)
_MAYBE_TEXT = st.none() | _TEXT
_TIMES = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
_GAPS = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=2))
_IPS = st.none() | st.ip_addresses().map(str)
_MONEY = st.none() | st.tuples(
    st.integers(min_value=-(10**12), max_value=10**12), st.sampled_from(["EUR", "USD", "PLN"])
)


@st.composite
def calls(draw: st.DrawFn) -> CallRecord:
    started = draw(_TIMES)
    answered = draw(st.none() | _GAPS.map(lambda gap: started + gap))
    ended_from = answered or started
    ended = draw(st.none() | _GAPS.map(lambda gap: ended_from + gap))
    disposition = (
        Disposition.ANSWERED
        if answered is not None
        else draw(st.sampled_from([d for d in Disposition if d is not Disposition.ANSWERED]))
    )
    money = draw(_MONEY)
    return CallRecord(
        call_id=draw(_TEXT),
        leg=draw(_TEXT),
        tenant_id=draw(_MAYBE_TEXT),
        user_id=draw(_MAYBE_TEXT),
        trunk_id=draw(_MAYBE_TEXT),
        source_ip=draw(_IPS),
        direction=draw(st.sampled_from(Direction)),
        caller=draw(_MAYBE_TEXT),
        callee=draw(_TEXT),
        started_at=started,
        answered_at=answered,
        ended_at=ended,
        duration_s=draw(st.integers(0, 10**6)) if answered is not None else 0,
        disposition=disposition,
        cost_minor=None if money is None else money[0],
        currency=None if money is None else money[1],
        campaign=draw(_MAYBE_TEXT),
        attestation=draw(st.sampled_from([None, "A", "B", "C"])),
        source_format=draw(st.sampled_from(["freeswitch-json", "asterisk-csv", "callwarden-csv"])),
    )


@st.composite
def messages(draw: st.DrawFn) -> MessageRecord:
    money = draw(_MONEY)
    return MessageRecord(
        message_id=draw(_TEXT),
        tenant_id=draw(_MAYBE_TEXT),
        user_id=draw(_MAYBE_TEXT),
        direction=draw(st.sampled_from(Direction)),
        sender=draw(_MAYBE_TEXT),
        recipient=draw(_TEXT),
        sent_at=draw(_TIMES),
        status=draw(_TEXT),
        segments=draw(st.integers(1, 50)),
        cost_minor=None if money is None else money[0],
        currency=None if money is None else money[1],
        campaign=draw(_MAYBE_TEXT),
        source_format="callwarden-json",
    )


@st.composite
def logins(draw: st.DrawFn) -> LoginRecord:
    return LoginRecord(
        event_id=draw(_TEXT),
        tenant_id=draw(_MAYBE_TEXT),
        user_id=draw(_MAYBE_TEXT),
        source_ip=draw(_IPS),
        at=draw(_TIMES),
        success=draw(st.booleans()),
        method=draw(_TEXT),
        source_format="kamailio-acc-syslog",
    )


records = st.one_of(calls(), messages(), logins())


@settings(max_examples=300)
@given(records)
def test_to_json_then_from_json_gives_the_same_record(record: UsageRecord) -> None:
    assert from_json(orjson.loads(orjson.dumps(to_json(record)))) == record


@settings(max_examples=150)
@given(st.lists(records, min_size=1, max_size=8))
def test_json_lines_through_split_and_normalise_give_the_same_records(
    batch: list[UsageRecord],
) -> None:
    body = "\n".join(orjson.dumps(to_json(record)).decode() for record in batch)
    read = [
        record
        for item in split("callwarden-json", body)
        for record in normalise("callwarden-json", item, default_tz="Pacific/Chatham")
    ]
    assert read == batch


@settings(max_examples=150)
@given(st.sampled_from([calls(), messages(), logins()]).flatmap(lambda s: st.lists(s, max_size=8)))
def test_csv_through_split_and_normalise_gives_the_same_records(batch: list[UsageRecord]) -> None:
    if not batch:
        return
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(fields_for(batch[0].kind))
    for record in batch:
        writer.writerow(to_text_fields(record))
    read = [
        record
        for item in split("callwarden-csv", out.getvalue())
        for record in normalise("callwarden-csv", item)
    ]
    assert read == batch


@given(calls())
def test_csv_cells_of_one_record_read_back_to_the_same_record(record: CallRecord) -> None:
    assert from_text_fields(fields_for(record.kind), to_text_fields(record)) == record


def test_a_csv_header_naming_a_column_twice_is_refused() -> None:
    items = list(split("callwarden-csv", "call_id,callee,callee\nx,1,2\n"))
    with pytest.raises(UsageError, match="the header names callee more than once"):
        normalise("callwarden-csv", items[0])
