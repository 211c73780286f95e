"""Preparing units for storage: the quick CSV path agrees with the ordinary one, row for row.

The quick path (`callwarden.core.usage.fast_csv.call_row`) may only ever accept what reading
the unit the ordinary way (`normalise`, then the store's limits) accepts, with the same values;
everything else it must leave to the ordinary way, which names the fault. Rows here are built
from pools of awkward cell values (bad times, negative durations, lower-case currencies, long
ids, tabs, IPv6 addresses, ...) and compared.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from callwarden.core.usage.fast_rows import csv_call_row as call_row
from callwarden.core.usage.fast_rows import json_call_row
from callwarden.core.usage.normalise import normalise
from callwarden.core.usage.record import RawItem, UsageError, UsageFormat
from callwarden.core.usage.rows import Row, record_row
from callwarden.services.usage_checks import check_storable
from callwarden.services.usage_prepare import prepare_texts, prepare_unit

CSV = UsageFormat.CALLWARDEN_CSV
JSON = UsageFormat.CALLWARDEN_JSON
WARSAW = ZoneInfo("Europe/Warsaw")

CELLS: dict[str, list[str]] = {
    "kind": ["call", " CALL ", "message", ""],
    "call_id": ["c-1", " c-2 ", "", "x" * 65, "x" * 256, "c\t3", "żółw-4"],
    "leg": ["a", "", "b:5c0d", "l" * 65],
    "tenant_id": ["tenant-a", "", "t" * 65],
    "user_id": ["agent-1001", ""],
    "trunk_id": ["", "trunk-1"],
    "source_ip": ["", "198.51.100.7", "2001:db8::1", "[2001:db8::1]", "010.1.1.1", "host"],
    "direction": ["outbound", "Inbound", "OUT", "in", "sideways", ""],
    "caller": ["+442079460999", "", "anonymous"],
    "callee": ["+442079460123", "", "  +4420 "],
    "started_at": [
        "1735689600",
        "1735689600.5",
        "2025-01-01T00:00:00Z",
        "2025-03-30 02:30:00",
        "2025-01-01T01:00:00+01:00",
        "-5",
        "yesterday",
        "",
        "0001735689600",
        "253402300799",
        "253402300800",
        "99999999999999999999",
    ],
    "answered_at": ["", "1735689605", "1735689599", "2025-01-01T00:00:05Z"],
    "ended_at": ["", "1735689665", "1735689601", "1735689500"],
    "duration_s": ["", "60", "0", "-1", "2147483648", "1_0", "+5", "6.5"],
    "disposition": ["no_answer", "", "answered", "NO_ANSWER", "busy", "cancelled", "hung up"],
    "cost_minor": ["", "37", "-2", "9223372036854775808", "x"],
    "currency": ["", "EUR", "eur", "EURO", "E1R"],
    "campaign": ["", "spring renewals"],
    "attestation": ["", "A", "c", "D"],
    "source_format": ["", "asterisk-csv"],
}
ALWAYS = ("call_id", "direction", "callee", "started_at")
"""Each pool's first value is a good one; it is drawn most of the time, so that most rows are
good but for one or two values, and the checks of each field are reached."""


ANSWERED = {
    "answered_at": "1735689605",
    "ended_at": "1735689665",
    "duration_s": "60",
    "disposition": "answered",
    "cost_minor": "37",
    "currency": "EUR",
}
"""An answered call's values, used for half of the rows instead of the pools' first values."""


def pick(draw: st.DrawFn, name: str, pool: list[object], answered: bool) -> object:
    """A good value seven times in ten (the pool's first, or the answered call's), any of the
    pool's values otherwise."""
    if draw(st.integers(0, 9)) < 7:
        return ANSWERED.get(name, pool[0]) if answered else pool[0]
    return draw(st.sampled_from(pool))


JSON_VALUES: dict[str, list[object]] = {
    "kind": [1, None],
    "call_id": [17, None],
    "callee": [442079460123],
    "started_at": [1735689600, 1735689600.25, -3, True, [1], "  2025-01-01T00:00:00Z  "],
    "answered_at": [1735689605, None, 0],
    "ended_at": [1735689665, 1e300],
    "duration_s": [60, 0, 6.0, "60", True, -1, 2**31],
    "cost_minor": [37, 2**63, "37", None],
    "direction": [None, 1],
    "source_ip": [None, 7],
}


