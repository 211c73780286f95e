"""/v1/usage: usage records in (one or a batch, any supported format) and their dead letters.

`POST /v1/usage/records?format=...` takes the body as the switch produced it: one JSON object,
a JSON array, JSON lines, CSV with its header, or syslog lines. The answer comes only after the
records and dead letters are committed: 200 when every unit was stored (or already was), 207
when some units became dead letters, 422 when not one unit could be read (they are all kept as
dead letters, and the error lists them). A tenant's records are read under
`/v1/tenants/{tenant_id}/usage`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from callwarden.adapters.api.auth import Caller, PlatformDep
from callwarden.adapters.api.errors import ERROR_RESPONSES, ErrorBody, FieldError, error_response
from callwarden.adapters.api.schemas import (
    NO_CONTROL,
    Limit,
    Model,
    Offset,
    PageOut,
    TenantId,
    page_of,
)
from callwarden.core.errors import InvalidInput
from callwarden.core.usage.record import (
    CallRecord,
    LoginRecord,
    MessageRecord,
    UsageFormat,
    UsageKind,
    UsageRecord,
)
from callwarden.services.ports import PageRequest
from callwarden.services.usage import (
    DeadLetter,
    DeadLetterQuery,
    DeadLetterStatus,
    IngestResult,
    ReplayOutcome,
    UnreadableUsage,
    UsageQuery,
    UsageSummary,
)

router = APIRouter(tags=["usage"], responses=ERROR_RESPONSES)

DeadLetterId = Annotated[
    str, Path(pattern=r"^dl_[0-9a-f]{16}$", description="A dead letter id: dl_ and 16 hex digits")
]
_BODY_TYPES = ("application/json", "text/csv", "text/plain")


# -- bodies ---------------------------------------------------------------------------------------
class IngestOut(BaseModel):
    """What an ingestion did; dead letters are listed by id so they can be fixed and replayed."""

    stored: int
    duplicates: int
    dead_lettered: int
    dead_letter_ids: list[str]

    @classmethod
    def of(cls, r: IngestResult) -> IngestOut:
        return cls(
            stored=r.stored,
            duplicates=r.duplicates,
            dead_lettered=r.dead_lettered,
            dead_letter_ids=list(r.dead_letter_ids),
        )


class DeadLetterOut(BaseModel):
    """A unit of usage input that did not become records, with the reason and its raw text."""

    id: str
    received_at: datetime
    format: UsageFormat
    position: str
    reason: str
    raw_text: str
    status: DeadLetterStatus
    replayed_at: datetime | None
    tenant_id: str | None
    whole_body: bool

    @classmethod
    def of(cls, d: DeadLetter) -> DeadLetterOut:
        return cls(
            id=d.id,
            received_at=d.received_at,
            format=d.format,
            position=d.position,
            reason=d.reason,
            raw_text=d.raw_text,
            status=d.status,
            replayed_at=d.replayed_at,
            tenant_id=d.tenant_id,
            whole_body=d.whole_body,
        )


class DeadLetterFix(Model):
    """The corrected raw text of a dead letter."""

    raw_text: Annotated[str, Field(min_length=1, max_length=10_000_000)]


class DiscardIn(Model):
    """Why a dead letter is given up on (audited)."""

    reason: Annotated[str, Field(min_length=1, max_length=2000, pattern=NO_CONTROL)]


class ReplayOut(BaseModel):
    """A dead letter after its replay, and what the replay stored."""

    dead_letter: DeadLetterOut
    result: IngestOut

    @classmethod
    def of(cls, o: ReplayOutcome) -> ReplayOut:
        return cls(dead_letter=DeadLetterOut.of(o.dead_letter), result=IngestOut.of(o.result))


class ReplayAllOut(BaseModel):
    """Replaying every open dead letter: how many now stored, and which are still open."""

    attempted: int
    replayed: int
    still_open_ids: list[str]
    result: IngestOut


class CallOut(BaseModel):
    kind: Literal["call"] = "call"
    call_id: str
    leg: str
    tenant_id: str | None
    user_id: str | None
    trunk_id: str | None
    source_ip: str | None
    direction: str
    caller: str | None
    callee: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_s: int
    disposition: str
    cost_minor: int | None
    currency: str | None
    campaign: str | None
    attestation: str | None
    source_format: str


class MessageOut(BaseModel):
    kind: Literal["message"] = "message"
    message_id: str
    tenant_id: str | None
    user_id: str | None
    direction: str
    sender: str | None
    recipient: str
    sent_at: datetime
    status: str
    segments: int
    cost_minor: int | None
    currency: str | None
    campaign: str | None
    source_format: str


class LoginOut(BaseModel):
    kind: Literal["login"] = "login"
    event_id: str
    tenant_id: str | None
    user_id: str | None
    source_ip: str | None
    at: datetime
    success: bool
    method: str
    source_format: str


UsageRecordOut = Annotated[CallOut | MessageOut | LoginOut, Field(discriminator="kind")]


def _record_out(r: UsageRecord) -> CallOut | MessageOut | LoginOut:
    if isinstance(r, CallRecord):
        return CallOut(
            call_id=r.call_id,
            leg=r.leg,
            tenant_id=r.tenant_id,
            user_id=r.user_id,
            trunk_id=r.trunk_id,
            source_ip=r.source_ip,
            direction=r.direction.value,
            caller=r.caller,
            callee=r.callee,
            started_at=r.started_at,
            answered_at=r.answered_at,
            ended_at=r.ended_at,
            duration_s=r.duration_s,
            disposition=r.disposition.value,
            cost_minor=r.cost_minor,
            currency=r.currency,
            campaign=r.campaign,
            attestation=r.attestation,
            source_format=r.source_format,
        )
    if isinstance(r, MessageRecord):
        return MessageOut(
            message_id=r.message_id,
            tenant_id=r.tenant_id,
            user_id=r.user_id,
            direction=r.direction.value,
            sender=r.sender,
            recipient=r.recipient,
            sent_at=r.sent_at,
            status=r.status,
            segments=r.segments,
            cost_minor=r.cost_minor,
            currency=r.currency,
            campaign=r.campaign,
            source_format=r.source_format,
        )
    assert isinstance(r, LoginRecord)
    return LoginOut(
        event_id=r.event_id,
        tenant_id=r.tenant_id,
        user_id=r.user_id,
        source_ip=r.source_ip,
        at=r.at,
        success=r.success,
        method=r.method,
        source_format=r.source_format,
    )


class UsageSummaryOut(BaseModel):
    """A tenant's usage totals over a period."""

    tenant_id: str
    since: datetime
    until: datetime
    calls: int
    answered_calls: int
    billable_seconds: int
    messages: int
    logins: int
    cost_minor: dict[str, int]

    @classmethod
    def of(cls, q: UsageQuery, s: UsageSummary) -> UsageSummaryOut:
        return cls(
            tenant_id=q.tenant_id,
            since=q.since,
            until=q.until,
            calls=s.calls,
            answered_calls=s.answered_calls,
            billable_seconds=s.billable_seconds,
            messages=s.messages,
            logins=s.logins,
            cost_minor=s.cost_minor,
        )


