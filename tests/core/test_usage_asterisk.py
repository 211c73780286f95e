"""Asterisk Master.csv rows: columns, local times and DST days, legs, dispositions, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callwarden.core.admission.attempt import Direction
from callwarden.core.usage import CallRecord, Disposition, RawItem, UsageError, normalise, split

DATA = Path(__file__).parent / "data" / "usage" / "asterisk"
FMT = "asterisk-csv"
WARSAW = "Europe/Warsaw"
ROW = (
    '"tenant-a","+48221234001","+442079460123","from-internal","""A"" <+48221234001>",'
    '"PJSIP/a-1","PJSIP/c-2","Dial","","2024-03-12 09:15:02","{answer}",'
    '"2024-03-12 09:17:11",129,{billsec},"{disposition}","DOCUMENTATION","1710231302.1",""'
)


def read(name: str, tz: str = WARSAW) -> dict[str, CallRecord | str]:
    results: dict[str, CallRecord | str] = {}
    for item in split(FMT, (DATA / name).read_text()):
        try:
            (record,) = normalise(FMT, item, default_tz=tz)
            assert isinstance(record, CallRecord)
            results[item.position] = record
        except UsageError as exc:
            results[item.position] = str(exc)
    return results


def one(text: str, tz: str = WARSAW) -> CallRecord:
    (record,) = normalise(FMT, RawItem(text, "line 1"), default_tz=tz)
    assert isinstance(record, CallRecord)
    return record


def test_answered_row_maps_columns_and_converts_local_time_to_utc() -> None:
    record = read("Master.csv")["line 1"]
    assert isinstance(record, CallRecord)
    assert record.key == ("1710231302.1", "a")
    assert (record.tenant_id, record.caller, record.callee) == (
        "tenant-a",
        "+48221234001",
        "+442079460123",
    )
    assert record.started_at == datetime(2024, 3, 12, 8, 15, 2, tzinfo=UTC)
    assert record.answered_at == datetime(2024, 3, 12, 8, 15, 9, tzinfo=UTC)
    assert (record.duration_s, record.disposition) == (122, Disposition.ANSWERED)
    assert record.direction is Direction.OUTBOUND
    assert (record.campaign, record.user_id, record.attestation) == ("spring", "agent-1001", "A")


def test_unanswered_rows_have_an_empty_answer_and_their_own_disposition() -> None:
    results = read("Master.csv")
    expected = {
        "line 2": Disposition.NO_ANSWER,
        "line 3": Disposition.BUSY,
        "line 4": Disposition.FAILED,  # CONGESTION
    }
    for position, disposition in expected.items():
        record = results[position]
        assert isinstance(record, CallRecord)
        assert (record.disposition, record.answered_at, record.duration_s) == (
            disposition,
            None,
            0,
        )


def test_an_empty_src_takes_the_number_from_the_caller_id() -> None:
    record = read("Master.csv")["line 4"]
    assert isinstance(record, CallRecord)
    assert record.caller == "+442079460555"


def test_a_call_from_a_trunk_context_is_inbound() -> None:
    record = read("Master.csv")["line 5"]
    assert isinstance(record, CallRecord)
    assert record.direction is Direction.INBOUND


def test_times_on_the_spring_dst_change_day_count_the_skipped_hour() -> None:
    record = read("dst_change.csv")["line 1"]
    assert isinstance(record, CallRecord)
    assert record.answered_at == datetime(2024, 3, 31, 0, 59, 30, tzinfo=UTC)
    assert record.ended_at == datetime(2024, 3, 31, 1, 0, 30, tzinfo=UTC)
    assert record.started_at == datetime(2024, 3, 31, 0, 59, tzinfo=UTC)
    # 01:59:30 CET to 03:00:30 CEST is one minute, not an hour and one minute
    assert (record.ended_at - record.answered_at).total_seconds() == record.duration_s == 60


