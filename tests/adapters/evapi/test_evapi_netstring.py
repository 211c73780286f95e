"""Netstring framing of the evapi connection: whatever way TCP cuts the stream, the payloads
come out whole and in order; a stream that is not netstrings is refused, naming why."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callwarden.adapters.evapi.netstring import (
    MAX_FRAME,
    NetstringDecoder,
    NetstringError,
    encode,
)

payloads = st.lists(st.binary(max_size=300), max_size=20)


def test_encode_writes_length_colon_payload_comma() -> None:
    assert encode(b'{"a":1}') == b'7:{"a":1},'
    assert encode(b"") == b"0:,"


@given(payloads, st.lists(st.integers(min_value=0, max_value=2000), max_size=30))
def test_payloads_survive_any_split_of_the_stream(items: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(encode(p) for p in items)
    points = sorted({min(c, len(stream)) for c in cuts})
    decoder = NetstringDecoder()
    out: list[bytes] = []
    start = 0
    for point in [*points, len(stream)]:
        out += decoder.feed(stream[start:point])
        start = point
    assert out == items
    assert decoder.pending == 0


@given(payloads)
def test_whitespace_between_frames_is_skipped(items: list[bytes]) -> None:
    stream = b"\r\n".join(encode(p) for p in items) + b"\n"
    assert NetstringDecoder().feed(stream) == items


def test_incomplete_frame_waits_for_the_rest() -> None:
    decoder = NetstringDecoder()
    assert decoder.feed(b"5:hel") == []
    assert decoder.feed(b"lo") == []  # the comma has not arrived yet
    assert decoder.feed(b",3:") == [b"hello"]
    assert decoder.pending == 2


@pytest.mark.parametrize(
    ("stream", "problem"),
    [
        (b"abc:x,", "length"),
        (b"3:abc;", "does not end with ','"),
        (b":abc,", "length"),
        (b"70000:", "exceeds"),
        (b"1234567", "more than 5 digits"),
    ],
)
def test_a_stream_that_is_not_netstrings_is_refused(stream: bytes, problem: str) -> None:
    with pytest.raises(NetstringError, match=problem):
        NetstringDecoder().feed(stream)


def test_frames_up_to_the_maximum_are_accepted() -> None:
    payload = b"x" * MAX_FRAME
    assert NetstringDecoder().feed(encode(payload)) == [payload]
