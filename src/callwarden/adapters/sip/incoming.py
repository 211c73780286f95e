"""A request checked for what every server transaction needs (RFC 3261 section 8.2).

`check_request` reads the mandatory headers once: Via, From, To, Call-ID and CSeq. Anything
missing or malformed raises `ParseError` carrying the request, so it can be answered 400 when
`answerable` says the response can be built at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from callwarden.adapters.sip.fields import (
    CSeq,
    NameAddr,
    Via,
    parse_cseq,
    parse_name_addr,
    parse_via,
    split_list,
    uri_scheme,
)
from callwarden.adapters.sip.message import ParseError, Request

MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
"""The headers every request must carry, and that every response copies."""

URI_SCHEMES = frozenset({"sip", "sips", "tel"})
EMERGENCY_URN = "urn:service:sos"
"""The emergency service URNs of RFC 5031 (urn:service:sos, urn:service:sos.police...), the
one kind of URN a Request-URI may be here."""


@dataclass(frozen=True, slots=True)
class IncomingRequest:
    """A request with its mandatory headers read: every Via value (top first), the top Via
    parsed, Call-ID, CSeq, and the From and To name-addrs."""

    request: Request
    vias: tuple[str, ...]
    top_via: Via
    call_id: str
    cseq: CSeq
    from_: NameAddr
    to: NameAddr

    @property
    def method(self) -> str:
        """The request's method."""
        return self.request.method

    @property
    def from_tag(self) -> str | None:
        """The From tag (None for an RFC 2543 peer that sends none)."""
        return self.from_.param("tag")

    @property
    def to_tag(self) -> str | None:
        """The To tag: present only on requests inside a dialog (and on ACKs)."""
        return self.to.param("tag")


def is_emergency_urn(uri: str) -> bool:
    """Whether a URI is an emergency service URN (always admitted)."""
    return uri.lower().startswith(EMERGENCY_URN)


def answerable(request: Request) -> bool:
    """Whether a response can be built: every mandatory header is present, and it is not an
    ACK (which is never answered)."""
    return request.method != "ACK" and all(request.get(name) for name in MANDATORY)


def check_request(request: Request) -> IncomingRequest:
    """Read the mandatory headers of a request, or raise `ParseError` (400, or 416 for a
    Request-URI scheme other than sip, sips and tel) naming what is wrong."""
    for name in MANDATORY:
        if not request.get(name):
            raise ParseError(f"the request has no {name} header", request=request)
    try:
        vias = tuple(v for line in request.get_all("Via") for v in split_list(line))
        if not vias:
            raise ParseError("the Via header is empty")
        top_via = parse_via(vias[0])
        cseq = parse_cseq(request.get("CSeq") or "")
        from_ = parse_name_addr(request.get("From") or "", "From")
        to = parse_name_addr(request.get("To") or "", "To")
    except ParseError as exc:
        raise ParseError(exc.reason, request=request) from exc
    if cseq.method != request.method:
        raise ParseError(
            f"the CSeq method {cseq.method} is not the request's method {request.method}",
            request=request,
        )
    if uri_scheme(request.uri) not in URI_SCHEMES and not is_emergency_urn(request.uri):
        raise ParseError(
            f"Request-URI scheme {uri_scheme(request.uri)!r} is not sip, sips or tel",
            status=416,
            request=request,
        )
    return IncomingRequest(
        request=request,
        vias=vias,
        top_via=top_via,
        call_id=request.get("Call-ID") or "",
        cseq=cseq,
        from_=from_,
        to=to,
    )
