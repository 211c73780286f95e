"""Responses: what a request is answered, and how an admission decision becomes SIP.

Every response copies Via, From, Call-ID and CSeq and adds a To tag (RFC 3261 section 8.2.6).
The tag is derived from the request (Call-ID, From tag, branch), so a retransmission answered
again, or a non-INVITE answered without state, gets the same tag.

A decision becomes:
- admit: `302 Moved Temporarily` with the original Request-URI as Contact,
  `X-Callwarden-Decision: admit`, `X-Callwarden-Max-Duration: N` (seconds, absent without a
  cap), `X-Callwarden-Degraded: yes` when a backing service was unreachable, and
  `X-Callwarden-Emergency: yes` for an emergency call (always admitted);
- refuse: the decision's SIP status (403 policy, 484 unusable number, 486 concurrency, 503 rate
  or degraded), or 603 Decline for every 4xx when the operator asks for it, with
  `Reason: SIP;cause=<decision status>;text="<clauses>: <reason>"`, `X-Callwarden-Decision:
  refuse`, `X-Callwarden-Clauses` and `Retry-After` when the decision has one.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from enum import StrEnum

from callwarden.adapters.sip.fields import quoted, refusal_reason
from callwarden.adapters.sip.incoming import IncomingRequest
from callwarden.adapters.sip.message import Header, Request, serialize_response
from callwarden.core.admission.decision import Decision

PHRASES: dict[int, str] = {
    100: "Trying",
    200: "OK",
    302: "Moved Temporarily",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    416: "Unsupported URI Scheme",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    503: "Service Unavailable",
    505: "Version Not Supported",
    513: "Message Too Large",
    603: "Decline",
}
_CLASS_PHRASES = {4: "Request Failure", 5: "Server Failure", 6: "Global Failure"}

ALLOWED_METHODS = "INVITE, ACK, CANCEL, OPTIONS"
SERVER = "callwarden"
DECISION_HEADER = "X-Callwarden-Decision"
MAX_DURATION_HEADER = "X-Callwarden-Max-Duration"
DEGRADED_HEADER = "X-Callwarden-Degraded"
EMERGENCY_HEADER = "X-Callwarden-Emergency"
CLAUSES_HEADER = "X-Callwarden-Clauses"


class RefusalStatus(StrEnum):
    """How refusals are answered: with the decision's own status, or 603 for every 4xx."""

    DECISION = "decision"
    DECLINE = "603"


def phrase(status: int) -> str:
    """The reason phrase of a status code."""
    return PHRASES.get(status) or _CLASS_PHRASES.get(status // 100, "Unknown")


def to_tag(request: Request, branch: str | None) -> str:
    """A To tag that is the same for every retransmission of one request."""
    seed = "\0".join((request.get("Call-ID") or "", request.get("From") or "", branch or ""))
    return "cw" + hashlib.blake2b(seed.encode(), digest_size=8).hexdigest()


def respond(
    request: Request,
    status: int,
    *,
    vias: Sequence[str] | None = None,
    branch: str | None = None,
    headers: Sequence[Header] = (),
) -> bytes:
    """A response to `request` on the wire. `vias` replaces the request's Via values (the top
    one with received/rport added by the transport); `branch` seeds the To tag."""
    via_values = request.get_all("Via") if vias is None else vias
    to = request.get("To") or ""
    if status > 100 and ";tag=" not in to.lower().replace(" ", ""):
        to = f"{to};tag={to_tag(request, branch)}"
    copied = [
        *(Header("Via", v) for v in via_values),
        Header("From", request.get("From") or ""),
        Header("To", to),
        Header("Call-ID", request.get("Call-ID") or ""),
        Header("CSeq", request.get("CSeq") or ""),
        Header("Server", SERVER),
        *headers,
    ]
    return serialize_response(status, phrase(status), copied)


def bad_request(request: Request, status: int, reason: str) -> bytes:
    """The answer to a malformed request (400, 416, 505, 513...), the reason in a Warning."""
    warning = Header("Warning", f"399 callwarden {quoted(reason)}")
    return respond(request, status, headers=[warning])


def reply(incoming: IncomingRequest, status: int, top_via: str, *headers: Header) -> bytes:
    """A response to a checked request; `top_via` is its top Via as the transport returns it."""
    return respond(
        incoming.request,
        status,
        vias=(top_via, *incoming.vias[1:]),
        branch=incoming.top_via.branch,
        headers=headers,
    )


def decision_answer(
    incoming: IncomingRequest, decision: Decision, refusal: RefusalStatus
) -> tuple[int, list[Header]]:
    """The status and headers that carry an admission decision to the SIP server."""
    if decision.admit:
        headers = [Header("Contact", f"<{incoming.request.uri}>"), Header(DECISION_HEADER, "admit")]
        if decision.max_duration_s is not None:
            headers.append(Header(MAX_DURATION_HEADER, str(int(decision.max_duration_s))))
        if decision.degraded:
            headers.append(Header(DEGRADED_HEADER, "yes"))
        if decision.emergency:
            headers.append(Header(EMERGENCY_HEADER, "yes"))
        return 302, headers
    decided = decision.sip_status if 400 <= decision.sip_status <= 699 else 403
    status = 603 if refusal is RefusalStatus.DECLINE and decided < 500 else decided
    clauses = ", ".join(decision.clause_ids)
    headers = [
        Header("Reason", refusal_reason(decision, decided)),
        Header(DECISION_HEADER, "refuse"),
    ]
    if clauses:
        headers.append(Header(CLAUSES_HEADER, clauses))
    if decision.degraded:
        headers.append(Header(DEGRADED_HEADER, "yes"))
    if decision.retry_after_s is not None and math.isfinite(decision.retry_after_s):
        headers.append(Header("Retry-After", str(max(1, math.ceil(decision.retry_after_s)))))
    return status, headers
