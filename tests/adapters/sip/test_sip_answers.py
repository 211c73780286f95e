"""How an admission decision becomes a SIP response."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from tests.adapters.sip.sipkit import request, response_of

from callwarden.adapters.sip.answers import RefusalStatus, decision_answer, reply, respond
from callwarden.adapters.sip.incoming import IncomingRequest, check_request
from callwarden.adapters.sip.message import Request, Response, parse_message
from callwarden.core.admission.decision import Finding, admitted, refused

URI = "sip:+442079460123@gw.example;user=phone"


def invite() -> IncomingRequest:
    message = parse_message(request("INVITE", URI))
    assert isinstance(message, Request)
    return check_request(message)


def answer(decision: object, refusal: RefusalStatus = RefusalStatus.DECISION) -> Response:
    incoming = invite()
    status, headers = decision_answer(incoming, decision, refusal)  # type: ignore[arg-type]
    return response_of(reply(incoming, status, incoming.vias[0], *headers))


def test_an_admission_is_a_302_back_to_the_original_destination() -> None:
    r = answer(admitted(600))
    assert (r.status, r.reason) == (302, "Moved Temporarily")
    assert r.get("Contact") == f"<{URI}>"
    assert r.get("X-Callwarden-Decision") == "admit"
    assert r.get("X-Callwarden-Max-Duration") == "600"
    assert r.get("X-Callwarden-Degraded") is None


def test_without_a_duration_cap_the_header_is_left_out() -> None:
    assert answer(admitted(None)).get("X-Callwarden-Max-Duration") is None


def test_a_degraded_admission_says_so() -> None:
    assert answer(admitted(60, degraded=True)).get("X-Callwarden-Degraded") == "yes"


def test_an_emergency_call_is_redirected_and_flagged() -> None:
    r = answer(admitted(None, emergency=True))
    assert r.status == 302 and r.get("X-Callwarden-Emergency") == "yes"


def test_a_refusal_carries_its_status_and_clauses_in_the_reason_header() -> None:
    finding = Finding("destination_type", ("FRD-1",), "destination +449098765432 is premium")
    r = answer(refused(finding))
    assert (r.status, r.reason) == (403, "Forbidden")
    assert r.get("Reason") == 'SIP;cause=403;text="FRD-1: destination +449098765432 is premium"'
    assert r.get("X-Callwarden-Decision") == "refuse"
    assert r.get("X-Callwarden-Clauses") == "FRD-1"
    assert r.get("Contact") is None


def test_a_rate_refusal_is_503_with_a_whole_second_retry_after() -> None:
    finding = Finding("attempt_rate", ("LIM-5",), "too many call attempts", 503, 0.25)
    r = answer(refused(finding))
    assert r.status == 503 and r.get("Retry-After") == "1"


def test_the_603_option_declines_every_4xx_refusal_and_keeps_the_decided_cause() -> None:
    busy = Finding("concurrent_calls", ("LIM-2",), "concurrent call limit reached", 486)
    r = answer(refused(busy), RefusalStatus.DECLINE)
    assert (r.status, r.reason) == (603, "Decline")
    assert r.get("Reason") == 'SIP;cause=486;text="LIM-2: concurrent call limit reached"'
    rate = Finding("attempt_rate", ("LIM-5",), "too many", 503, 2.0)
    assert answer(refused(rate), RefusalStatus.DECLINE).status == 503


def test_a_refusal_status_outside_4xx_to_6xx_is_answered_403() -> None:
    odd = Finding("x", ("FRD-1",), "odd", sip_status=200)
    assert answer(refused(odd)).status == 403


def test_responses_copy_the_transaction_headers_and_add_one_stable_to_tag() -> None:
    incoming = invite()
    first = response_of(reply(incoming, 302, incoming.vias[0]))
    again = response_of(reply(incoming, 302, incoming.vias[0]))
    for name in ("Via", "From", "Call-ID", "CSeq"):
        assert first.get(name) == incoming.request.get(name)
    assert first.get("To") == again.get("To")
    assert (first.get("To") or "").startswith(f"<{URI}>;tag=cw")


def test_a_provisional_100_gets_no_to_tag() -> None:
    incoming = invite()
    assert response_of(reply(incoming, 100, incoming.vias[0])).get("To") == f"<{URI}>"


def test_an_existing_to_tag_is_kept() -> None:
    data = request("BYE", to_uri=URI).replace(
        f"To: <{URI}>".encode(), f"To: <{URI}>;tag=x1".encode()
    )
    message = parse_message(data)
    assert isinstance(message, Request)
    assert response_of(respond(message, 405)).get("To") == f"<{URI}>;tag=x1"


@given(st.text(max_size=300))
def test_no_reason_text_can_break_the_response(reason: str) -> None:
    r = answer(refused(Finding("caller_id", ("CID-1",), reason)))
    text = r.get("Reason") or ""
    assert text.startswith('SIP;cause=403;text="CID-1: ') and text.endswith('"')
    assert [h.name for h in r.headers].count("Reason") == 1