# -- ingestion ------------------------------------------------------------------------------------
async def _read_body(request: Request, limit: int) -> bytes | None:
    """The whole body, or None beyond `limit` bytes (checked while it arrives)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


_INGEST_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "Every unit was stored, or was already stored"},
    207: {"model": IngestOut, "description": "Some units became dead letters (ids listed)"},
    413: {"model": ErrorBody, "description": "The body is too large"},
    422: {
        "model": ErrorBody,
        "description": "Not one unit could be read; all of them are kept as dead letters",
    },
}


@router.post(
    "/v1/usage/records",
    responses=_INGEST_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": (
                "Usage as the switch wrote it: one record or a batch (a JSON array, JSON lines, "
                "CSV with its header, syslog lines); the content type is not relied on"
            ),
            "content": {
                media: {"schema": {} if media == "application/json" else {"type": "string"}}
                for media in _BODY_TYPES
            },
        }
    },
)
async def ingest_records(
    request: Request,
    by: Caller,
    p: PlatformDep,
    format: Annotated[UsageFormat, Query(description="How the body is written")],
) -> IngestOut:
    """Ingest one usage record or a batch; answered only once everything is committed."""
    limit = p.settings.usage_max_body_bytes
    body = await _read_body(request, limit)
    if body is None:
        message = f"the body is larger than {limit} bytes; send smaller batches"
        return error_response(413, "payload_too_large", message, field="body")  # type: ignore[return-value]
    try:
        result = await p.usage.ingest_body(format, body, by=by)
    except UnreadableUsage as exc:
        errors = [
            FieldError(field=r.position, message=f"{r.reason} (dead letter {r.dead_letter_id})")
            for r in exc.refusals
        ]
        return error_response(  # type: ignore[return-value]
            422, "unreadable_usage", exc.message, field="body", errors=errors
        )
    out = IngestOut.of(result)
    if result.dead_lettered:
        return JSONResponse(out.model_dump(), status_code=207)  # type: ignore[return-value]
    return out


# -- a tenant's usage -----------------------------------------------------------------------------
_INSTANT = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$"
Since = Annotated[
    str | None,
    Query(
        pattern=_INSTANT,
        description="Start, inclusive, ISO 8601 with an offset (default: this month's first)",
    ),
]
Until = Annotated[
    str | None,
    Query(pattern=_INSTANT, description="End, exclusive, ISO 8601 with an offset (default: now)"),
]


def _instant(text: str, field: str) -> datetime:
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        raise InvalidInput(f"{field} {text!r} is not a date and time", field=field) from None


def _period(tenant_id: str, since: str | None, until: str | None) -> UsageQuery:
    now = datetime.now(UTC)
    start = (
        _instant(since, "since")
        if since
        else now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    )
    end = _instant(until, "until") if until else now
    if end <= start:
        raise InvalidInput("until must be after since", field="until")
    return UsageQuery(tenant_id=tenant_id, since=start, until=end)


@router.get("/v1/tenants/{tenant_id}/usage")
def list_usage(
    tenant_id: TenantId,
    by: Caller,
    p: PlatformDep,
    since: Since = None,
    until: Until = None,
    kind: UsageKind | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[UsageRecordOut]:
    """A tenant's usage records in a period, oldest first."""
    query = _period(tenant_id, since, until)
    if kind is not None:
        query = UsageQuery(query.tenant_id, query.since, query.until, kind)
    page = p.usage.list_records(by, query, PageRequest(limit, offset))
    return page_of(page, [_record_out(r) for r in page.items])


