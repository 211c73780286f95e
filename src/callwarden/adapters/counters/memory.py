"""In-process counters: the embedded default (one instance, no servers).

All state lives in dictionaries guarded by one ``threading.Lock``. Every operation does its work
synchronously under the lock without awaiting, so it is atomic with respect to both other
asyncio tasks and other threads. Memory is bounded: lease records are dropped when they expire
(a heap per tenant orders them), rate states when their theoretical arrival time has passed,
windows keep at most ``limit`` timestamps per key, and a full sweep every ``sweep_interval_s``
(of the callers' clock) forgets keys nobody touches any more.
"""

from __future__ import annotations

import bisect
import heapq
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from callwarden.core.counters import (
    AdmitOutcome,
    AdmitPlan,
    Counters,
    CountersUnavailable,
    LeaseClaim,
    LeaseOutcome,
    RateCheck,
    RateOutcome,
    SpendGrant,
    SpendMark,
    SpendReservation,
    SpendSettlement,
    WindowOutcome,
    check_admit_plan,
    check_amount,
    check_call_id,
    check_claims,
    check_key,
    check_marks,
    check_month,
    check_rate_checks,
    check_reservation,
    check_tenant_id,
    check_time,
    check_ttl,
    check_window,
)
from callwarden.core.limits import from_micros, gcra_all, to_micros, window_decide

__all__ = ["MemoryCounters"]

_NOTHING_HELD: frozenset[str] = frozenset()


@dataclass(slots=True)
class _Call:
    expires_us: int
    keys: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _TenantLeases:
    """The leases of one tenant: who holds each key, what each call holds, and expiry order."""

    holders: dict[str, set[str]] = field(default_factory=dict)
    calls: dict[str, _Call] = field(default_factory=dict)
    heap: list[tuple[int, str]] = field(default_factory=list)

    def prune(self, now_us: int) -> None:
        """Drop every call whose leases expired at or before ``now_us``."""
        heap = self.heap
        while heap and heap[0][0] <= now_us:
            expires, call_id = heapq.heappop(heap)
            call = self.calls.get(call_id)
            if call is not None and call.expires_us == expires:
                self.drop(call_id, call)

    def drop(self, call_id: str, call: _Call) -> None:
        """Forget a call and all its leases."""
        del self.calls[call_id]
        for key in call.keys:
            holders = self.holders.get(key)
            if holders is not None:
                holders.discard(call_id)
                if not holders:
                    del self.holders[key]

    def set_expiry(self, call_id: str, call: _Call, expires_us: int) -> None:
        """Move a call's expiry; stale heap entries are skipped on pop and compacted here."""
        call.expires_us = expires_us
        heapq.heappush(self.heap, (expires_us, call_id))
        if len(self.heap) > 2 * len(self.calls) + 64:
            self.heap = [(c.expires_us, cid) for cid, c in self.calls.items()]
            heapq.heapify(self.heap)

    def count(self, key: str) -> int:
        holders = self.holders.get(key)
        return 0 if holders is None else len(holders)


@dataclass(slots=True)
class _LeaseDecision:
    """An acquisition decided but not yet applied (nothing changed but expired leases)."""

    tenant_id: str
    tenant: _TenantLeases
    call_id: str
    held: frozenset[str]
    full_key: str | None
    counts: tuple[int, ...]


@dataclass(slots=True)
class _Held:
    """A call's spend reservation and when it lapses."""

    reservation: SpendReservation
    expires_us: int


@dataclass(slots=True)
class _Month:
    """A tenant's budget month: settled spend, live reservations (with their running total and
    an expiry heap, so nothing is summed per call), marks already reached."""

    settled: int = 0
    held: dict[str, _Held] = field(default_factory=dict)
    total_held: int = 0
    expiries: list[tuple[int, str]] = field(default_factory=list)
    reached: set[str] = field(default_factory=set)

    def prune(self, now_us: int) -> None:
        """Forget reservations that lapsed (their budget returns to the month)."""
        expiries = self.expiries
        while expiries and expiries[0][0] <= now_us:
            expires, call_id = heapq.heappop(expiries)
            held = self.held.get(call_id)
            if held is not None and held.expires_us == expires:
                self.drop(call_id)

    def hold(self, call_id: str, held: _Held) -> None:
        self.held[call_id] = held
        self.total_held += held.reservation.granted_minor
        heapq.heappush(self.expiries, (held.expires_us, call_id))

    def drop(self, call_id: str) -> None:
        held = self.held.pop(call_id)
        self.total_held -= held.reservation.granted_minor
        if len(self.expiries) > 2 * len(self.held) + 64:
            self.expiries = [(h.expires_us, c) for c, h in self.held.items()]
            heapq.heapify(self.expiries)

    def reserved(self) -> int:
        return self.total_held