def test_an_ambiguous_time_on_the_autumn_change_day_is_read_as_its_first_occurrence() -> None:
    record = read("dst_change.csv")["line 2"]
    assert isinstance(record, CallRecord)
    assert record.started_at == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)


def test_gmt_rows_are_read_with_utc_as_the_default_zone() -> None:
    record = read("Master.csv", tz="UTC")["line 1"]
    assert isinstance(record, CallRecord)
    assert record.started_at == datetime(2024, 3, 12, 9, 15, 2, tzinfo=UTC)


def test_cdrs_of_a_transfer_share_the_linkedid_and_have_distinct_legs() -> None:
    results = read("transfer_newcdrcolumns.csv")
    records = [results[f"line {n}"] for n in (1, 2, 3)]
    assert all(isinstance(record, CallRecord) for record in records)
    keys = [record.key for record in records if isinstance(record, CallRecord)]
    assert keys == [
        ("1710234000.32", "a#101"),
        ("1710234000.32", "1710234000.33#102"),
        ("1710234000.32", "a#103"),
    ]


def test_a_header_row_is_skipped_and_the_rows_keep_their_line_numbers() -> None:
    results = read("with_header.csv")
    assert list(results) == ["line 2"]


def test_garbage_rows_are_refused_each_with_its_reason() -> None:
    assert read("garbage.csv") == {
        "line 1": "disposition 'HUNG UP' is not ANSWERED, NO ANSWER, BUSY, FAILED or CONGESTION",
        "line 2": "dst is missing",
        "line 3": "start 'yesterday' is not a date and time (expected YYYY-MM-DD HH:MM:SS)",
        "line 4": "ended_at is before answered_at",
        "line 5": "a Master.csv row has 16 to 21 columns, this one has 3",
        "line 6": "uniqueid is missing: enable loguniqueid in cdr.conf so each CDR has an id",
    }


def test_an_answered_row_without_an_answer_time_is_refused() -> None:
    with pytest.raises(UsageError, match="answer is missing for an ANSWERED call"):
        one(ROW.format(answer="", billsec=5, disposition="ANSWERED"))


def test_a_userfield_direction_overrides_the_context() -> None:
    text = ROW.format(answer="2024-03-12 09:15:09", billsec=122, disposition="ANSWERED")
    record = one(text.replace(',""', ',"direction=inbound"'))
    assert record.direction is Direction.INBOUND


def test_an_unknown_default_zone_is_refused() -> None:
    with pytest.raises(UsageError, match="not an IANA time zone name"):
        one(ROW.format(answer="", billsec=0, disposition="BUSY"), tz="Mars/Olympus")


def test_a_quoted_field_with_a_line_break_stays_one_row() -> None:
    text = ROW.format(answer="", billsec=0, disposition="BUSY").replace(
        '"Dial",""', '"Dial","first\nsecond"'
    )
    items = list(split(FMT, text + "\n"))
    assert [item.position for item in items] == ["lines 1-2"]
    (record,) = normalise(FMT, items[0], default_tz=WARSAW)
    assert isinstance(record, CallRecord)
    assert record.disposition is Disposition.BUSY


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)
    ).map(lambda moment: moment.replace(microsecond=0))
)
def test_local_start_times_read_back_as_the_same_instant_except_the_repeated_hour(
    moment: datetime,
) -> None:
    local = moment.astimezone(ZoneInfo(WARSAW))
    text = ROW.format(answer="", billsec=0, disposition="BUSY").replace(
        "2024-03-12 09:15:02", local.strftime("%Y-%m-%d %H:%M:%S")
    )
    ended = local.strftime("%Y-%m-%d %H:%M:%S")
    record = one(text.replace("2024-03-12 09:17:11", ended))
    if local.fold == 0:
        assert record.started_at == moment
    else:  # the second 02:xx of the autumn change day reads as the first one, an hour earlier
        assert record.started_at == moment - timedelta(hours=1)
