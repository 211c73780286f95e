"""What detectors need to know that a usage record does not say.

:class:`TenantFacts` is what surveillance knows of a tenant: its country (how its national
numbers are read), its plan and billing kind (fair use applies to unlimited plans, LIM-4), its
time zone (hour-of-week baselines are local), whether it holds a written SIM-box consent (FRD-6)
and its rate deck (cost weighting: a call's risk grows with its destination's rate).

:class:`DetectorContext` is long-lived and shared by every detector of an engine or worker: the
numbering plan, the operator's high-risk prefix list and the tenants' facts. For each record it
makes an :class:`EventContext`, which works out lazily, once per record whatever the number of
detectors asking, the classification of the numbers, the matching high-risk prefix, the rate and
the cost.

Pure core: no I/O and no clock; the facts are handed in by the service that owns them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callwarden.core.admission.pipeline import is_emergency_call
from callwarden.core.detectors.windows import LruMap
from callwarden.core.errors import InvalidInput
from callwarden.core.model import Billing
from callwarden.core.numbering import HIGH_RISK_TYPES, Destination, NumberingPlan, NumberType
from callwarden.core.prefixes import PrefixEntry, PrefixList
from callwarden.core.rating import PRICE_SCALE, Rate, RateDeck, cost
from callwarden.core.usage.record import CallRecord, LoginRecord, MessageRecord, UsageRecord

__all__ = ["DetectorContext", "EventContext", "TenantFacts", "event_time"]

_SHORT_TYPES: Final = frozenset({NumberType.SHORT_CODE, NumberType.UNKNOWN})
#: The longest dial string tried as an emergency number written with an outside-line or
#: country prefix ("0044 999", "+44 112"); longer strings are full numbers.
_EMERGENCY_FORM_MAX: Final[int] = 12
_UNSET: Final = object()
_MAX_UNKNOWN_TENANTS: Final[int] = 10_000
#: Bound on the numbers whose classification (and high-risk match) a context keeps; the
#: cache is emptied when it fills, which keeps it cheap and its memory fixed.
_MAX_CACHED_NUMBERS: Final[int] = 200_000
#: The epoch (1 January 1970) was a Thursday: 72 hours after Monday 00:00.
_EPOCH_AFTER_MONDAY_H: Final[int] = 72


@dataclass(frozen=True, slots=True)
class TenantFacts:
    """What surveillance knows of one tenant.

    ``country`` is ISO 3166 alpha-2; ``timezone`` an IANA name. ``sim_box_consent`` is true when
    the provider holds the tenant's written consent to run GSM gateways (FRD-6 exempts it).
    ``rate_deck`` prices its calls; without one, detectors fall back on number types.
    """

    tenant_id: str
    country: str = "US"
    timezone: str = "UTC"
    plan_id: str | None = None
    billing: Billing = Billing.METERED
    sim_box_consent: bool = False
    rate_deck: RateDeck | None = None

    def __post_init__(self) -> None:
        if not (len(self.country) == 2 and self.country.isascii() and self.country.isalpha()):
            raise InvalidInput(
                f"tenant {self.tenant_id!r}: country {self.country!r} is not an ISO 3166 code",
                field="country",
            )
        if self.country != self.country.upper():
            object.__setattr__(self, "country", self.country.upper())
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput(
                f"tenant {self.tenant_id!r}: time zone {self.timezone!r} is unknown",
                field="timezone",
            ) from exc


def event_time(record: UsageRecord) -> float:
    """When a record's facts became known, in epoch seconds: a call's end (or its start plus
    its billable time when no end is given), a message's sending, a login's time.

    Windows count records by this time, since a call can only be judged once it is over.
    """
    if isinstance(record, CallRecord):
        if record.ended_at is not None:
            return record.ended_at.timestamp()
        if record.answered_at is not None:
            return record.answered_at.timestamp() + record.duration_s
        return record.started_at.timestamp()
    if isinstance(record, MessageRecord):
        return record.sent_at.timestamp()
    return record.at.timestamp()


class DetectorContext:
    """Shared, long-lived knowledge for detectors: numbering, high-risk prefixes, tenants.

    ``tenants`` maps tenant ids to their facts; :meth:`set_tenant` adds or replaces one at run
    time. A record from a tenant not in the map (or from no tenant) gets facts with
    ``default_country`` and nothing else, so it is still watched.
    """

    __slots__ = (
        "_classified",
        "_high_risk",
        "_hours",
        "_risky",
        "_tenants",
        "_unknown",
        "default_country",
        "numbering",
    )

    def __init__(
        self,
        numbering: NumberingPlan,
        *,
        high_risk: PrefixList | None = None,
        tenants: Mapping[str, TenantFacts] | None = None,
        default_country: str = "US",
    ) -> None:
        self.numbering = numbering
        self._high_risk = high_risk if high_risk is not None else PrefixList()
        self._classified: dict[tuple[str, str], Destination] = {}
        self._risky: dict[str, PrefixEntry | None] = {}
        self._tenants: dict[str, TenantFacts] = dict(tenants or {})
        self.default_country = TenantFacts("", country=default_country).country
        self._unknown: LruMap[str, TenantFacts] = LruMap(
            lambda: TenantFacts("", country=self.default_country), _MAX_UNKNOWN_TENANTS
        )
        self._hours: dict[str, tuple[int, int, ZoneInfo]] = {}

    @property
    def high_risk(self) -> PrefixList:
        """The operator's high-risk prefix list (FRD-1); replacing it forgets cached matches."""
        return self._high_risk

    @high_risk.setter
    def high_risk(self, prefixes: PrefixList) -> None:
        self._high_risk = prefixes
        self._risky = {}

    def classify(self, raw: str, country: str) -> Destination:
        """``raw`` classified as dialled in ``country``, cached per (number, country).

        The numbering plan's answer never changes for the same input, and the same numbers
        come back all day (a tenant's callers, its customers), so each is classified once.
        """
        key = (raw, country)
        held = self._classified.get(key)
        if held is None:
            if len(self._classified) >= _MAX_CACHED_NUMBERS:
                self._classified = {}
            held = self._classified[key] = self.numbering.classify(raw, country)
        return held

    def high_risk_match(self, e164: str) -> PrefixEntry | None:
        """The longest high-risk prefix ``e164`` falls under, if any, cached per number."""
        risky = self._risky
        try:
            return risky[e164]
        except KeyError:
            pass
        held = self._high_risk.longest_match(e164) if len(self._high_risk) else None
        if len(risky) >= _MAX_CACHED_NUMBERS:
            risky = self._risky = {}
        risky[e164] = held
        return held

    def set_tenant(self, facts: TenantFacts) -> None:
        """Add or replace a tenant's facts (a plan change, a new consent, a new deck)."""
        self._tenants[facts.tenant_id] = facts
        self._unknown.pop(facts.tenant_id)

    def tenant(self, tenant_id: str | None) -> TenantFacts:
        """The facts of ``tenant_id``; defaults for an unknown tenant or none."""
        if tenant_id is None:
            tenant_id = ""
        facts = self._tenants.get(tenant_id)
        if facts is not None:
            return facts
        held = self._unknown.peek(tenant_id)
        if held is None:
            held = TenantFacts(tenant_id, country=self.default_country)
            self._unknown.put(tenant_id, held)
        return held

    def local_hour(self, timezone: str, at: float) -> int:
        """Hours from Monday 29 December 1969 00:00 to ``at``, in ``timezone``'s local time.

        ``hour % 168`` is then the hour of the week counted from Monday 00:00, and Monday
        09:00 local is the same hour of the week all year, across daylight-saving changes.
        """
        utc_hour = int(at // 3600)
        held = self._hours.get(timezone)
        if held is not None and held[0] == utc_hour:
            offset = held[1]
        else:
            zone = held[2] if held is not None else ZoneInfo(timezone)
            delta = datetime.fromtimestamp(utc_hour * 3600, UTC).astimezone(zone).utcoffset()
            offset = int(delta.total_seconds()) if delta is not None else 0
            self._hours[timezone] = (utc_hour, offset, zone)
        return int((at + offset) // 3600) + _EPOCH_AFTER_MONDAY_H

    def event(self, record: UsageRecord) -> EventContext:
        """The per-record view detectors read."""
        return EventContext(self, record)


class EventContext:
    """One record in context: its tenant's facts, its time, and lazily computed facts of its
    numbers (each worked out once, however many detectors ask; the classification of a
    number and its high-risk match are also cached per number by the :class:`DetectorContext`).

    ``at`` is :func:`event_time`; ``started`` is a call's start (``at`` for other records).
    """

    __slots__ = (
        "_callee",
        "_caller",
        "_cost",
        "_emergency",
        "_high_risk",
        "_rate",
        "at",
        "context",
        "record",
        "tenant",
    )

    def __init__(self, context: DetectorContext, record: UsageRecord) -> None:
        self.context = context
        self.record = record
        self.tenant = context.tenant(record.tenant_id)
        self.at = event_time(record)
        self._callee: object = _UNSET
        self._caller: object = _UNSET
        self._high_risk: object = _UNSET
        self._rate: object = _UNSET
        self._cost: object = _UNSET
        self._emergency: object = _UNSET

    @property
    def started(self) -> float:
        """A call's start in epoch seconds; ``at`` for messages and logins."""
        record = self.record
        if type(record) is CallRecord:
            return record.started_at.timestamp()
        return self.at

    @property
    def callee(self) -> Destination | None:
        """The dialled number (a call's callee, a message's recipient), classified in the
        tenant's country; None for a login."""
        held = self._callee
        if held is _UNSET:
            record = self.record
            kind = type(record)
            if kind is CallRecord:
                held = self.context.classify(record.callee, self.tenant.country)  # type: ignore[union-attr]
            elif kind is MessageRecord:
                held = self.context.classify(record.recipient, self.tenant.country)  # type: ignore[union-attr]
            elif isinstance(record, LoginRecord):
                held = None
            else:
                raw = record.callee if isinstance(record, CallRecord) else record.recipient
                held = self.context.classify(raw, self.tenant.country)
            self._callee = held
        return held  # type: ignore[return-value]

    @property
    def caller(self) -> Destination | None:
        """The presenting number (a call's caller, a message's sender), classified; None when
        withheld or for a login."""
        held = self._caller
        if held is _UNSET:
            record = self.record
            raw = None
            if isinstance(record, CallRecord):
                raw = record.caller
            elif isinstance(record, MessageRecord):
                raw = record.sender
            held = self.context.classify(raw, self.tenant.country) if raw else None
            self._caller = held
        return held  # type: ignore[return-value]

    @property
    def high_risk(self) -> PrefixEntry | None:
        """The operator's high-risk prefix the callee falls under, if any."""
        held = self._high_risk
        if held is _UNSET:
            callee = self.callee
            held = None
            if callee is not None and callee.e164 is not None:
                held = self.context.high_risk_match(callee.e164)
            self._high_risk = held
        return held  # type: ignore[return-value]

    @property
    def high_risk_type(self) -> bool:
        """True when the callee's number type is one FRD-1 names (premium rate, shared cost,
        satellite, international network) or it is on the high-risk list."""
        callee = self.callee
        if callee is None:
            return False
        return callee.number_type in HIGH_RISK_TYPES or self.high_risk is not None

    def costly(self, high_cost_per_minute: float) -> bool:
        """True when the callee is high-risk (:attr:`high_risk_type`) or the tenant's deck prices
        it at ``high_cost_per_minute`` or more: the destinations fraud makes money on."""
        if self.high_risk_type:
            return True
        price = self.rate_per_minute
        return price is not None and price >= high_cost_per_minute

    @property
    def rate(self) -> Rate | None:
        """The tenant's rate for the callee at the call's start; None without a deck or rate."""
        held = self._rate
        if held is _UNSET:
            held = None
            deck = self.tenant.rate_deck
            if deck is not None:
                callee = self.callee
                if callee is not None and callee.e164 is not None:
                    held = deck.lookup(callee.e164, self.started)
            self._rate = held
        return held  # type: ignore[return-value]

    @property
    def rate_per_minute(self) -> float | None:
        """The callee's price per minute in major currency units (None when unrated)."""
        rate = self.rate
        return rate.rate_per_minute_nano / PRICE_SCALE if rate is not None else None

    @property
    def cost_minor(self) -> int | None:
        """A call's or message's cost in minor units: the record's own when rated, else the
        tenant's deck applied to the billable seconds of a call; None when neither knows."""
        held = self._cost
        if held is _UNSET:
            record = self.record
            held = None
            if isinstance(record, CallRecord | MessageRecord) and record.cost_minor is not None:
                held = record.cost_minor
            elif isinstance(record, CallRecord):
                if record.duration_s == 0:
                    held = 0
                else:
                    rate = self.rate
                    held = cost(rate, record.duration_s).minor if rate is not None else None
            self._cost = held
        return held  # type: ignore[return-value]

    @property
    def emergency(self) -> bool:
        """True when a call's callee is an emergency number in the tenant's country (the
        admission test, so surveillance and admission agree)."""
        held = self._emergency
        if held is _UNSET:
            record = self.record
            held = False
            if isinstance(record, CallRecord):
                callee = self.callee
                if callee is not None and callee.is_emergency:
                    held = True
                elif len(record.callee) <= _EMERGENCY_FORM_MAX and (
                    callee is None or not callee.valid or callee.number_type in _SHORT_TYPES
                ):
                    # A valid full number is never an emergency call; anything else may be one
                    # written with an outside-line or country prefix (9911, +44999).
                    held = is_emergency_call(
                        self.context.numbering, record.callee, self.tenant.country
                    )
            self._emergency = held
        return held  # type: ignore[return-value]
