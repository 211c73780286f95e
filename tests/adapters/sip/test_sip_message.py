"""The SIP parser and serialiser: round trips, compact forms, limits, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.adapters.sip.sipkit import request

from callwarden.adapters.sip.fields import (
    parse_cseq,
    parse_name_addr,
    parse_via,
    quoted,
    split_list,
    uri_user,
    with_source,
)
from callwarden.adapters.sip.incoming import check_request
from callwarden.adapters.sip.message import (
    Header,
    Limits,
    ParseError,
    Request,
    Response,
    canonical_name,
    parse_message,
)

INVITE = (
    b"INVITE sip:+442079460123@gw.example;user=phone SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1, SIP/2.0/TCP 10.0.0.2;branch=z9hG4bK-0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.3:5070;branch=z9hG4bK-00\r\n"
    b'f: "Agent, One" <sip:+442079460000@pbx.example>;tag=abc\r\n'
    b"t: <sip:+442079460123@gw.example>\r\n"
    b"i: 1234@pbx\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Subject: a folded\r\n"
    b"\tsubject line\r\n"
    b"x-callwarden-tenant: tn_0123456789abcdef\r\n"
    b"c: application/sdp\r\n"
    b"l: 4\r\n"
    b"\r\n"
    b"v=0\r\n"
)


def test_compact_forms_and_any_spelling_read_as_the_long_name() -> None:
    message = parse_message(INVITE)
    assert isinstance(message, Request)
    assert message.get("Call-ID") == "1234@pbx"
    assert message.get("call-id") == message.get("i") == "1234@pbx"
    assert message.get("X-Callwarden-Tenant") == "tn_0123456789abcdef"
    assert message.get("Content-Type") == "application/sdp"
    assert canonical_name("cseq") == "CSeq" and canonical_name("x-foo-bar") == "X-Foo-Bar"


def test_folded_header_lines_are_unfolded_into_one_value() -> None:
    message = parse_message(INVITE)
    assert message.get("Subject") == "a folded subject line"


def test_the_body_is_exactly_content_length_bytes() -> None:
    message = parse_message(INVITE + b"trailing garbage")
    assert message.body == b"v=0\r"


def test_every_via_value_is_read_in_order_across_lines_and_commas() -> None:
    message = parse_message(INVITE)
    assert isinstance(message, Request)
    incoming = check_request(message)
    hosts = [parse_via(v).host for v in incoming.vias]
    assert hosts == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert incoming.top_via.branch == "z9hG4bK-1" and incoming.from_tag == "abc"


def test_a_parsed_message_survives_serialising_and_parsing_again() -> None:
    message = parse_message(INVITE)
    assert parse_message(message.serialize()) == message


def test_responses_parse_with_their_status_and_reason() -> None:
    message = parse_message(b"SIP/2.0 486 Busy Here\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(message, Response)
    assert (message.status, message.reason, message.get("Call-ID")) == (486, "Busy Here", "x")


def test_leading_crlfs_before_the_start_line_are_ignored() -> None:
    assert isinstance(parse_message(b"\r\n\r\n" + INVITE), Request)


def test_lf_only_line_endings_are_accepted() -> None:
    message = parse_message(INVITE.replace(b"\r\n", b"\n"))
    assert isinstance(message, Request) and message.get("CSeq") == "7 INVITE"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "no empty line"),
        (b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\n", "no empty line"),
        (b"INVITE sip:a@b\r\n\r\n", "request line"),
        (b"INVITE  sip:a@b SIP/2.0\r\n\r\n", "request line"),
        (b"INV\xc3TE sip:a@b SIP/2.0\r\n\r\n", "UTF-8"),
        (b"INVITE sip:a@b SIP/2.0\r\nCall-ID: a\x00b\r\n\r\n", "control characters"),
        (b"INVITE sip:a@b SIP/2.0\r\nCall-ID: a\rb\r\n\r\n", "control characters"),
        (b"INVITE sip:a@b SIP/2.0\r\n continued\r\n\r\n", "continuation"),
        (b"INVITE sip:a@b SIP/2.0\r\nno colon here\r\n\r\n", "Name: value"),
        (b"INVITE nouri SIP/2.0\r\n\r\n", "no scheme"),
        (b"SIP/2.0 99 Low\r\n\r\n", "status code"),
        (b"SIP/3.0 200 OK\r\n\r\n", "status line"),
    ],
)
def test_malformed_messages_raise_a_parse_error_naming_the_problem(
    data: bytes, reason: str
) -> None:
    with pytest.raises(ParseError, match=reason) as exc:
        parse_message(data)
    assert exc.value.request is None


def test_an_unsupported_version_is_answerable_with_505() -> None:
    with pytest.raises(ParseError) as exc:
        parse_message(b"INVITE sip:a@b SIP/3.0\r\nCall-ID: x\r\n\r\n")
    assert exc.value.status == 505 and exc.value.request is not None


@pytest.mark.parametrize(
    ("length", "status", "reason"),
    [("abc", 400, "decimal"), ("100", 400, "shorter"), ("99999999", 513, "more than")],
)
def test_a_bad_content_length_is_answerable(length: str, status: int, reason: str) -> None:
    data = f"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: {length}\r\n\r\nbody"
    with pytest.raises(ParseError, match=reason) as exc:
        parse_message(data.encode())
    assert exc.value.status == status
    assert exc.value.request is not None and exc.value.request.get("Call-ID") == "x"


def test_every_limit_is_enforced() -> None:
    with pytest.raises(ParseError, match="more than 2000") as exc:
        parse_message(INVITE + b"x" * 2000, Limits(max_message_bytes=2000))
    assert exc.value.status == 513
    with pytest.raises(ParseError, match="header section is longer than 100"):
        parse_message(INVITE, Limits(max_head_bytes=100))
    with pytest.raises(ParseError, match="more than 5 headers"):
        parse_message(request("OPTIONS"), Limits(max_headers=5))
    long_header = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: " + b"x" * 60 + b"\r\n\r\n"
    with pytest.raises(ParseError, match="longer than 50"):
        parse_message(long_header, Limits(max_header_bytes=50))
    body = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n" + b"y" * 11
    with pytest.raises(ParseError, match="body is longer than 10"):
        parse_message(body, Limits(max_body_bytes=10))


def test_serialising_refuses_a_header_value_with_cr_or_lf() -> None:
    response = Response(200, "OK", (Header("Subject", "a\r\nInjected: yes"),))
    with pytest.raises(ValueError, match="CR or LF"):
        response.serialize()


# -- header fields -----------------------------------------------------------------------------
def test_via_parts_and_parameters_are_read() -> None:
    via = parse_via("SIP / 2.0 / tcp [2001:db8::1]:5070 ; branch=z9hG4bK-x;rport;received=1.2.3.4")
    assert (via.transport, via.host, via.port) == ("TCP", "[2001:db8::1]", 5070)
    assert via.branch == "z9hG4bK-x" and via.has("rport") and via.param("rport") is None


@pytest.mark.parametrize(
    "bad", ["SIP/2.0 host", "HTTP/1.1/UDP host", "SIP/2.0/UDP", "SIP/2.0/UDP h:99999"]
)
def test_malformed_via_values_are_parse_errors(bad: str) -> None:
    with pytest.raises(ParseError, match="Via"):
        parse_via(bad)


def test_the_server_adds_received_and_fills_rport_on_the_top_via() -> None:
    named = with_source(
        parse_via("SIP/2.0/UDP pbx.example:5060;branch=z9hG4bK-1;rport"), "192.0.2.9", 40000
    )
    assert named.serialize() == (
        "SIP/2.0/UDP pbx.example:5060;branch=z9hG4bK-1;rport=40000;received=192.0.2.9"
    )
    same = parse_via("SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-1")
    assert with_source(same, "192.0.2.9", 5060) is same


def test_cseq_needs_a_number_below_two_to_the_31_and_a_method() -> None:
    assert parse_cseq("  42   INVITE ") == parse_cseq("42 INVITE")
    for bad in ("INVITE", "1", "2147483648 INVITE", "-1 INVITE"):
        with pytest.raises(ParseError, match="CSeq"):
            parse_cseq(bad)


def test_name_addr_forms_give_uri_and_parameters() -> None:
    quoted_display = parse_name_addr('"Smith, <J>" <sip:+4420@h;user=phone>;tag=9', "From")
    assert quoted_display.uri == "sip:+4420@h;user=phone" and quoted_display.param("tag") == "9"
    bare = parse_name_addr("sip:alice@h;tag=7", "From")
    assert bare.uri == "sip:alice@h" and bare.param("tag") == "7"
    with pytest.raises(ParseError, match="From"):
        parse_name_addr("<sip:alice@h", "From")


def test_comma_lists_split_outside_quotes_and_brackets() -> None:
    value = '"Doe, J" <sip:a@h>, <tel:+4420;x=a,b>'
    assert split_list(value) == ['"Doe, J" <sip:a@h>', "<tel:+4420;x=a,b>"]


@pytest.mark.parametrize(
    ("uri", "user"),
    [
        ("sip:+442079460123@gw;user=phone", "+442079460123"),
        ("sips:alice:secret@gw", "alice"),
        ("sip:%2B4420794;npdi@gw", "+4420794"),
        ("tel:+442079460123;phone-context=example.com", "+442079460123"),
        ("sip:gw.example", None),
        ("mailto:a@b", None),
    ],
)
def test_uri_user_reads_sip_and_tel_uris(uri: str, user: str | None) -> None:
    assert uri_user(uri) == user


def test_quoted_strings_escape_and_never_carry_line_breaks() -> None:
    assert quoted('say "hi" \\ bye') == '"say \\"hi\\" \\\\ bye"'
    assert "\r" not in quoted("a\r\nInjected: 1") and "\n" not in quoted("a\r\nb")
    assert len(quoted("x" * 500, max_length=20)) == 22


# -- properties and fuzzing ----------------------------------------------------------------------
TOKENS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=12)
VALUES = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029\x85"
    ),
    max_size=40,
).map(str.strip)


@given(
    method=TOKENS.map(str.upper),
    user=TOKENS,
    headers=st.lists(st.tuples(TOKENS, VALUES), max_size=15),
    body=st.binary(max_size=300),
)
def test_any_request_survives_a_round_trip(
    method: str, user: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    original = Request(
        method,
        f"sip:{user}@example.com",
        tuple(
            Header(canonical_name(n), v)
            for n, v in headers
            if canonical_name(n) != "Content-Length"
        ),
        body,
    )
    wire = original.serialize()
    reparsed = parse_message(wire)
    assert isinstance(reparsed, Request)
    assert (reparsed.method, reparsed.uri, reparsed.body) == (method, original.uri, body)
    assert reparsed.headers == (*original.headers, Header("Content-Length", str(len(body))))
    assert reparsed.serialize() == wire


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_nothing_but_parse_error(data: bytes) -> None:
    try:
        message = parse_message(data)
        if isinstance(message, Request):
            check_request(message)
    except ParseError as exc:
        assert exc.reason and 400 <= exc.status <= 599


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid INVITE with a few bytes replaced, inserted or deleted."""
    data = bytearray(INVITE)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.sampled_from([*b'\r\n:;,<>"\\ \t@=/0', 0, 0x7F, 0xC3, 0xFF]))
        if action == "replace":
            data[at] = byte
        elif action == "insert":
            data.insert(at, byte)
        else:
            del data[at]
    return bytes(data)


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_valid_messages_raise_nothing_but_parse_error(data: bytes) -> None:
    try:
        message = parse_message(data)
        if isinstance(message, Request):
            check_request(message)
    except ParseError as exc:
        assert exc.reason and 400 <= exc.status <= 599


def test_a_bare_lf_blank_line_ends_the_head_even_if_the_body_has_crlfs() -> None:
    data = b"OPTIONS sip:a@b SIP/2.0\nCall-ID: x\n\nline one\r\n\r\nline two"
    message = parse_message(data)
    assert message.get("Call-ID") == "x" and message.body == b"line one\r\n\r\nline two"
