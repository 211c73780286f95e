"""/v1/rate-decks: rate decks created, uploaded as CSV, looked up, and assigned (operators).

An upload is streamed to a spool file (memory up to a few MB, then disk) as it arrives, with
its size checked on the way (413 past :data:`MAX_UPLOAD_BYTES`), and parsed in a worker
thread, so a million-row deck neither holds the event loop nor sits in memory twice.
"""

from __future__ import annotations

import io
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from typing import IO, Annotated, Final, Literal

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import AwareDatetime, BaseModel, StringConstraints

from callwarden.adapters.api.auth import Caller, PlatformDep
from callwarden.adapters.api.errors import (
    ERROR_RESPONSES,
    ErrorBody,
    FieldError,
    error_response,
)
from callwarden.adapters.api.schemas import (
    NO_CONTROL,
    Currency,
    Limit,
    Model,
    Offset,
    PageOut,
    PlanId,
    TenantId,
    page_of,
)
from callwarden.core.model import Principal
from callwarden.core.ratedeck import BadRow, BadRowsError
from callwarden.core.rating import Rate, format_price
from callwarden.platform import Platform
from callwarden.services.ports import PageRequest, RateDeckAssignment, RateDeckInfo
from callwarden.services.rating import ImportResult, effective_datetime

router = APIRouter(tags=["rate decks"], responses=ERROR_RESPONSES)

#: The largest CSV upload accepted (a million-row carrier deck is about 70 MB).
MAX_UPLOAD_BYTES: Final[int] = 256 * 1024 * 1024
#: Uploads up to this size stay in memory while they are parsed; larger ones go to disk.
_SPOOL_IN_MEMORY: Final[int] = 8 * 1024 * 1024
#: Bad rows listed in an answer (all of them are counted; the CLI can list every one).
BAD_ROWS_LISTED: Final[int] = 1000

_DECK_ID = r"^rd_[0-9a-f]{16}$"
DeckId = Annotated[str, Path(pattern=_DECK_ID, description="A rate deck id")]
DeckRef = Annotated[str, StringConstraints(pattern=_DECK_ID)]
DeckName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_CONTROL)]
DeckDescription = Annotated[str, StringConstraints(max_length=200, pattern=NO_CONTROL)]

_UPLOAD_RESPONSES: dict[int | str, dict[str, object]] = {
    413: {"model": ErrorBody, "description": "The upload is larger than the maximum"},
    415: {"model": ErrorBody, "description": "The body is not text/csv in UTF-8"},
}
_CSV_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "description": "The deck as CSV (UTF-8): a header row, then one rate per row.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


class RateDeckIn(Model):
    """A new, empty deck: its unique name and the currency of all its prices."""

    name: DeckName
    currency: Currency
    description: DeckDescription = ""


class RateDeckOut(BaseModel):
    id: str
    name: str
    currency: str
    description: str
    rate_count: int
    effective_dates: list[datetime]
    effective_date_count: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, d: RateDeckInfo) -> RateDeckOut:
        return cls(
            id=d.id,
            name=d.name,
            currency=d.currency,
            description=d.description,
            rate_count=d.rate_count,
            effective_dates=[effective_datetime(t) for t in d.effective_dates],
            effective_date_count=d.effective_date_count,
            created_at=d.created_at,
            updated_at=d.updated_at,
        )


class BadRowOut(BaseModel):
    line: int
    reason: str


class ImportOut(BaseModel):
    """What an upload did; ``bad_rows`` lists the first 1,000 skipped rows."""

    deck: RateDeckOut
    mode: Literal["merge", "replace"]
    rows_read: int
    rates_imported: int
    bad_row_count: int
    bad_rows: list[BadRowOut]
    seconds: float

    @classmethod
    def of(cls, r: ImportResult, seconds: float) -> ImportOut:
        return cls(
            deck=RateDeckOut.of(r.deck),
            mode=r.mode,
            rows_read=r.rows_read,
            rates_imported=r.rates_imported,
            bad_row_count=len(r.bad_rows),
            bad_rows=[
                BadRowOut(line=b.line, reason=b.reason) for b in r.bad_rows[:BAD_ROWS_LISTED]
            ],
            seconds=round(seconds, 3),
        )


