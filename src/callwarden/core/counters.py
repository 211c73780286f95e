"""The counters interface the admission service uses: concurrency leases, rates, rolling windows.

One small abstract base class, :class:`Counters`, with two implementations in
``callwarden.adapters.counters``: in-process (the embedded default) and Redis (atomic Lua
scripts shared by many instances, so a limit holds globally). Pick one with
``counters_from_url("memory://")`` or ``counters_from_url("redis://host:6379/0")``.

Every operation takes the current time ``now`` explicitly (epoch seconds): tests drive a fake
clock, and several instances sharing Redis agree because the decision depends only on the
``now`` they pass, not on the server's clock. The arithmetic itself lives in
:mod:`callwarden.core.limits`.

Mechanisms served: LIM-2 (concurrent calls per tenant, user, number, trunk as leases with a TTL),
LIM-5 (attempts per second/minute per tenant, user, source address, by GCRA) and DIA-4
(repeat-call caps per destination over a rolling 24 h window). The admission service runs all
three for an attempt in one operation, :meth:`Counters.admit` (one round trip on Redis); the
separate operations remain for call events, tests and other callers.

Month-to-date spend (LIM-1, LIM-3) is reserve-then-settle: :meth:`Counters.reserve_spend` takes
a share of the month's remaining budget for a call when it starts, atomically, so concurrent
calls can never promise more than the limit together; :meth:`Counters.settle_spend` replaces
the share with the call's real cost when it ends and reports the alert thresholds the month's
spend reached for the first time. Amounts are integers of the currency's minor unit.

When the backend cannot be reached every operation raises :class:`CountersUnavailable`, and the
caller applies the rule's configured fail-open or fail-closed mode.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from callwarden.core.limits import Rate, to_micros

__all__ = [
    "AdmitOutcome",
    "AdmitPlan",
    "AdmitStage",
    "Counters",
    "CountersUnavailable",
    "LeaseClaim",
    "LeaseOutcome",
    "RateCheck",
    "RateOutcome",
    "SpendGrant",
    "SpendMark",
    "SpendReservation",
    "SpendSettlement",
    "WindowCheck",
    "WindowOutcome",
    "check_admit_plan",
    "check_amount",
    "check_call_id",
    "check_claims",
    "check_key",
    "check_marks",
    "check_month",
    "check_rate_checks",
    "check_reservation",
    "check_tenant_id",
    "check_time",
    "check_ttl",
    "check_window",
]

MAX_ID_LENGTH = 256


class CountersUnavailable(Exception):
    """The counters backend cannot be reached (connection refused, timeout, server not ready).

    Not a policy decision: the caller decides what it means through the rule's fail-open or
    fail-closed mode, and reports that the decision degraded. The original error is chained as
    ``__cause__``.
    """


@dataclass(frozen=True, slots=True)
class LeaseClaim:
    """One concurrency lease wanted by a call: at most ``limit`` live leases on ``key``.

    Keys are free-form strings chosen by the caller and scoped to the tenant, e.g.
    ``"tenant"``, ``"user:42"``, ``"number:+48221234567"``, ``"trunk:7"``. A limit of 0 means
    the key admits nothing.
    """

    key: str
    limit: int


@dataclass(frozen=True, slots=True)
class LeaseOutcome:
    """The result of :meth:`Counters.acquire_leases`.

    ``acquired`` is true when the call now holds a lease on every claimed key (all-or-nothing).
    ``full_key`` names the first claimed key (in the caller's order) that had no room, when
    refused. ``counts`` gives the live leases per claim, in claim order: after acquisition when
    acquired, as found when refused. ``expires_at`` is when the leases lapse unless renewed
    (``None`` when refused). ``already_held`` is true when the call id already held every
    claimed key (a retransmitted attempt): nothing was counted twice.
    """

    acquired: bool
    full_key: str | None
    counts: tuple[int, ...]
    expires_at: float | None
    already_held: bool = False


@dataclass(frozen=True, slots=True)
class RateCheck:
    """One rate to check for an attempt: ``rate`` applied to ``key`` (tenant-scoped).

    The same key must always be checked with the same rate; the stored state (a theoretical
    arrival time) does not remember which rate produced it.
    """

    key: str
    rate: Rate


@dataclass(frozen=True, slots=True)
class RateOutcome:
    """The result of :meth:`Counters.hit_rates`.

    When refused, ``key`` is the first refusing check's key and ``retry_after`` (seconds) the
    earliest time at which every check would pass, absent other traffic; nothing was consumed.
    """

    allowed: bool
    key: str | None
    retry_after: float


@dataclass(frozen=True, slots=True)
class WindowOutcome:
    """The result of :meth:`Counters.count_in_window`.

    ``count`` is the number of recorded events in the window (including the new one when it was
    recorded), capped at ``limit``. ``admitted`` says the event was below the limit (and, with
    ``record``, was recorded). ``retry_after`` (seconds, 0 when admitted) says when the oldest
    counted event leaves the window.
    """

    admitted: bool
    count: int
    limit: int
    retry_after: float


@dataclass(frozen=True, slots=True)
class WindowCheck:
    """One rolling-window cap for an attempt: at most ``limit`` events on ``key`` (tenant-scoped)
    in the ``window_s`` seconds before now, as :meth:`Counters.count_in_window` counts them."""

    key: str
    window_s: float
    limit: int


AdmitStage = Literal["rates", "leases", "window"]
"""The stages of :meth:`Counters.admit`, in the order they run."""


@dataclass(frozen=True, slots=True)
class AdmitPlan:
    """Everything one call attempt asks of the counters, for :meth:`Counters.admit`.

    Three stages, each skipped when empty: ``rates`` (LIM-5, as :meth:`Counters.hit_rates`),
    ``claims`` (LIM-2, as :meth:`Counters.acquire_leases` with ``ttl_s``) and ``window``
    (DIA-4, as :meth:`Counters.count_in_window` with ``record=True``). The ``*_enforced`` flags
    say whether a refusal at that stage stops the attempt (enforce mode) or is only reported
    (observe mode). ``ttl_s`` matters, and is checked, only when there are claims.
    """

    rates: Sequence[RateCheck] = ()
    rates_enforced: bool = True
    claims: Sequence[LeaseClaim] = ()
    ttl_s: float = 0.0
    leases_enforced: bool = True
    window: WindowCheck | None = None
    window_enforced: bool = True

    @property
    def empty(self) -> bool:
        """True when no stage has anything to do (``admit`` then touches nothing)."""
        return not self.rates and not self.claims and self.window is None


@dataclass(frozen=True, slots=True)
class AdmitOutcome:
    """The result of :meth:`Counters.admit`: each stage's own outcome, ``None`` if it did not run.

    ``admitted`` is false when an enforced stage refused; ``refused_by`` then names it, and the
    later stages did not run. A stage whose refusal was not enforced reports it here and the
    next stages ran all the same. ``leases_undone`` is true when the leases stage had acquired
    but the enforced window then refused: the call's leases were left exactly as before the
    operation (no new key taken, no expiry moved), while ``leases`` still shows what the stage
    decided (its counts include this call).
    """

    admitted: bool
    refused_by: AdmitStage | None = None
    rates: RateOutcome | None = None
    leases: LeaseOutcome | None = None
    window: WindowOutcome | None = None
    leases_undone: bool = False


@dataclass(frozen=True, slots=True)
class SpendReservation:
    """A call's hold on its tenant's budget for one month (LIM-1).

    ``month`` is the budget month (``"2026-11"``, in the tenant's timezone, chosen by the
    caller); ``granted_minor`` the amount held; ``reserved_at`` when (epoch seconds); ``note``
    an opaque text the caller stored with it (the rate the call is priced at), handed back at
    settlement so any instance can price the call's end.
    """

    call_id: str
    month: str
    granted_minor: int
    reserved_at: float
    note: str = ""


@dataclass(frozen=True, slots=True)
class SpendGrant:
    """The result of :meth:`Counters.reserve_spend`.

    ``granted_minor`` is what the call now holds (0 when refused: nothing changed).
    ``settled_minor`` and ``reserved_minor`` are the month's settled spend and live
    reservations after the operation. ``already_held`` is true when the call already held a
    reservation (a retransmitted attempt): it is returned unchanged and nothing was counted
    twice.
    """

    granted_minor: int
    settled_minor: int
    reserved_minor: int
    already_held: bool = False


@dataclass(frozen=True, slots=True)
class SpendMark:
    """An alert level of the month's settled spend, reported once per month when reached:
    e.g. ``SpendMark("hard:80", 8_000)`` for 80% of a 100.00 limit."""

    name: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class SpendSettlement:
    """The result of :meth:`Counters.settle_spend`: the month's totals after the call's cost
    replaced its reservation, the marks reached for the first time this month (in the order
    given), and the reservation that was settled."""

    settled_minor: int
    reserved_minor: int
    reached: tuple[str, ...]
    reservation: SpendReservation


class Counters(abc.ABC):
    """Shared counters for admission, behind one interface (embedded or Redis).

    All methods are coroutines and safe to call concurrently. Each operation is atomic: no
    interleaving of operations from any number of tasks, threads or instances (for a shared
    backend) can push live leases on a key above its limit, or let a rate or window admit more
    than it allows. Tenants are isolated: every key is scoped to its ``tenant_id``.

    Implementations raise :class:`CountersUnavailable` when their backend cannot be reached and
    ``ValueError`` for invalid arguments (empty ids, duplicate keys, non-finite times).
    """

    @abc.abstractmethod
    async def acquire_leases(
        self,
        tenant_id: str,
        call_id: str,
        claims: Sequence[LeaseClaim],
        ttl_s: float,
        now: float,
    ) -> LeaseOutcome:
        """Take a concurrency lease on every claimed key for one call, or on none (LIM-2).

        Idempotent per call id: keys the call already holds are not counted again (SIP
        retransmissions), only new keys are checked against their limits. On success every
        lease of the call, old and new, lapses at ``now + ttl_s`` unless renewed, so a lost
        call-end event cannot leak capacity forever. Expired leases do not count. A refusal
        changes nothing, not even the expiry of leases the call already held.
        """

    @abc.abstractmethod
    async def renew_leases(self, tenant_id: str, call_id: str, ttl_s: float, now: float) -> bool:
        """Extend every live lease of the call to ``now + ttl_s``; false if it holds none."""

    @abc.abstractmethod
    async def release_leases(self, tenant_id: str, call_id: str, now: float | None = None) -> bool:
        """Release exactly the leases the call holds; true if it held any.

        Repeating it is harmless and returns false. With ``now``, leases that had already
        expired are cleaned up but do not count as held (the result is then false); without
        it, any lease record still stored counts.
        """

    @abc.abstractmethod
    async def active_leases(self, tenant_id: str, key: str, now: float) -> int:
        """Number of live (unexpired) leases on ``key``."""

    @abc.abstractmethod
    async def calls_holding(self, tenant_id: str, now: float) -> list[str]:
        """Call ids holding at least one live lease in the tenant, sorted (leak checks)."""

    @abc.abstractmethod
    async def hit_rates(
        self, tenant_id: str, checks: Sequence[RateCheck], now: float
    ) -> RateOutcome:
        """Count one attempt against several rates (LIM-5), all-or-nothing.

        The attempt is admitted only if every check conforms; then each key consumes one unit.
        If any refuses, nothing is consumed and the outcome names the first refusing key.
        """

    @abc.abstractmethod
    async def count_in_window(
        self,
        tenant_id: str,
        key: str,
        window_s: float,
        limit: int,
        now: float,
        record: bool,
    ) -> WindowOutcome:
        """Count events on ``key`` in the rolling ``window_s`` before ``now`` (DIA-4).

        ``admitted`` is true when fewer than ``limit`` events are in the window; then, with
        ``record``, this event is recorded too. At most ``limit`` timestamps are kept per key.
        """

    @abc.abstractmethod
    async def admit(
        self, tenant_id: str, call_id: str, plan: AdmitPlan, now: float
    ) -> AdmitOutcome:
        """Run every counter check of one call attempt as ONE atomic operation (one round trip).

        In order, each stage skipped when the plan leaves it empty:

        1. **rates**, as :meth:`hit_rates`: all-or-nothing, consumed only when every check
           passes. An enforced refusal stops here, with nothing changed.
        2. **leases**, as :meth:`acquire_leases` for ``call_id`` (idempotent, with ``ttl_s``).
           An enforced refusal stops here; the rates stay consumed (the attempt happened). A
           refusal that is not enforced takes no lease.
        3. **window**, as :meth:`count_in_window` with ``record=True``. An enforced refusal
           undoes the leases stage (``leases_undone``): leases the call already held from an
           earlier attempt stay as they were.

        Arguments are checked before anything is touched (``ValueError``); an empty plan touches
        nothing and admits.
        """

    @abc.abstractmethod
    async def reserve_spend(
        self,
        tenant_id: str,
        call_id: str,
        month: str,
        wanted_minor: int,
        minimum_minor: int,
        limit_minor: int | None,
        ttl_s: float,
        now: float,
        note: str = "",
    ) -> SpendGrant:
        """Hold part of the month's budget for a call that starts now (LIM-1, reserve step).

        Atomically: the room is ``limit_minor - settled - live reservations`` of ``month``
        (unbounded when ``limit_minor`` is None). When the room is at least
        ``minimum_minor`` the call is granted ``min(wanted_minor, room)``; otherwise it is
        granted 0 and nothing changes. So no interleaving of any number of reservations,
        from any number of instances, ever holds more than the limit together. The
        reservation lapses at ``now + ttl_s`` unless settled or released first (a lost end
        event gives the budget back). Idempotent per call id: a call that holds a live
        reservation gets it back unchanged (``already_held``).
        """

    @abc.abstractmethod
    async def reservation(
        self, tenant_id: str, call_id: str, now: float
    ) -> SpendReservation | None:
        """The call's live reservation, if it holds one."""

    @abc.abstractmethod
    async def settle_spend(
        self,
        tenant_id: str,
        call_id: str,
        cost_minor: int,
        marks: Sequence[SpendMark],
        now: float,
    ) -> SpendSettlement | None:
        """Replace the call's reservation with its real cost (LIM-1, settle step).

        Atomically drops the call's live reservation and adds ``cost_minor`` to the settled
        spend of the reservation's month; each of ``marks`` that the settled total now reaches
        (``>= amount_minor``) and had not reached before in that month is recorded and
        returned, so an alert goes out once per month however many instances settle calls.
        None when the call holds no live reservation (already settled, released or lapsed):
        nothing changes, so a repeated end event is harmless.
        """

    @abc.abstractmethod
    async def release_spend(self, tenant_id: str, call_id: str, now: float) -> bool:
        """Give back the call's reservation without cost (the attempt was refused after all,
        or the call failed before it was answered); true if it held one."""

    @abc.abstractmethod
    async def spend_totals(self, tenant_id: str, month: str, now: float) -> tuple[int, int]:
        """The month's settled spend and live reservations, in minor units."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and other resources; the instance is unusable afterwards."""

    async def __aenter__(self) -> Counters:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# Argument validation shared by the implementations, so both refuse the same inputs.


def _check_text(what: str, value: str) -> None:
    # One test for the common case: every attempt's keys pass through here.
    if type(value) is str and 0 < len(value) <= MAX_ID_LENGTH:
        return
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_ID_LENGTH} characters")