@router.get("/v1/tenants/{tenant_id}/usage/summary")
def usage_summary(
    tenant_id: TenantId,
    by: Caller,
    p: PlatformDep,
    since: Since = None,
    until: Until = None,
) -> UsageSummaryOut:
    """A tenant's usage totals in a period (default: this month so far)."""
    query = _period(tenant_id, since, until)
    return UsageSummaryOut.of(query, p.usage.summarise(by, query))


# -- dead letters ---------------------------------------------------------------------------------
@router.get("/v1/usage/dead-letters")
def list_dead_letters(
    by: Caller,
    p: PlatformDep,
    status: DeadLetterStatus | None = None,
    format: UsageFormat | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[DeadLetterOut]:
    """Dead letters, newest first; a tenant's keys see only their tenant's."""
    query = DeadLetterQuery(status=status, format=format)
    page = p.usage.list_dead_letters(by, query, PageRequest(limit, offset))
    return page_of(page, [DeadLetterOut.of(d) for d in page.items])


@router.post("/v1/usage/dead-letters/replay")
async def replay_open_dead_letters(
    by: Caller, p: PlatformDep, format: UsageFormat | None = None
) -> ReplayAllOut:
    """Replay every open dead letter (oldest first, up to 1,000 per call)."""
    outcomes = await p.usage.replay_open(by, DeadLetterQuery(format=format))
    total = IngestResult()
    for outcome in outcomes:
        total = total + outcome.result
    still_open = [
        o.dead_letter.id for o in outcomes if o.dead_letter.status is DeadLetterStatus.OPEN
    ]
    return ReplayAllOut(
        attempted=len(outcomes),
        replayed=len(outcomes) - len(still_open),
        still_open_ids=still_open,
        result=IngestOut.of(total),
    )


@router.get("/v1/usage/dead-letters/{dead_letter_id}")
def get_dead_letter(dead_letter_id: DeadLetterId, by: Caller, p: PlatformDep) -> DeadLetterOut:
    """One dead letter with its reason and raw text."""
    return DeadLetterOut.of(p.usage.get_dead_letter(by, dead_letter_id))


@router.put("/v1/usage/dead-letters/{dead_letter_id}")
def fix_dead_letter(
    dead_letter_id: DeadLetterId, body: DeadLetterFix, by: Caller, p: PlatformDep
) -> DeadLetterOut:
    """Replace an open dead letter's raw text with a corrected one (then replay it)."""
    return DeadLetterOut.of(p.usage.fix_dead_letter(by, dead_letter_id, body.raw_text))


@router.post("/v1/usage/dead-letters/{dead_letter_id}/replay")
async def replay_dead_letter(dead_letter_id: DeadLetterId, by: Caller, p: PlatformDep) -> ReplayOut:
    """Ingest an open dead letter again: stored -> replayed; still bad -> open, new reason."""
    return ReplayOut.of(await p.usage.replay(by, dead_letter_id))


@router.post("/v1/usage/dead-letters/{dead_letter_id}/discard")
def discard_dead_letter(
    dead_letter_id: DeadLetterId, body: DiscardIn, by: Caller, p: PlatformDep
) -> DeadLetterOut:
    """Give up on an open dead letter, with the reason (audited)."""
    return DeadLetterOut.of(p.usage.discard_dead_letter(by, dead_letter_id, body.reason))