class RateOut(BaseModel):
    """The rate of a call: prices in the currency's major unit, as the deck writes them."""

    number: str
    at: datetime
    prefix: str
    description: str
    rate_per_minute: str
    connection_fee: str
    initial_s: int
    subsequent_s: int
    effective_from: datetime
    currency: str

    @classmethod
    def of(cls, number: str, at: datetime, r: Rate) -> RateOut:
        return cls(
            number=number,
            at=at,
            prefix=r.prefix,
            description=r.description,
            rate_per_minute=format_price(r.rate_per_minute_nano),
            connection_fee=format_price(r.connection_fee_nano),
            initial_s=r.initial_s,
            subsequent_s=r.subsequent_s,
            effective_from=effective_datetime(r.effective_from),
            currency=r.currency,
        )


class RateDeckAssignmentIn(Model):
    deck_id: DeckRef


class RateDeckAssignmentOut(BaseModel):
    scope: str
    scope_id: str
    deck_id: str
    assigned_at: datetime

    @classmethod
    def of(cls, a: RateDeckAssignment) -> RateDeckAssignmentOut:
        return cls(scope=a.scope, scope_id=a.scope_id, deck_id=a.deck_id, assigned_at=a.assigned_at)


# -- decks ----------------------------------------------------------------------------------------
@router.post("/v1/rate-decks", status_code=201)
def create_deck(body: RateDeckIn, by: Caller, p: PlatformDep) -> RateDeckOut:
    """Add an empty deck; upload its rates with POST /v1/rate-decks/{deck_id}/rates."""
    deck = p.rating.create_deck(
        by, name=body.name, currency=body.currency, description=body.description
    )
    return RateDeckOut.of(deck)


@router.get("/v1/rate-decks")
def list_decks(
    by: Caller, p: PlatformDep, limit: Limit = 50, offset: Offset = 0
) -> PageOut[RateDeckOut]:
    """The decks, by name, with their rate counts and effective dates."""
    page = p.rating.list_decks(by, PageRequest(limit, offset))
    return page_of(page, [RateDeckOut.of(d) for d in page.items])


@router.get("/v1/rate-decks/{deck_id}")
def get_deck(deck_id: DeckId, by: Caller, p: PlatformDep) -> RateDeckOut:
    """One deck."""
    return RateDeckOut.of(p.rating.get_deck(by, deck_id))


@router.post(
    "/v1/rate-decks/{deck_id}/rates",
    response_model=ImportOut,
    responses=_UPLOAD_RESPONSES,
    openapi_extra=_CSV_BODY,
)
async def upload_rates(
    request: Request,
    deck_id: DeckId,
    by: Caller,
    p: PlatformDep,
    on_error: Annotated[
        Literal["refuse", "skip"],
        Query(description="refuse: any bad row refuses the whole upload; skip: store the rest"),
    ] = "refuse",
    mode: Annotated[
        Literal["merge", "replace"],
        Query(description="merge: add and update rates; replace: drop the deck's rates first"),
    ] = "merge",
    currency: Annotated[
        Currency | None, Query(description="The file's currency, checked against the deck's")
    ] = None,
) -> Response | ImportOut:
    """Import a CSV deck. A refused upload stores nothing and answers 422 naming every bad line
    (the first 1,000 in ``errors``); ``on_error=skip`` stores the good rows and lists the bad."""
    refusal = _content_refusal(request)
    if refusal is not None:
        return refusal
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
    try:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > MAX_UPLOAD_BYTES:
                return _too_large()
            spool.write(chunk)
        spool.seek(0)
        started = time.perf_counter()
        run = partial(_import, p, by, deck_id, spool, on_error, mode, currency)
        try:
            result = await anyio.to_thread.run_sync(run)
        except BadRowsError as exc:
            return _refused(exc)
        return ImportOut.of(result, time.perf_counter() - started)
    finally:
        spool.close()


def _content_refusal(request: Request) -> Response | None:
    """415 unless the body is text/csv (UTF-8), 413 if its declared length is too large."""
    media, *params = request.headers.get("content-type", "").lower().split(";")
    charsets = [
        value.strip().strip('"')
        for name, _, value in (param.partition("=") for param in params)
        if name.strip() == "charset"
    ]
    if media.strip() != "text/csv" or not set(charsets) <= {"utf-8", "utf8"}:
        message = "send the deck as text/csv in UTF-8 (Content-Type: text/csv)"
        return error_response(415, "unsupported_media_type", message, field="content-type")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_UPLOAD_BYTES:
        return _too_large()
    return None