def ordinary(text: str, default_tz: tzinfo, fmt: UsageFormat = CSV) -> list[Row] | str:
    """What reading the unit the ordinary way gives: its rows, or the fault."""
    try:
        records = normalise(fmt, RawItem(text, "line 2"), default_tz=default_tz)
        for record in records:
            check_storable(record)
    except UsageError as exc:
        return exc.message
    return [record_row(record) for record in records]


@st.composite
def csv_units(draw: st.DrawFn) -> tuple[str, str]:
    """A header naming some call fields (always the required ones) and one row under it."""
    chosen = [name for name in CELLS if name not in ALWAYS and draw(st.booleans())]
    names = draw(st.permutations([*ALWAYS, *chosen]))
    answered = draw(st.booleans())
    cells = [str(pick(draw, name, list(CELLS[name]), answered)) for name in names]
    return ",".join(names), ",".join(cells)


GOOD_JSON: dict[str, object] = {
    "kind": "call",
    "call_id": "c-1",
    "direction": "outbound",
    "callee": "+442079460123",
    "started_at": 1735689600,
    "disposition": "no_answer",
}
GOOD_ANSWERED_JSON: dict[str, object] = {
    **GOOD_JSON,
    "answered_at": "2025-01-01T00:00:05Z",
    "ended_at": 1735689665.5,
    "duration_s": 60,
    "disposition": "answered",
    "cost_minor": 37,
    "currency": "eur",
}


@st.composite
def json_documents(draw: st.DrawFn) -> dict[str, object]:
    """A JSON call from a good template (answered or not) with some fields left out and some
    values swapped for others from the pools (text, or values of other JSON types)."""
    template = GOOD_ANSWERED_JSON if draw(st.booleans()) else GOOD_JSON
    document: dict[str, object] = {}
    for name in CELLS:
        if draw(st.integers(0, 9)) == 0 and name in template:
            continue  # left out
        if draw(st.integers(0, 9)) < 7:
            if name in template:
                document[name] = template[name]
            continue
        document[name] = draw(st.sampled_from([*CELLS[name], *JSON_VALUES.get(name, [])]))
    if draw(st.integers(0, 19)) == 0:
        document["sender"] = "+442079460999"
    return document


@settings(max_examples=2000, deadline=None)
@given(document=json_documents(), default_tz=st.sampled_from([UTC, WARSAW]))
def test_the_quick_json_path_accepts_only_what_the_ordinary_path_accepts_with_the_same_row(
    document: dict[str, object], default_tz: tzinfo
) -> None:
    text = orjson.dumps(document).decode()
    quick = json_call_row(orjson.loads(text), default_tz)
    expected = ordinary(text, default_tz, JSON)
    if quick is not None:
        assert expected == [quick]
    prepared = prepare_unit(JSON, text, default_tz)
    assert prepared == ((expected, None) if isinstance(expected, list) else ([], expected))


@settings(max_examples=2000, deadline=None)
@given(unit=csv_units(), default_tz=st.sampled_from([UTC, WARSAW]))
def test_the_quick_path_accepts_only_what_the_ordinary_path_accepts_with_the_same_row(
    unit: tuple[str, str], default_tz: tzinfo
) -> None:
    header, row_text = unit
    quick = call_row(header, row_text, default_tz)
    expected = ordinary(f"{header}\n{row_text}", default_tz)
    if quick is not None:
        assert expected == [quick]
        assert [value.utcoffset() for value in quick if hasattr(value, "utcoffset")] == [
            value.utcoffset() for value in expected[0] if hasattr(value, "utcoffset")
        ]
    prepared = prepare_unit(CSV, f"{header}\n{row_text}", default_tz)
    assert prepared == ((expected, None) if isinstance(expected, list) else ([], expected))


def test_plain_json_calls_take_the_quick_path() -> None:
    document = {
        "kind": "call",
        "call_id": "c-1",
        "direction": "outbound",
        "callee": "+442079460123",
        "started_at": "2025-01-01T00:00:00Z",
        "answered_at": 1735689605,
        "ended_at": 1735689665.5,
        "tenant_id": "tenant-a",
        "cost_minor": 12,
        "currency": "eur",
    }
    assert json_call_row(document) == ordinary(orjson.dumps(document).decode(), UTC, JSON)[0]