def check_tenant_id(tenant_id: str) -> None:
    """Refuse an empty or over-long tenant id, or one with braces (it is a Redis hash tag)."""
    _check_text("tenant_id", tenant_id)
    if "{" in tenant_id or "}" in tenant_id:
        raise ValueError("tenant_id must not contain '{' or '}'")


def check_call_id(call_id: str) -> None:
    """Refuse an empty or over-long call id."""
    _check_text("call_id", call_id)


def check_key(key: str) -> None:
    """Refuse an empty or over-long counter key."""
    _check_text("key", key)


def check_time(now: float) -> None:
    """Refuse a non-finite time."""
    if not math.isfinite(now):
        raise ValueError(f"now must be a finite epoch time in seconds, got {now!r}")


def check_ttl(ttl_s: float) -> None:
    """Refuse a lease TTL that is not a positive, finite number of seconds."""
    if not math.isfinite(ttl_s) or to_micros(ttl_s) < 1:
        raise ValueError(f"ttl_s must be a positive number of seconds, got {ttl_s!r}")


def check_claims(claims: Sequence[LeaseClaim]) -> None:
    """Refuse an empty claim list, duplicate keys or negative limits."""
    if not claims:
        raise ValueError("at least one lease claim is required")
    for claim in claims:
        _check_text("key", claim.key)
        limit = claim.limit
        if type(limit) is not int or limit < 0:
            raise ValueError(f"lease limit for {claim.key!r} must be an integer >= 0")
    if len(claims) > 1 and len({c.key for c in claims}) != len(claims):
        seen: set[str] = set()
        for claim in claims:
            if claim.key in seen:
                raise ValueError(f"lease key {claim.key!r} is claimed twice")
            seen.add(claim.key)