def _too_large() -> Response:
    return error_response(
        413,
        "payload_too_large",
        f"the upload is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB; split the deck",
        field="body",
    )


def _refused(exc: BadRowsError) -> Response:
    listed: list[BadRow] = list(exc.bad_rows[:BAD_ROWS_LISTED])
    return error_response(
        422,
        "invalid_input",
        exc.message,
        field="body",
        errors=[FieldError(field=f"line {b.line}", message=b.reason) for b in listed],
    )


def _import(
    p: Platform,
    by: Principal,
    deck_id: str,
    spool: IO[bytes],
    on_error: Literal["refuse", "skip"],
    mode: Literal["merge", "replace"],
    currency: str | None,
) -> ImportResult:
    text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="")
    try:
        return p.rating.import_rates(
            by, deck_id, text, on_error=on_error, mode=mode, currency=currency
        )
    finally:
        text.detach()


# -- lookups --------------------------------------------------------------------------------------
@router.get("/v1/rate-decks/{deck_id}/rate")
def rate_for_number(
    deck_id: DeckId,
    by: Caller,
    p: PlatformDep,
    number: Annotated[
        str,
        Query(
            pattern=r"^[+ ]?[1-9][0-9]{0,14}$",
            description="E.164 number; write '+' as %2B in a URL (a bare '+' reads as a space)",
        ),
    ],
    at: Annotated[
        AwareDatetime | None, Query(description="When the call starts (default: now)")
    ] = None,
) -> RateOut:
    """The rate the deck charges for a call to the number at a time: the longest prefix of the
    number with a rate in force then, in its version effective at that time."""
    when = at or datetime.now(UTC)
    digits = number.strip().removeprefix("+")
    rate = p.rating.lookup(by, deck_id, digits, when.timestamp())
    return RateOut.of(f"+{digits}", when, rate)


# -- assignments ----------------------------------------------------------------------------------
@router.get("/v1/plans/{plan_id}/rate-deck")
def plan_deck(plan_id: PlanId, by: Caller, p: PlatformDep) -> RateDeckAssignmentOut:
    """The deck that rates calls of the plan's tenants (unless a tenant has its own)."""
    return RateDeckAssignmentOut.of(p.rating.assignment(by, "plan", plan_id))


@router.put("/v1/plans/{plan_id}/rate-deck")
def assign_plan_deck(
    plan_id: PlanId, body: RateDeckAssignmentIn, by: Caller, p: PlatformDep
) -> RateDeckAssignmentOut:
    """Rate the calls of every tenant on the plan with the deck (in the plan's currency)."""
    return RateDeckAssignmentOut.of(p.rating.assign(by, "plan", plan_id, body.deck_id))


@router.delete("/v1/plans/{plan_id}/rate-deck", status_code=204)
def unassign_plan_deck(plan_id: PlanId, by: Caller, p: PlatformDep) -> Response:
    """Leave the plan without a deck."""
    p.rating.unassign(by, "plan", plan_id)
    return Response(status_code=204)


@router.get("/v1/tenants/{tenant_id}/rate-deck")
def tenant_deck(tenant_id: TenantId, by: Caller, p: PlatformDep) -> RateDeckAssignmentOut:
    """The tenant's own deck (it wins over the plan's)."""
    return RateDeckAssignmentOut.of(p.rating.assignment(by, "tenant", tenant_id))


@router.put("/v1/tenants/{tenant_id}/rate-deck")
def assign_tenant_deck(
    tenant_id: TenantId, body: RateDeckAssignmentIn, by: Caller, p: PlatformDep
) -> RateDeckAssignmentOut:
    """Rate the tenant's calls with the deck, whatever its plan's deck is."""
    return RateDeckAssignmentOut.of(p.rating.assign(by, "tenant", tenant_id, body.deck_id))


@router.delete("/v1/tenants/{tenant_id}/rate-deck", status_code=204)
def unassign_tenant_deck(tenant_id: TenantId, by: Caller, p: PlatformDep) -> Response:
    """Drop the tenant's own deck; its plan's rates its calls again."""
    p.rating.unassign(by, "tenant", tenant_id)
    return Response(status_code=204)