def test_plain_rows_take_the_quick_path() -> None:
    header = "call_id,leg,tenant_id,direction,caller,callee,started_at,answered_at,ended_at"
    answered = "c-1,a,tenant-a,outbound,+442079460999,+442079460123,1735689600,1735689605,"
    unanswered = "c-2,,,inbound,,+442079460123,2025-01-01T00:00:00Z,,2025-01-01T00:00:30Z"
    assert call_row(header + ",duration_s,disposition", answered + "1735689665,60,answered")
    assert call_row(header + ",disposition", unanswered + ",no_answer")


def test_rows_the_quick_path_leaves_alone_are_read_and_refused_as_before() -> None:
    header = "call_id,direction,callee,started_at,duration_s,disposition"
    texts = [
        f"{header}\nc-1,outbound,+442079460123,1735689600,-1,no_answer",
        f'{header}\n"c-2",outbound,+442079460123,1735689600,0,no_answer',
        f"{header}\nc-3,outbound,,1735689600,0,no_answer",
    ]
    assert prepare_texts(CSV, texts, UTC) == [
        ([], "duration_s must not be negative (got -1)"),
        ([record_row(r) for r in normalise(CSV, RawItem(texts[1], "line 2"))], None),
        ([], "callee is missing"),
    ]


def test_a_record_past_the_store_limits_keeps_the_rows_before_it_and_names_the_fault() -> None:
    document = (
        '[{"call_id": "c-1", "direction": "outbound", "callee": "+442079460123", '
        '"started_at": "2025-01-01T00:00:00Z", "disposition": "failed"}, '
        '{"call_id": "c-2", "direction": "outbound", "callee": "+442079460124", '
        '"started_at": "2025-01-01T00:00:00Z", "disposition": "failed", '
        f'"campaign": "{"x" * 10}", "user_id": "{"u" * 200}"}}, '
        '{"call_id": "c-3", "direction": "outbound", "callee": "+442079460125", '
        f'"tenant_id": "{"t" * 100}", '
        '"started_at": "2025-01-01T00:00:00Z", "disposition": "failed"}]'
    )
    rows, reason = prepare_unit(UsageFormat.CALLWARDEN_JSON, document, UTC)
    assert [row[0] for row in rows] == ["c-1", "c-2"]
    assert reason == "tenant_id is 100 characters long; at most 64 are allowed"


def _single_changes(template: dict[str, object], json: bool) -> list[dict[str, object]]:
    """The template with one field left out, or with one value swapped for each of its pool's."""
    variants: list[dict[str, object]] = []
    for name in CELLS:
        if name in template:
            variants.append({k: v for k, v in template.items() if k != name})
        pool: list[object] = [*CELLS[name], *(JSON_VALUES.get(name, []) if json else [])]
        variants.extend({**template, name: value} for value in pool)
    return variants


def test_every_single_change_to_a_good_json_call_is_judged_as_the_ordinary_path_does() -> None:
    for template in (GOOD_JSON, GOOD_ANSWERED_JSON):
        for document in _single_changes(template, json=True):
            text = orjson.dumps(document).decode()
            expected = ordinary(text, WARSAW, JSON)
            quick = json_call_row(orjson.loads(text), WARSAW)
            assert quick is None or expected == [quick], document


def test_every_single_change_to_a_good_csv_call_is_judged_as_the_ordinary_path_does() -> None:
    for template in (GOOD_JSON, GOOD_ANSWERED_JSON):
        as_text: dict[str, object] = {name: str(value) for name, value in template.items()}
        for row in _single_changes(as_text, json=False):
            header, cells = ",".join(row), ",".join(str(value) for value in row.values())
            expected = ordinary(f"{header}\n{cells}", WARSAW)
            quick = call_row(header, cells, WARSAW)
            assert quick is None or expected == [quick], row
            assert prepare_unit(CSV, f"{header}\n{cells}", WARSAW) == (
                (expected, None) if isinstance(expected, list) else ([], expected)
            )