@dataclass(slots=True)
class _Window:
    window_us: int
    stamps: list[int]


class MemoryCounters(Counters):
    """Counters kept in this process: exact, atomic, and lost on restart.

    Use it for the embedded default and in tests; use the Redis counters when several instances
    must share limits. ``sweep_interval_s`` sets how often (in the callers' clock) keys nobody
    touches any more are swept away; a sweep costs time proportional to the number of keys.
    """

    def __init__(self, *, sweep_interval_s: float = 60.0) -> None:
        check_ttl(sweep_interval_s)
        self._lock = threading.Lock()
        self._leases: dict[str, _TenantLeases] = {}
        self._rates: dict[tuple[str, str], int] = {}
        self._windows: dict[tuple[str, str], _Window] = {}
        self._months: dict[tuple[str, str], _Month] = {}
        self._spending: dict[tuple[str, str], str] = {}  # (tenant, call) -> month
        self._sweep_interval_us = to_micros(sweep_interval_s)
        self._next_sweep_us: int | None = None
        self._closed = False

    # -- leases (LIM-2) ------------------------------------------------------------------------

    async def acquire_leases(
        self,
        tenant_id: str,
        call_id: str,
        claims: Sequence[LeaseClaim],
        ttl_s: float,
        now: float,
    ) -> LeaseOutcome:
        check_tenant_id(tenant_id)
        check_call_id(call_id)
        check_claims(claims)
        check_ttl(ttl_s)
        check_time(now)
        now_us, ttl_us = to_micros(now), to_micros(ttl_s)
        with self._lock:
            self._enter(now_us)
            decision = self._decide_leases(tenant_id, call_id, claims, now_us)
            if decision.full_key is not None:
                self._forget_if_empty(tenant_id, decision.tenant)
                return LeaseOutcome(False, decision.full_key, decision.counts, None)
            return self._apply_leases(decision, claims, now_us, ttl_us)

    async def renew_leases(self, tenant_id: str, call_id: str, ttl_s: float, now: float) -> bool:
        check_tenant_id(tenant_id)
        check_call_id(call_id)
        check_ttl(ttl_s)
        check_time(now)
        now_us, ttl_us = to_micros(now), to_micros(ttl_s)
        with self._lock:
            self._enter(now_us)
            tenant = self._leases.get(tenant_id)
            if tenant is None:
                return False
            tenant.prune(now_us)
            call = tenant.calls.get(call_id)
            if call is None:
                self._forget_if_empty(tenant_id, tenant)
                return False
            tenant.set_expiry(call_id, call, now_us + ttl_us)
            return True

    async def release_leases(self, tenant_id: str, call_id: str, now: float | None = None) -> bool:
        check_tenant_id(tenant_id)
        check_call_id(call_id)
        now_us: int | None = None
        if now is not None:
            check_time(now)
            now_us = to_micros(now)
        with self._lock:
            self._enter(now_us)
            tenant = self._leases.get(tenant_id)
            if tenant is None:
                return False
            if now_us is not None:
                tenant.prune(now_us)
            call = tenant.calls.get(call_id)
            if call is not None:
                tenant.drop(call_id, call)
            self._forget_if_empty(tenant_id, tenant)
            return call is not None

    async def active_leases(self, tenant_id: str, key: str, now: float) -> int:
        check_tenant_id(tenant_id)
        check_key(key)
        check_time(now)
        now_us = to_micros(now)
        with self._lock:
            self._enter(now_us)
            tenant = self._leases.get(tenant_id)
            if tenant is None:
                return 0
            tenant.prune(now_us)
            count = tenant.count(key)
            self._forget_if_empty(tenant_id, tenant)
            return count

    async def calls_holding(self, tenant_id: str, now: float) -> list[str]:
        check_tenant_id(tenant_id)
        check_time(now)
        now_us = to_micros(now)
        with self._lock:
            self._enter(now_us)
            tenant = self._leases.get(tenant_id)
            if tenant is None:
                return []
            tenant.prune(now_us)
            calls = sorted(tenant.calls)
            self._forget_if_empty(tenant_id, tenant)
            return calls

    # -- rates (LIM-5) -------------------------------------------------------------------------

    async def hit_rates(
        self, tenant_id: str, checks: Sequence[RateCheck], now: float
    ) -> RateOutcome:
        check_tenant_id(tenant_id)
        check_rate_checks(checks)
        check_time(now)
        now_us = to_micros(now)
        with self._lock:
            self._enter(now_us)
            return self._hit_rates(tenant_id, checks, now_us)

    # -- rolling windows (DIA-4) ---------------------------------------------------------------

    async def count_in_window(
        self,
        tenant_id: str,
        key: str,
        window_s: float,
        limit: int,
        now: float,
        record: bool,
    ) -> WindowOutcome:
        check_tenant_id(tenant_id)
        check_key(key)
        check_window(window_s, limit)
        check_time(now)
        now_us, window_us = to_micros(now), to_micros(window_s)
        with self._lock:
            self._enter(now_us)
            return self._count_in_window(tenant_id, key, window_us, limit, now_us, record)

    # -- one attempt, every check --------------------------------------------------------------

    async def admit(
        self, tenant_id: str, call_id: str, plan: AdmitPlan, now: float
    ) -> AdmitOutcome:
        check_tenant_id(tenant_id)
        check_call_id(call_id)
        check_admit_plan(plan)
        check_time(now)
        if plan.empty:
            return AdmitOutcome(True)
        now_us = to_micros(now)
        with self._lock:
            self._enter(now_us)
            rates: RateOutcome | None = None
            if plan.rates:
                rates = self._hit_rates(tenant_id, plan.rates, now_us)
                if not rates.allowed and plan.rates_enforced:
                    return AdmitOutcome(False, "rates", rates)
            decision: _LeaseDecision | None = None
            leases: LeaseOutcome | None = None
            if plan.claims:
                decision = self._decide_leases(tenant_id, call_id, plan.claims, now_us)
                if decision.full_key is not None:
                    self._forget_if_empty(tenant_id, decision.tenant)
                    leases = LeaseOutcome(False, decision.full_key, decision.counts, None)
                    decision = None
                    if plan.leases_enforced:
                        return AdmitOutcome(False, "leases", rates, leases)
            window: WindowOutcome | None = None
            if plan.window is not None:
                w = plan.window
                window_us = to_micros(w.window_s)
                window = self._count_in_window(tenant_id, w.key, window_us, w.limit, now_us, True)
                if not window.admitted and plan.window_enforced:
                    undone = False
                    if decision is not None:
                        # Decided but never applied: the call's leases are as they were.
                        self._forget_if_empty(tenant_id, decision.tenant)
                        leases = _would_acquire(decision, plan.claims, now_us, plan.ttl_s)
                        undone = True
                    return AdmitOutcome(False, "window", rates, leases, window, undone)
            if decision is not None:
                leases = self._apply_leases(decision, plan.claims, now_us, to_micros(plan.ttl_s))
            return AdmitOutcome(True, None, rates, leases, window)

    # -- the operations, under the lock --------------------------------------------------------

    def _decide_leases(
        self, tenant_id: str, call_id: str, claims: Sequence[LeaseClaim], now_us: int
    ) -> _LeaseDecision:
        """Decide an acquisition; changes nothing but forgetting expired leases."""
        tenant = self._leases.get(tenant_id)
        if tenant is None:
            tenant = self._leases[tenant_id] = _TenantLeases()
        tenant.prune(now_us)
        call = tenant.calls.get(call_id)
        held = frozenset(call.keys) if call is not None else _NOTHING_HELD
        holders = tenant.holders
        full_key: str | None = None
        counts: list[int] = []
        for claim in claims:
            key = claim.key
            holding = holders.get(key)
            count = 0 if holding is None else len(holding)
            counts.append(count)
            if full_key is None and count >= claim.limit and key not in held:
                full_key = key
        return _LeaseDecision(tenant_id, tenant, call_id, held, full_key, tuple(counts))

    def _apply_leases(
        self, decision: _LeaseDecision, claims: Sequence[LeaseClaim], now_us: int, ttl_us: int
    ) -> LeaseOutcome:
        """Apply an acquisition decided (with room) by :meth:`_decide_leases`."""
        tenant, call_id, held = decision.tenant, decision.call_id, decision.held
        expires_us = now_us + ttl_us
        call = tenant.calls.get(call_id)
        if call is None:
            call = tenant.calls[call_id] = _Call(expires_us)
        holders = tenant.holders
        already = True
        counts: list[int] = []
        for claim in claims:
            key = claim.key
            holding = holders.get(key)
            if holding is None:
                holding = holders[key] = set()
            if key not in held:
                already = False
                call.keys.add(key)
                holding.add(call_id)
            counts.append(len(holding))
        tenant.set_expiry(call_id, call, expires_us)
        return LeaseOutcome(True, None, tuple(counts), from_micros(expires_us), already)

    def _hit_rates(self, tenant_id: str, checks: Sequence[RateCheck], now_us: int) -> RateOutcome:
        params = [(c.rate.interval_us, c.rate.tolerance_us) for c in checks]
        rates = self._rates
        keys = [(tenant_id, c.key) for c in checks]
        decision = gcra_all([rates.get(k) for k in keys], now_us, params)
        if not decision.allowed:
            assert decision.refused_index is not None
            return RateOutcome(
                False,
                checks[decision.refused_index].key,
                from_micros(decision.retry_after_us),
            )
        for k, tat in zip(keys, decision.tats_us, strict=True):
            rates[k] = tat
        return RateOutcome(True, None, 0.0)

    def _count_in_window(
        self, tenant_id: str, key: str, window_us: int, limit: int, now_us: int, record: bool
    ) -> WindowOutcome:
        k = (tenant_id, key)
        window = self._windows.get(k)
        stamps = window.stamps if window is not None else []
        decision = window_decide(stamps, now_us, window_us, limit)
        if decision.drop:
            del stamps[: decision.drop]
        count = decision.count
        if decision.admitted and record:
            bisect.insort(stamps, now_us)
            count += 1
        if window is not None:
            window.window_us = window_us
            if not stamps:
                del self._windows[k]
        elif stamps:
            self._windows[k] = _Window(window_us, stamps)
        return WindowOutcome(decision.admitted, count, limit, from_micros(decision.retry_after_us))

    # -- spend (LIM-1) -------------------------------------------------------------------------

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
        check_reservation(
            tenant_id, call_id, month, wanted_minor, minimum_minor, limit_minor, ttl_s, now
        )
        now_us, ttl_us = to_micros(now), to_micros(ttl_s)
        with self._lock:
            self._enter(now_us)
            held = self._held(tenant_id, call_id, now_us)
            if held is not None:
                book = self._months[(tenant_id, held.reservation.month)]
                book.prune(now_us)
                return SpendGrant(
                    held.reservation.granted_minor, book.settled, book.reserved(), True
                )
            book = self._months.setdefault((tenant_id, month), _Month())
            book.prune(now_us)
            reserved = book.reserved()
            room = None if limit_minor is None else limit_minor - book.settled - reserved
            if room is not None and room < minimum_minor:
                return SpendGrant(0, book.settled, reserved)
            granted = wanted_minor if room is None else min(wanted_minor, room)
            book.hold(
                call_id,
                _Held(
                    SpendReservation(call_id, month, granted, from_micros(now_us), note),
                    now_us + ttl_us,
                ),
            )
            self._spending[(tenant_id, call_id)] = month
            return SpendGrant(granted, book.settled, reserved + granted)

    async def reservation(
        self, tenant_id: str, call_id: str, now: float
    ) -> SpendReservation | None:
        check_tenant_id(tenant_id)
        check_call_id(call_id)
        check_time(now)
        now_us = to_micros(now)
        with self._lock:
            self._enter(now_us)
            held = self._held(tenant_id, call_id, now_us)
            return held.reservation if held is not None else None

    async def settle_spend(
        self,
        tenant_id: str,
        call_id: str,
        cost_minor: int,
        marks: Sequence[SpendMark],
        now: float,
    ) -> SpendSettlement | None:
        check_tenant_id(tenant_id)
        check_call_id(call_id)
        check_amount("cost_minor", cost_minor)
        check_marks(marks)
        check_time(now)
        now_us = to_micros(now)
        with self._lock:
            self._enter(now_us)
            held = self._held(tenant_id, call_id, now_us)
            if held is None:
                return None
            reservation = held.reservation
            book = self._months[(tenant_id, reservation.month)]
            book.drop(call_id)
            book.prune(now_us)
            del self._spending[(tenant_id, call_id)]
            book.settled += cost_minor
            reached = tuple(
                m.name
                for m in marks
                if book.settled >= m.amount_minor and m.name not in book.reached
            )
            book.reached.update(reached)
            return SpendSettlement(book.settled, book.reserved(), reached, reservation)

    async def release_spend(self, tenant_id: str, call_id: str, now: float) -> bool:
        check_tenant_id(tenant_id)
        check_call_id(call_id)
        check_time(now)
        now_us = to_micros(now)
        with self._lock:
            self._enter(now_us)
            held = self._held(tenant_id, call_id, now_us)
            if held is None:
                return False
            self._months[(tenant_id, held.reservation.month)].drop(call_id)
            del self._spending[(tenant_id, call_id)]
            return True

    async def spend_totals(self, tenant_id: str, month: str, now: float) -> tuple[int, int]:
        check_tenant_id(tenant_id)
        check_month(month)
        check_time(now)
        now_us = to_micros(now)
        with self._lock:
            self._enter(now_us)
            book = self._months.get((tenant_id, month))
            if book is None:
                return 0, 0
            book.prune(now_us)
            return book.settled, book.reserved()

    def _held(self, tenant_id: str, call_id: str, now_us: int) -> _Held | None:
        """The call's live reservation; a lapsed one is forgotten."""
        month = self._spending.get((tenant_id, call_id))
        if month is None:
            return None
        book = self._months[(tenant_id, month)]
        held = book.held.get(call_id)
        if held is None or held.expires_us <= now_us:
            if held is not None:
                book.drop(call_id)
            del self._spending[(tenant_id, call_id)]
            return None
        return held

    # -- housekeeping --------------------------------------------------------------------------

    async def close(self) -> None:
        with self._lock:
            self._closed = True
            self._leases.clear()
            self._rates.clear()
            self._windows.clear()
            self._months.clear()
            self._spending.clear()

    def sweep(self, now: float) -> int:
        """Forget every expired lease, rate state and window now; return how many keys remain.

        Runs on its own every ``sweep_interval_s``; exposed for tests and for an idle timer.
        """
        check_time(now)
        with self._lock:
            self._sweep(to_micros(now))
            return self._size()

    def size(self) -> int:
        """Number of stored entries (lease records, lease keys, rate states, windows)."""
        with self._lock:
            return self._size()

    def _size(self) -> int:
        leases = sum(len(t.calls) + len(t.holders) for t in self._leases.values())
        return leases + len(self._rates) + len(self._windows)

    def _enter(self, now_us: int | None) -> None:
        if self._closed:
            raise CountersUnavailable("the in-process counters are closed")
        if now_us is None:
            return
        if self._next_sweep_us is None:
            self._next_sweep_us = now_us + self._sweep_interval_us
        elif now_us >= self._next_sweep_us:
            self._sweep(now_us)

    def _sweep(self, now_us: int) -> None:
        for tenant_id, tenant in list(self._leases.items()):
            tenant.prune(now_us)
            self._forget_if_empty(tenant_id, tenant)
        self._rates = {k: tat for k, tat in self._rates.items() if tat > now_us}
        self._windows = {
            k: w
            for k, w in self._windows.items()
            if w.stamps and w.stamps[-1] + w.window_us > now_us
        }
        for book in self._months.values():
            book.prune(now_us)
        self._spending = {
            k: month
            for k, month in self._spending.items()
            if k[1] in self._months[(k[0], month)].held
        }
        self._next_sweep_us = now_us + self._sweep_interval_us

    def _forget_if_empty(self, tenant_id: str, tenant: _TenantLeases) -> None:
        if not tenant.calls and not tenant.holders:
            self._leases.pop(tenant_id, None)


def _would_acquire(
    decision: _LeaseDecision, claims: Sequence[LeaseClaim], now_us: int, ttl_s: float
) -> LeaseOutcome:
    """The outcome applying a decision with room would have had, without applying it."""
    held = decision.held
    counts = tuple(
        n + (0 if c.key in held else 1) for c, n in zip(claims, decision.counts, strict=True)
    )
    already = all(c.key in held for c in claims)
    return LeaseOutcome(True, None, counts, from_micros(now_us + to_micros(ttl_s)), already)
