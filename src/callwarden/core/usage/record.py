"""The usage record: what actually happened on the platform, in one shape for every source.

Every finished call, message and login becomes one record here, whatever switch produced it, so
surveillance, spend settlement, reports and fair use read a single vocabulary. Records are
frozen and checked on construction: times are aware UTC datetimes in order, durations are not
negative and an answered call carries its answer time. `key` is the idempotency key that
storage and the stream use so that nothing is counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from callwarden.core.admission.attempt import Direction
from callwarden.core.errors import InvalidInput

__all__ = [
    "ATTESTATIONS",
    "CallRecord",
    "Direction",
    "Disposition",
    "LoginRecord",
    "MessageRecord",
    "RawItem",
    "UsageError",
    "UsageFormat",
    "UsageKind",
    "UsageRecord",
]

ATTESTATIONS = frozenset({"A", "B", "C"})
"""STIR/SHAKEN attestation levels a call record may carry."""


class UsageError(InvalidInput):
    """A raw usage item that cannot become a record; the message names the field and the fault."""


class UsageKind(StrEnum):
    """What a usage record describes."""

    CALL = "call"
    MESSAGE = "message"
    LOGIN = "login"


class Disposition(StrEnum):
    """How a call ended, in callwarden's words (each format's codes map onto these)."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    CANCELLED = "cancelled"


class UsageFormat(StrEnum):
    """The raw formats callwarden reads usage from."""

    FREESWITCH_JSON = "freeswitch-json"
    ASTERISK_CSV = "asterisk-csv"
    KAMAILIO_ACC_SYSLOG = "kamailio-acc-syslog"
    KAMAILIO_ACC_DB = "kamailio-acc-db"
    CALLWARDEN_JSON = "callwarden-json"
    CALLWARDEN_CSV = "callwarden-csv"


@dataclass(frozen=True, slots=True)
class RawItem:
    """One unit of raw input (a JSON document, a CSV line, a syslog line) and where it was.

    It becomes records, or a dead letter that keeps `text` so it can be fixed and replayed.
    `position` locates it in its source, e.g. "line 17" or "item 3".
    """

    text: str
    position: str


def _utc(value: datetime, field: str) -> datetime:
    """The same instant in UTC; a naive datetime is refused because its zone is unknown."""
    if value.tzinfo is UTC:
        return value
    if value.utcoffset() is None:
        raise UsageError(f"{field} must carry a time zone (got a naive datetime)", field=field)
    return value.astimezone(UTC)


def _check_currency(currency: str | None, cost_minor: int | None) -> None:
    if currency is not None and not (
        len(currency) == 3 and currency.isascii() and currency.isalpha() and currency.isupper()
    ):
        raise UsageError(
            f"currency {currency!r} is not an ISO 4217 code (three capital letters)",
            field="currency",
        )
    if cost_minor is not None and currency is None:
        raise UsageError("cost_minor is given without a currency", field="currency")