def check_rate_checks(checks: Sequence[RateCheck]) -> None:
    """Refuse an empty check list or duplicate keys."""
    if not checks:
        raise ValueError("at least one rate check is required")
    for check in checks:
        _check_text("key", check.key)
    if len(checks) > 1 and len({c.key for c in checks}) != len(checks):
        seen: set[str] = set()
        for check in checks:
            if check.key in seen:
                raise ValueError(f"rate key {check.key!r} is checked twice")
            seen.add(check.key)


def check_admit_plan(plan: AdmitPlan) -> None:
    """Refuse a plan any of whose non-empty stages the separate operation would refuse."""
    if plan.rates:
        check_rate_checks(plan.rates)
    if plan.claims:
        check_claims(plan.claims)
        check_ttl(plan.ttl_s)
    if plan.window is not None:
        check_key(plan.window.key)
        check_window(plan.window.window_s, plan.window.limit)


def check_window(window_s: float, limit: int) -> None:
    """Refuse a window that is not a positive duration, or a limit below 1."""
    if not math.isfinite(window_s) or to_micros(window_s) < 1:
        raise ValueError(f"window_s must be a positive number of seconds, got {window_s!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"window limit must be an integer >= 1, got {limit!r}")


def check_month(month: str) -> None:
    """Refuse a budget month that is not ``YYYY-MM``."""
    if (
        type(month) is not str
        or len(month) != 7
        or month[4] != "-"
        or not (month[:4] + month[5:]).isdigit()
        or not 1 <= int(month[5:]) <= 12
    ):
        raise ValueError(f"month must be YYYY-MM, got {month!r}")


def check_amount(what: str, amount: int) -> None:
    """Refuse an amount that is not a non-negative integer of minor units."""
    if type(amount) is not int or amount < 0:
        raise ValueError(f"{what} must be an integer >= 0 of minor units, got {amount!r}")


def check_marks(marks: Sequence[SpendMark]) -> None:
    """Refuse marks with empty or duplicate names or negative amounts."""
    names: set[str] = set()
    for mark in marks:
        _check_text("mark name", mark.name)
        check_amount(f"mark {mark.name!r}", mark.amount_minor)
        if mark.name in names:
            raise ValueError(f"mark {mark.name!r} is given twice")
        names.add(mark.name)


def check_reservation(
    tenant_id: str,
    call_id: str,
    month: str,
    wanted_minor: int,
    minimum_minor: int,
    limit_minor: int | None,
    ttl_s: float,
    now: float,
) -> None:
    """Refuse what :meth:`Counters.reserve_spend` would refuse (both implementations call it)."""
    check_tenant_id(tenant_id)
    check_call_id(call_id)
    check_month(month)
    check_amount("wanted_minor", wanted_minor)
    check_amount("minimum_minor", minimum_minor)
    if limit_minor is not None:
        check_amount("limit_minor", limit_minor)
    check_ttl(ttl_s)
    check_time(now)
