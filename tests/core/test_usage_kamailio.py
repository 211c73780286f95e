"""Kamailio acc records: dialog CDRs and missed-call transactions, as syslog lines and DB rows."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from callwarden.core.admission.attempt import Direction
from callwarden.core.usage import (
    CallRecord,
    Disposition,
    MessageRecord,
    RawItem,
    UsageError,
    UsageRecord,
    normalise,
    split,
)

DATA = Path(__file__).parent / "data" / "usage" / "kamailio"
SYSLOG = "kamailio-acc-syslog"
DB = "kamailio-acc-db"
MISSED = (
    "Mar 12 09:15:02 sip-edge-1 /usr/sbin/kamailio[2211]: NOTICE: acc [acc.c:286]: "
    "ACC: call missed: timestamp=1710234902;method=INVITE;from_tag=a;to_tag=b;call_id=c-1;"
    "code={code};reason=R;src_user=+442079460999;dst_user=+48221234567;direction=outbound"
)


def read(fmt: str, name: str) -> dict[str, UsageRecord | str]:
    results: dict[str, UsageRecord | str] = {}
    for item in split(fmt, (DATA / name).read_text()):
        try:
            (record,) = normalise(fmt, item, default_tz="Europe/Warsaw")
            results[item.position] = record
        except UsageError as exc:
            results[item.position] = str(exc)
    return results


def call(result: UsageRecord | str) -> CallRecord:
    assert isinstance(result, CallRecord), result
    return result


def test_syslog_missed_call_is_an_unanswered_call_with_the_extras() -> None:
    record = call(read(SYSLOG, "acc_syslog.log")["line 1"])
    assert record.key == ("a84b4c76e66710@pc33.example.net", "missed:1928301774")
    assert record.disposition is Disposition.BUSY
    assert record.started_at == record.ended_at == datetime(2024, 3, 12, 9, 15, 2, tzinfo=UTC)
    assert (record.caller, record.callee, record.source_ip) == (
        "+442079460999",
        "+48221234567",
        "198.51.100.23",
    )
    assert (record.tenant_id, record.direction) == ("tenant-a", Direction.OUTBOUND)


def test_syslog_missed_calls_map_sip_codes_to_dispositions() -> None:
    results = read(SYSLOG, "acc_syslog.log")
    assert call(results["line 2"]).disposition is Disposition.CANCELLED  # 487
    assert call(results["line 2"]).leg == "missed"  # no to-tag
    assert call(results["line 3"]).disposition is Disposition.NO_ANSWER  # 408
    assert call(results["line 3"]).direction is Direction.INBOUND


@pytest.mark.parametrize(
    ("code", "disposition"),
    [
        (486, Disposition.BUSY),
        (600, Disposition.BUSY),
        (487, Disposition.CANCELLED),
        (480, Disposition.NO_ANSWER),
        (404, Disposition.FAILED),
        (503, Disposition.FAILED),
    ],
)
def test_missed_call_codes_map_to_dispositions(code: int, disposition: Disposition) -> None:
    (record,) = normalise(SYSLOG, RawItem(MISSED.format(code=code), "line 1"))
    assert call(record).disposition is disposition


def test_syslog_message_transaction_is_a_message_record() -> None:
    record = read(SYSLOG, "acc_syslog.log")["line 4"]
    assert isinstance(record, MessageRecord)
    assert (record.message_id, record.status, record.recipient) == (
        "msg-0001@198.51.100.26",
        "accepted",
        "+442079460124",
    )


def test_answered_invite_and_bye_transactions_are_refused_pointing_at_the_cdr_form() -> None:
    results = read(SYSLOG, "acc_syslog.log")
    assert "answered calls are read from the dialog CDRs" in str(results["line 5"])
    assert "a BYE transaction is only the end of a call" in str(results["line 6"])


def test_syslog_cdr_is_a_whole_answered_call() -> None:
    record = call(read(SYSLOG, "acc_syslog.log")["line 7"])
    assert record.key == ("answered-1@198.51.100.27", "a")
    assert record.started_at == datetime(2024, 3, 12, 9, 18, 55, tzinfo=UTC)  # setup_time
    assert record.answered_at == datetime(2024, 3, 12, 9, 19, 0, 250000, tzinfo=UTC)
    assert record.ended_at == datetime(2024, 3, 12, 9, 21, 0, 750000, tzinfo=UTC)
    assert (record.duration_s, record.disposition) == (120, Disposition.ANSWERED)
    assert (record.user_id, record.campaign) == ("agent-7", "winter")


def test_syslog_cdr_of_a_failed_dialog_is_unanswered() -> None:
    record = call(read(SYSLOG, "acc_syslog.log")["line 8"])
    assert (record.disposition, record.answered_at, record.duration_s) == (
        Disposition.FAILED,
        None,
        0,
    )


def test_records_without_a_direction_or_not_from_acc_are_refused() -> None:
    results = read(SYSLOG, "acc_syslog.log")
    assert str(results["line 9"]).startswith("direction is missing")
    assert str(results["line 10"]).startswith("not an acc record")


def test_db_cdr_rows_take_local_datetimes_across_the_dst_change() -> None:
    results = read(DB, "acc_cdrs.csv")
    record = call(results["line 2"])
    assert record.answered_at == datetime(2024, 3, 31, 0, 59, 30, tzinfo=UTC)
    assert record.ended_at == datetime(2024, 3, 31, 1, 0, 30, tzinfo=UTC)
    assert record.duration_s == 60
    assert call(results["line 3"]).direction is Direction.INBOUND


def test_db_missed_calls_rows_are_unanswered_calls_and_null_cells_are_empty() -> None:
    results = read(DB, "missed_calls.csv")
    first = call(results["line 2"])
    assert (first.disposition, first.started_at) == (
        Disposition.NO_ANSWER,
        datetime(2024, 3, 12, 9, 5, tzinfo=UTC),
    )
    second = call(results["line 3"])
    assert (second.disposition, second.source_ip, second.leg) == (
        Disposition.FAILED,
        None,
        "missed",
    )


def test_db_rows_as_json_lines_are_read_and_bad_rows_refused() -> None:
    results = read(DB, "acc_cdrs.jsonl")
    assert call(results["line 1"]).callee == "+48601234571"
    assert results["line 2"] == "ended_at is before started_at"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "start_time=abc; end_time=1710235260.5; callid=x; dst_user=1; direction=outbound",
            "start_time 'abc'",
        ),
        (
            "start_time=1710235140.2; callid=x; dst_user=1; direction=outbound",
            "end_time is missing",
        ),
        (
            "start_time=1710235140.2; end_time=1710235160.2; dst_user=1; direction=outbound",
            "callid is missing",
        ),
        (
            "start_time=1710235140.2; end_time=1710235160.2; duration=x; callid=c; dst_user=1",
            "duration 'x' is not a number",
        ),
        (
            "start_time=1710235140.2; end_time=1710235160.2; callid=c; direction=outbound",
            "dst_user is missing",
        ),
        ("ACC: call missed: timestamp=soon;method=INVITE;code=486", "timestamp 'soon'"),
        ("ACC: call missed: timestamp=1;method=INVITE;call_id=c;code=busy", "code 'busy'"),
        ("ACC: request accounted: timestamp=1;method=OPTIONS;call_id=c;code=200", "OPTIONS"),
    ],
)
def test_bad_syslog_lines_are_refused_with_the_field_named(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        normalise(SYSLOG, RawItem(line, "line 1"))


def test_a_db_row_with_unknown_columns_is_refused() -> None:
    with pytest.raises(UsageError, match="not an acc row"):
        normalise(DB, RawItem("a,b\n1,2", "line 2"))
