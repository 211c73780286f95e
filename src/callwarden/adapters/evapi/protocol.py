"""The JSON messages exchanged with Kamailio over evapi (integrations/kamailio/kamailio.cfg).

Kamailio sends, each as one netstring:

- `{"type": "attempt", "tindex": N, "tlabel": N, "call_id", "destination", "caller",
  "source_ip", "tenant_id"?, "user_id"?}`: an initial INVITE, its transaction suspended until
  the verdict names it again by `tindex` and `tlabel`;
- `{"type": "event", "event": "answered"|"ended"|"failed", "call_id", "source_ip",
  "tenant_id"?}`: a dialog event of an admitted call.

callwarden answers an attempt with `{"type": "verdict", "tindex", "tlabel", "admit": 1|0,
"status", "phrase", "max_duration", "headers"}`: `max_duration` is in seconds (0: no limit);
`headers` are the header lines Kamailio adds to a refusal (Reason with the clause ids, and
Retry-After when the refusal says when to try again). Events get no answer.

Field values are checked like the HTTP API's (the same types), so a malformed attempt is
refused with a 400 naming the field, never admitted by accident and never a 5xx.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from callwarden.adapters.api.routes.admission import CallId, SourceIp
from callwarden.adapters.api.schemas import TenantRef, UserRef
from callwarden.adapters.sip.fields import refusal_reason
from callwarden.core.admission.attempt import CallAttempt, Direction
from callwarden.core.admission.decision import Decision
from callwarden.services.admission import CallEvent

TransactionPart = Annotated[int, Field(strict=True, ge=0, le=2**32 - 1)]
"""One half of a suspended tm transaction's identity ($T(id_index) or $T(id_label))."""


class _Message(BaseModel):
    # Fields Kamailio may add later are ignored; the ones callwarden reads are checked.
    model_config = ConfigDict(extra="ignore", frozen=True)


class AttemptQuestion(_Message):
    """A call attempt Kamailio holds suspended until the verdict arrives."""

    type: Literal["attempt"]
    tindex: TransactionPart
    tlabel: TransactionPart
    call_id: CallId
    destination: Annotated[str, StringConstraints(max_length=128)]
    caller: Annotated[str, StringConstraints(max_length=64)] | None = None
    source_ip: SourceIp | None = None
    tenant_id: TenantRef | None = None
    user_id: UserRef | None = None
    direction: Direction = Direction.OUTBOUND

    def attempt(self, at: float) -> CallAttempt:
        """The call attempt this question asks about, placed at `at` (epoch seconds)."""
        return CallAttempt(
            call_id=self.call_id,
            destination=self.destination,
            direction=self.direction,
            at=at,
            tenant_id=self.tenant_id,
            user_id=self.user_id,
            caller=self.caller,
            source_ip=self.source_ip,
        )


class CallEventReport(_Message):
    """A dialog event of a call callwarden admitted: it renews or releases the call's leases."""

    type: Literal["event"]
    event: CallEvent
    call_id: CallId
    source_ip: SourceIp | None = None
    tenant_id: TenantRef | None = None


class BadMessage(Exception):
    """A message that cannot be acted on as sent. When it still names its suspended
    transaction (`tindex`, `tlabel`), the attempt is answered with a 400 giving `reason`;
    `destination` is kept so an emergency call is admitted all the same."""

    def __init__(
        self,
        reason: str,
        *,
        tindex: int | None = None,
        tlabel: int | None = None,
        destination: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.tindex = tindex
        self.tlabel = tlabel
        self.destination = destination


def read_message(payload: bytes) -> AttemptQuestion | CallEventReport:
    """Parse one message from Kamailio, or raise `BadMessage` naming what is wrong."""
    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise BadMessage(f"the message is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise BadMessage("the message is not a JSON object")
    kind = raw.get("type")
    model: type[AttemptQuestion] | type[CallEventReport]
    if kind == "attempt":
        model = AttemptQuestion
    elif kind == "event":
        model = CallEventReport
    else:
        raise BadMessage(f"unknown message type {str(kind)[:40]!r}; expected attempt or event")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "message"
        raise BadMessage(
            f"{kind}: {where}: {first['msg']}",
            tindex=_transaction_part(raw.get("tindex")),
            tlabel=_transaction_part(raw.get("tlabel")),
            destination=_text(raw.get("destination")),
        ) from None


def _transaction_part(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32:
        return value
    return None


def _text(value: object) -> str | None:
    return value[:128] if isinstance(value, str) else None


REASON_PHRASES: dict[int, str] = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    480: "Temporarily Unavailable",
    484: "Address Incomplete",
    486: "Busy Here",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    503: "Service Unavailable",
    603: "Decline",
}
"""The reason phrase sent with each status callwarden uses (RFC 3261 section 21)."""


def refusal_headers(decision: Decision) -> str:
    """The header lines added to a refusal: `Reason` (RFC 3326) with the status, clause ids
    and reason, as the SIP redirect interface writes it, and `Retry-After` (whole seconds,
    rounded up) when the refusal says when.

    The text is a quoted-string: quotes and backslashes are escaped and control characters
    replaced, so no value can break the header or inject another one.
    """
    lines = [f"Reason: {refusal_reason(decision, decision.sip_status)}"]
    if decision.retry_after_s is not None:
        lines.append(f"Retry-After: {max(1, math.ceil(decision.retry_after_s))}")
    return "\r\n".join(lines)


def verdict_message(tindex: int, tlabel: int, decision: Decision) -> bytes:
    """The answer that resumes the suspended transaction `tindex`:`tlabel` with `decision`."""
    status = 200 if decision.admit else decision.sip_status
    return orjson.dumps(
        {
            "type": "verdict",
            "tindex": tindex,
            "tlabel": tlabel,
            "admit": 1 if decision.admit else 0,
            "status": status,
            "phrase": REASON_PHRASES.get(status, "Refused"),
            "max_duration": decision.max_duration_s or 0,
            "headers": "" if decision.admit else refusal_headers(decision),
            "clause_ids": list(decision.clause_ids),
        }
    )
