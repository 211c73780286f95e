"""Cutting input into raw items: JSON documents, CSV rows and log lines, with nothing lost."""

from __future__ import annotations

import io

import orjson
from hypothesis import given
from hypothesis import strategies as st

from callwarden.core.usage import split

PRETTY = '{\n\t"variables": {\n\t\t"uuid": "a"\n\t}\n}'


def positions(fmt: str, data: str) -> list[tuple[str, str]]:
    return [(item.position, item.text) for item in split(fmt, data)]


def test_json_lines_give_one_item_per_line_and_skip_blank_lines() -> None:
    body = '{"a": 1}\n\n{"b": 2}\r\n   \n{"c": 3}\n'
    assert positions("callwarden-json", body) == [
        ("line 1", '{"a": 1}'),
        ("line 3", '{"b": 2}'),
        ("line 5", '{"c": 3}'),
    ]


def test_pretty_printed_documents_are_one_item_each() -> None:
    body = f"{PRETTY}\n{PRETTY}\n"
    assert positions("freeswitch-json", body) == [("lines 1-5", PRETTY), ("lines 6-10", PRETTY)]


def test_braces_inside_strings_do_not_end_a_document() -> None:
    document = '{\n  "app_data": "x}}]]",\n  "y": "{{"\n}'
    assert positions("freeswitch-json", document) == [("lines 1-4", document)]


def test_an_array_body_gives_one_item_per_element() -> None:
    body = '[{"a": 1},\n {"b": "x"}]'
    assert positions("callwarden-json", body) == [
        ("lines 1-2 item 1", '{"a":1}'),
        ("lines 1-2 item 2", '{"b":"x"}'),
    ]


def test_a_truncated_document_does_not_swallow_the_next_one() -> None:
    body = '{"a": {"b": 1,\n{"c": 2}\n'
    assert positions("freeswitch-json", body) == [
        ("line 1", '{"a": {"b": 1,'),
        ("line 2", '{"c": 2}'),
    ]


def test_an_unclosed_document_at_the_end_is_still_an_item() -> None:
    assert positions("freeswitch-json", '{\n "a": 1\n') == [("lines 1-2", '{\n "a": 1')]


def test_a_byte_order_mark_is_removed() -> None:
    assert positions("callwarden-json", '\ufeff{"a": 1}') == [("line 1", '{"a": 1}')]


def test_file_lines_are_read_as_well_as_whole_text() -> None:
    body = '{"a": 1}\n{"b": 2}\n'
    assert list(split("callwarden-json", io.StringIO(body))) == list(split("callwarden-json", body))


def test_callwarden_csv_items_carry_their_header() -> None:
    assert positions("callwarden-csv", "call_id,callee\nx,1\n\ny,2\n") == [
        ("line 2", "call_id,callee\nx,1"),
        ("line 4", "call_id,callee\ny,2"),
    ]


def test_database_rows_are_split_as_csv_or_json_by_their_first_line() -> None:
    assert positions("kamailio-acc-db", "id,callid\n1,a\n") == [("line 2", "id,callid\n1,a")]
    assert positions("kamailio-acc-db", '\n{"id": 1}\n') == [("line 2", '{"id": 1}')]


_LINE = st.text(
    alphabet=st.characters(blacklist_characters="\r\n["),
    max_size=30,
)


@given(st.lists(_LINE, max_size=20))
def test_every_non_blank_log_line_is_exactly_one_item(lines: list[str]) -> None:
    items = list(split("kamailio-acc-syslog", "\n".join(lines)))
    assert [item.text for item in items] == [line for line in lines if line.strip()]


@given(st.lists(_LINE, max_size=20))
def test_no_character_of_json_input_is_lost(lines: list[str]) -> None:
    items = list(split("freeswitch-json", "\n".join(lines)))
    kept = "".join("".join(item.text.split()) for item in items)
    assert kept == "".join("".join(line.split()) for line in lines)


@given(
    st.lists(st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1)), max_size=10)
)
def test_each_json_line_object_is_one_item(objects: list[dict[str, int]]) -> None:
    body = "\n".join(orjson.dumps(value).decode() for value in objects)
    assert [orjson.loads(item.text) for item in split("callwarden-json", body)] == objects