def _check_required_text(value: str, field: str) -> None:
    if not value:
        raise UsageError(f"{field} must not be empty", field=field)


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    """One leg of a finished call attempt, answered or not.

    `leg` is "a" for the originating leg; transfers and forked legs carry their own leg so each
    is stored once. `duration_s` is the billable time from answer to end (0 when unanswered).
    `cost_minor` is in minor units of `currency` and only set once the call is rated.
    `caller` and `callee` are the numbers as the switch gave them, trimmed; consumers classify
    them. Missing optional facts are None, never guessed.
    """

    call_id: str
    leg: str = "a"
    tenant_id: str | None = None
    user_id: str | None = None
    trunk_id: str | None = None
    source_ip: str | None = None
    direction: Direction
    caller: str | None = None
    callee: str
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: int = 0
    disposition: Disposition
    cost_minor: int | None = None
    currency: str | None = None
    campaign: str | None = None
    attestation: str | None = None
    source_format: str

    def __post_init__(self) -> None:
        _check_required_text(self.call_id, "call_id")
        _check_required_text(self.leg, "leg")
        _check_required_text(self.callee, "callee")
        started = _utc(self.started_at, "started_at")
        if started is not self.started_at:
            object.__setattr__(self, "started_at", started)
        answered = self.answered_at
        if answered is not None:
            answered = _utc(answered, "answered_at")
            if answered is not self.answered_at:
                object.__setattr__(self, "answered_at", answered)
            if answered < started:
                raise UsageError("answered_at is before started_at", field="answered_at")
        ended = self.ended_at
        if ended is not None:
            ended = _utc(ended, "ended_at")
            if ended is not self.ended_at:
                object.__setattr__(self, "ended_at", ended)
            if answered is not None and ended < answered:
                raise UsageError("ended_at is before answered_at", field="ended_at")
            if ended < started:
                raise UsageError("ended_at is before started_at", field="ended_at")
        if self.duration_s < 0:
            raise UsageError(
                f"duration_s must not be negative (got {self.duration_s})", field="duration_s"
            )
        if (self.disposition is Disposition.ANSWERED) != (answered is not None):
            if answered is None:
                raise UsageError("an answered call needs answered_at", field="answered_at")
            raise UsageError(
                f"a call with answered_at cannot have disposition {self.disposition.value}",
                field="disposition",
            )
        if answered is None and self.duration_s != 0:
            raise UsageError(
                f"an unanswered call has no billable duration (got {self.duration_s})",
                field="duration_s",
            )
        if self.attestation is not None and self.attestation not in ATTESTATIONS:
            raise UsageError(
                f"attestation {self.attestation!r} is not A, B or C", field="attestation"
            )
        _check_currency(self.currency, self.cost_minor)

    @property
    def kind(self) -> UsageKind:
        """Always UsageKind.CALL."""
        return UsageKind.CALL

    @property
    def key(self) -> tuple[str, str]:
        """The idempotency key (call id, leg): storing the same key twice is a duplicate."""
        return (self.call_id, self.leg)


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageRecord:
    """One message (SMS/MMS) sent or received, with its delivery status as the source gave it."""

    message_id: str
    tenant_id: str | None = None
    user_id: str | None = None
    direction: Direction
    sender: str | None = None
    recipient: str
    sent_at: datetime
    status: str
    segments: int = 1
    cost_minor: int | None = None
    currency: str | None = None
    campaign: str | None = None
    source_format: str

    def __post_init__(self) -> None:
        _check_required_text(self.message_id, "message_id")
        _check_required_text(self.recipient, "recipient")
        _check_required_text(self.status, "status")
        sent = _utc(self.sent_at, "sent_at")
        if sent is not self.sent_at:
            object.__setattr__(self, "sent_at", sent)
        if self.segments < 1:
            raise UsageError(f"segments must be at least 1 (got {self.segments})", field="segments")
        _check_currency(self.currency, self.cost_minor)

    @property
    def kind(self) -> UsageKind:
        """Always UsageKind.MESSAGE."""
        return UsageKind.MESSAGE

    @property
    def key(self) -> tuple[str, str]:
        """The idempotency key (message id, "msg")."""
        return (self.message_id, "msg")


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginRecord:
    """One login attempt to the platform (portal, API or SIP registration), successful or not."""

    event_id: str
    tenant_id: str | None = None
    user_id: str | None = None
    source_ip: str | None = None
    at: datetime
    success: bool
    method: str
    source_format: str

    def __post_init__(self) -> None:
        _check_required_text(self.event_id, "event_id")
        _check_required_text(self.method, "method")
        at = _utc(self.at, "at")
        if at is not self.at:
            object.__setattr__(self, "at", at)

    @property
    def kind(self) -> UsageKind:
        """Always UsageKind.LOGIN."""
        return UsageKind.LOGIN

    @property
    def key(self) -> tuple[str, str]:
        """The idempotency key (event id, "login")."""
        return (self.event_id, "login")


UsageRecord = CallRecord | MessageRecord | LoginRecord
"""Any usage record; dispatch on `.kind` or isinstance."""
