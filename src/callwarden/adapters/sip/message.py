"""SIP messages: parsing and serialising requests and responses (RFC 3261 section 7).

Only the syntax a redirect server needs, with strict limits on every size so that no datagram
or stream can make the parser allocate without bound. Header names are canonical after parsing:
compact forms are expanded (`i` is Call-ID, `v` is Via, ...) and every name is spelled one way,
so a lookup never depends on how the peer wrote it. Anything that is not a well-formed message
raises `ParseError`; when the request line and headers were readable the error carries the
request, so that the caller can still answer it (400, 505, 513).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

COMPACT_FORMS: dict[str, str] = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
"""The one-letter header names of RFC 3261 section 7.3.3 and later RFCs, with their long form."""

_SPECIAL_SPELLINGS = (
    "Call-ID",
    "CSeq",
    "WWW-Authenticate",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "Remote-Party-ID",
    "MIME-Version",
    "RSeq",
    "RAck",
)
_SPELLING = {name.lower(): name for name in (*_SPECIAL_SPELLINGS, *COMPACT_FORMS.values())}

_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~\-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_DIGITS = re.compile(r"[0-9]{1,10}")
_HEADER_LINE = re.compile(r"([A-Za-z0-9.!%*_+`'~\-]+)[ \t]*:(.*)", re.DOTALL)
_HEADER_LINES = re.compile(r"^([A-Za-z0-9.!%*_+`'~\-]+)[ \t]*:[ \t]*([^\r\n]*)", re.MULTILINE)
SIP_VERSION = "SIP/2.0"


@dataclass(frozen=True, slots=True)
class Limits:
    """The largest message, header section, header count, header line and body accepted."""

    max_message_bytes: int = 65_535
    max_head_bytes: int = 16_384
    max_headers: int = 100
    max_header_bytes: int = 8_192
    max_body_bytes: int = 32_768


DEFAULT_LIMITS = Limits()


class Header(NamedTuple):
    """One header field: its canonical name and its value (unfolded, trimmed)."""

    name: str
    value: str


class _HeaderLookup:
    """Header lookup shared by requests and responses (both carry ``headers`` and ``_first``)."""

    __slots__ = ()
    headers: tuple[Header, ...]
    _first: dict[str, str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_first", _first_values(self.headers))

    def get(self, name: str) -> str | None:
        """The first value of a header field (any spelling or compact form), or None."""
        return self._first.get(canonical_name(name))

    def get_all(self, name: str) -> list[str]:
        """Every value of a header field, one per header line, in order."""
        wanted = canonical_name(name)
        return [h.value for h in self.headers if h.name == wanted]


@dataclass(frozen=True, slots=True)
class Request(_HeaderLookup):
    """A SIP request: method, Request-URI, header fields in order, and body."""

    method: str
    uri: str
    headers: tuple[Header, ...]
    body: bytes = b""
    _first: dict[str, str] = field(init=False, repr=False, compare=False)

    def serialize(self) -> bytes:
        """The request on the wire, with a Content-Length matching the body."""
        return _serialize(f"{self.method} {self.uri} {SIP_VERSION}", self.headers, self.body)


@dataclass(frozen=True, slots=True)
class Response(_HeaderLookup):
    """A SIP response: status, reason phrase, header fields in order, and body."""

    status: int
    reason: str
    headers: tuple[Header, ...]
    body: bytes = b""
    _first: dict[str, str] = field(init=False, repr=False, compare=False)

    def serialize(self) -> bytes:
        """The response on the wire, with a Content-Length matching the body."""
        return serialize_response(self.status, self.reason, self.headers, self.body)


Message = Request | Response


class ParseError(Exception):
    """A message that is not well-formed SIP, or breaks a limit.

    `status` is the response the error deserves (400, 505, 513...). `request` is set when the
    request line and headers could be read, so that the error can be answered; without it the
    message can only be dropped.
    """

    def __init__(self, reason: str, *, status: int = 400, request: Request | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.request = request


def canonical_name(name: str) -> str:
    """The one spelling of a header name: compact forms expanded, known names as the RFCs
    write them, any other name with each dash-separated word capitalised."""
    known = _CANONICAL.get(name)
    if known is not None:
        return known
    lower = name.strip().lower()
    if lower in COMPACT_FORMS:
        spelled = COMPACT_FORMS[lower]
    elif lower in _SPELLING:
        spelled = _SPELLING[lower]
    else:
        spelled = "-".join(part.capitalize() for part in lower.split("-"))
    if len(_CANONICAL) < _CANONICAL_MEMO:
        _CANONICAL[name] = spelled
    return spelled


_CANONICAL: dict[str, str] = {}
_CANONICAL_MEMO = 4096
"""Spellings already worked out, bounded so that peers inventing names cannot grow it."""


def _first_values(headers: tuple[Header, ...]) -> dict[str, str]:
    """The first value of each header name, for lookups."""
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name, value)
    return first


def serialize_response(
    status: int, reason: str, headers: Sequence[Header], body: bytes = b""
) -> bytes:
    """A response on the wire, built straight from its parts."""
    return _serialize(f"{SIP_VERSION} {status} {reason}", headers, body)


def _serialize(start_line: str, headers: Sequence[Header], body: bytes) -> bytes:
    lines = [start_line]
    lines.extend(f"{h.name}: {h.value}" for h in headers if h.name != "Content-Length")
    lines.append(f"Content-Length: {len(body)}")
    text = "\r\n".join(lines)
    breaks = len(lines) - 1
    if text.count("\r") != breaks or text.count("\n") != breaks:
        raise ValueError("a start line or header value contains CR or LF")
    return (text + "\r\n\r\n").encode() + body


def parse_message(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Message:
    """Parse one SIP message (a datagram, or one message framed from a stream).

    Leading CRLFs are skipped (RFC 3261 section 7.5). Without Content-Length the body is the
    rest of the data; with it, the body is that many bytes and anything after it is ignored.
    Raises `ParseError` for anything else than a well-formed message within `limits`.
    """
    if len(data) > limits.max_message_bytes:
        raise ParseError(
            f"the message is {len(data)} bytes, more than {limits.max_message_bytes}", status=513
        )
    start = 0
    while data[start : start + 1] in (b"\r", b"\n"):
        start += 1
    head_end = data.find(b"\r\n\r\n", start)
    if head_end >= 0 and data.find(b"\n\n", start, head_end) < 0:
        body_start = head_end + 4
    else:  # bare LF line ends, which some peers send
        end = _HEAD_END.search(data, start)
        if end is None:
            raise ParseError("no empty line ends the header section")
        head_end, body_start = end.start(), end.end()
    if head_end - start > limits.max_head_bytes:
        raise ParseError(f"the header section is longer than {limits.max_head_bytes} bytes")
    try:
        head = data[start:head_end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError("the header section is not UTF-8") from exc
    if _CONTROL.search(head) or head.count("\r") != head.count("\r\n"):
        raise ParseError("the header section contains control characters")
    start_line, _, block = head.partition("\n")
    start_line = start_line.rstrip("\r")
    headers = _headers(block, limits)
    rest = data[body_start:]
    if start_line.startswith("SIP/"):
        status, reason = _status_line(start_line)
        body = _body(headers, rest, limits, None)
        return Response(status, reason, headers, body)
    method, uri, version = _request_line(start_line)
    head_only = Request(method, uri, headers)
    if version.upper() != SIP_VERSION:
        raise ParseError(f"SIP version {version!r} is not supported", status=505, request=head_only)
    body = _body(headers, rest, limits, head_only)
    return Request(method, uri, headers, body)


def _request_line(line: str) -> tuple[str, str, str]:
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise ParseError("the request line is not 'METHOD Request-URI SIP/2.0'")
    method, uri, version = parts
    if not _TOKEN.fullmatch(method):
        raise ParseError("the method is not a token")
    if ":" not in uri:
        raise ParseError("the Request-URI has no scheme")
    return method, uri, version


def _status_line(line: str) -> tuple[int, str]:
    parts = line.split(" ", 2)
    if len(parts) < 2 or parts[0].upper() != SIP_VERSION:
        raise ParseError("the status line is not 'SIP/2.0 CODE Reason'")
    code = parts[1]
    if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
        raise ParseError("the status code is not a number from 100 to 699")
    return int(code), parts[2] if len(parts) == 3 else ""


def _headers(block: str, limits: Limits) -> tuple[Header, ...]:
    """The header lines after the start line, unfolded (a line starting with a space or tab
    continues the previous one)."""
    if not block:
        return ()
    if len(block) <= limits.max_header_bytes and "\n " not in block and "\n\t" not in block:
        # The common case: no folded lines, and no line can be over the limit.
        found = _HEADER_LINES.findall(block)
        if block[:1] not in (" ", "\t") and len(found) == block.count("\n") + 1:
            if len(found) > limits.max_headers:
                raise ParseError(f"the message has more than {limits.max_headers} headers")
            return tuple([Header(canonical_name(n), v.rstrip(" \t")) for n, v in found])
    logical: list[str] = []
    for raw in block.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if line[:1] in (" ", "\t"):
            if not logical:
                raise ParseError("the first header line is a continuation line")
            logical[-1] = f"{logical[-1]} {line.strip()}"
        else:
            logical.append(line)
        if len(logical[-1]) > limits.max_header_bytes:
            raise ParseError(f"a header is longer than {limits.max_header_bytes} characters")
    if len(logical) > limits.max_headers:
        raise ParseError(f"the message has more than {limits.max_headers} headers")
    headers: list[Header] = []
    for line in logical:
        match = _HEADER_LINE.match(line)
        if match is None:
            raise ParseError(f"header line {line[:40]!r} is not 'Name: value'")
        headers.append(Header(canonical_name(match[1]), match[2].strip()))
    return tuple(headers)


def _body(
    headers: tuple[Header, ...], rest: bytes, limits: Limits, request: Request | None
) -> bytes:
    lengths = [h.value for h in headers if h.name == "Content-Length"]
    if not lengths:
        if len(rest) > limits.max_body_bytes:
            raise ParseError(
                f"the body is longer than {limits.max_body_bytes} bytes",
                status=513,
                request=request,
            )
        return rest
    if len(lengths) > 1 or not _DIGITS.fullmatch(lengths[0]):
        raise ParseError("Content-Length is not one decimal number", request=request)
    length = int(lengths[0])
    if length > limits.max_body_bytes:
        raise ParseError(
            f"Content-Length {length} is more than {limits.max_body_bytes} bytes",
            status=513,
            request=request,
        )
    if length > len(rest):
        raise ParseError(
            f"the body is {len(rest)} bytes, shorter than Content-Length {length}", request=request
        )
    return rest[:length]
