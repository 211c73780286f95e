"""The admission service: answers every call attempt, and keeps concurrency leases honest.

It holds an in-memory snapshot per tenant (no database round trip per call), rebuilt after any
change made through this instance at once and, for changes made by other instances, within the
change-feed poll interval. The pure rules run first; then the counter rules, which need state
shared between instances: attempt rates (LIM-5), concurrent calls (LIM-2) and repeat calls to
one destination (DIA-4). Emergency calls are admitted before anything can refuse them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Protocol

import anyio
import anyio.to_thread

from callwarden.core.admission.attempt import CallAttempt, Direction
from callwarden.core.admission.decision import Decision, Finding, admitted, refused
from callwarden.core.admission.pipeline import Verdict, evaluate, is_emergency_anywhere
from callwarden.core.admission.policy import FailureMode, RuleMode, RulePolicy
from callwarden.core.admission.snapshot import TenantSnapshot
from callwarden.core.admission.trunks import TrunkIndex
from callwarden.core.counters import (
    AdmitPlan,
    Counters,
    CountersUnavailable,
    LeaseClaim,
    RateCheck,
    WindowCheck,
)
from callwarden.core.limits import Rate
from callwarden.core.model import PlanLimits
from callwarden.core.numbering import NumberingPlan
from callwarden.core.prefixes import PrefixList
from callwarden.core.spend import SpendLimits
from callwarden.services.ports import Store
from callwarden.services.spend import SpendHold

log = logging.getLogger("callwarden.admission")

DAY_S = 86_400.0
UNLIMITED_LEASE_TTL_S = 4 * 3600.0
_UNBOUNDED = 1_000_000_000


class CallEvent(StrEnum):
    """What the SIP server reports after the decision."""

    ANSWERED = "answered"
    PROGRESS = "progress"
    ENDED = "ended"
    FAILED = "failed"
    CANCELLED = "cancelled"


class SpendGate(Protocol):
    """The seam for charge limits (LIM-1, LIM-3), filled by
    :class:`callwarden.services.spend.MonthlySpend`.

    ``reserve`` holds the call's budget when it starts and says how long the budget lets it
    last (or refuses); ``release`` gives the budget back when a later rule refuses the attempt;
    ``settle`` prices the call when it ends.
    """

    async def reserve(
        self, attempt: CallAttempt, snap: TenantSnapshot, verdict: Verdict, cap_s: int | None
    ) -> SpendHold | Finding: ...

    async def release(self, tenant_id: str, call_id: str) -> None: ...

    async def settle(
        self, snap: TenantSnapshot | None, tenant_id: str, call_id: str, duration_s: float | None
    ) -> tuple[str, ...]: ...


class NoSpendLimit:
    """The spend gate when no rating is wired in: no charge limit is enforced."""

    async def reserve(
        self, attempt: CallAttempt, snap: TenantSnapshot, verdict: Verdict, cap_s: int | None
    ) -> SpendHold | Finding:
        """No limit from spend."""
        return _NO_HOLD

    async def release(self, tenant_id: str, call_id: str) -> None:
        """Nothing was held."""

    async def settle(
        self, snap: TenantSnapshot | None, tenant_id: str, call_id: str, duration_s: float | None
    ) -> tuple[str, ...]:
        """Nothing to settle."""
        return ()


_NO_HOLD = SpendHold()


@dataclass
class _Outcome:
    """What the counter rules add to the decision."""

    blocking: Finding | None = None
    observed: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    degraded: bool = False


class AdmissionService:
    """Decides call attempts against tenant snapshots and shared counters."""

    def __init__(
        self,
        store: Store,
        counters: Counters,
        numbering: NumberingPlan,
        *,
        clock: Callable[[], float] = time.time,
        lease_grace_s: float = 60.0,
        spend: SpendGate | None = None,
    ) -> None:
        self.store = store
        self.counters = counters
        self.numbering = numbering
        self.clock = clock
        self.lease_grace_s = lease_grace_s
        self.spend: SpendGate = spend or NoSpendLimit()
        self._snapshots: dict[str, TenantSnapshot | None] = {}
        self._trunks: TrunkIndex | None = None
        self._high_risk: PrefixList | None = None
        self._feed_seq: int | None = None
        self._lock = threading.Lock()
        self._plans = _CounterPlanCache()
        self._loading: dict[str, anyio.Event] = {}

    # -- change listener -----------------------------------------------------------------------
    def tenant_changed(self, tenant_id: str) -> None:
        """Drop the tenant's snapshot (and the trunk index) so the next attempt reloads them."""
        with self._lock:
            self._snapshots.pop(tenant_id, None)
            self._trunks = None

    def key_changed(self) -> None:
        """API keys do not affect admission."""

    def all_changed(self) -> None:
        """Drop every cached view (after a global change such as the high-risk list)."""
        with self._lock:
            self._snapshots.clear()
            self._trunks = None
            self._high_risk = None

    def poll_changes(self) -> int:
        """Read the audit log as a change feed and drop what other instances changed; returns
        the number of tenants refreshed."""
        with self.store.transaction() as tx:
            if self._feed_seq is None:
                self._feed_seq = tx.audit_head()[0]
                return 0
            seq, tenants = tx.changed_tenants_since(self._feed_seq)
        self._feed_seq = seq
        if None in tenants:
            self.all_changed()
            return len(tenants)
        for tenant_id in tenants:
            if tenant_id is not None:
                self.tenant_changed(tenant_id)
        return len(tenants)

    # -- snapshots -----------------------------------------------------------------------------
    def load_snapshot(self, tenant_id: str) -> TenantSnapshot | None:
        """Build a tenant's snapshot from the store (None for an unknown tenant)."""
        with self.store.transaction() as tx:
            tenant = tx.get_tenant(tenant_id)
            if tenant is None:
                return None
            plan = tx.get_plan(tenant.plan_id)
            if plan is None:
                return None
            policies: dict[str, RulePolicy] = tx.get_rule_policies("plan", plan.id)
            policies.update(tx.get_rule_policies("tenant", tenant.id))
            return TenantSnapshot(
                tenant_id=tenant.id,
                country=tenant.country,
                status=tenant.status,
                suspension=tenant.suspension,
                channels=plan.channels,
                limits=plan.limits,
                users=tx.user_states(tenant.id),
                numbers=tx.number_states(tenant.id),
                policies=policies,
                plan_id=plan.id,
                timezone=tenant.timezone,
                currency=plan.currency,
                charge_limits=SpendLimits(
                    hard_minor=_either(
                        tenant.monthly_charge_limit_minor, plan.limits.monthly_charge_limit_minor
                    ),
                    soft_minor=_either(
                        tenant.monthly_charge_soft_limit_minor,
                        plan.limits.monthly_charge_soft_limit_minor,
                    ),
                ),
                throttles=tuple(tx.list_throttles(tenant.id)),
            )

    def _load_globals(self) -> tuple[TrunkIndex, PrefixList]:
        with self.store.transaction() as tx:
            return TrunkIndex(tx.all_trunks()), PrefixList(tx.list_high_risk_prefixes())

    async def _snapshot(self, tenant_id: str) -> TenantSnapshot | None:
        if tenant_id in self._snapshots:
            return self._snapshots[tenant_id]
        # One load per tenant at a time: a burst of attempts for a cold tenant waits for the
        # first one's load instead of each reading the store.
        loading = self._loading.get(tenant_id)
        if loading is None:
            loading = self._loading[tenant_id] = anyio.Event()
            try:
                snap = await anyio.to_thread.run_sync(self.load_snapshot, tenant_id)
                with self._lock:
                    self._snapshots[tenant_id] = snap
                return snap
            finally:
                del self._loading[tenant_id]
                loading.set()
        await loading.wait()
        if tenant_id in self._snapshots:
            return self._snapshots[tenant_id]
        return await self._snapshot(tenant_id)  # dropped by a change meanwhile: load it again

    async def _globals(self) -> tuple[TrunkIndex, PrefixList]:
        trunks, high_risk = self._trunks, self._high_risk
        if trunks is not None and high_risk is not None:
            return trunks, high_risk
        loaded = await anyio.to_thread.run_sync(self._load_globals)
        with self._lock:
            self._trunks, self._high_risk = loaded
        return loaded

    # -- decisions -----------------------------------------------------------------------------
    async def decide(self, attempt: CallAttempt) -> Decision:
        """Admit or refuse one call attempt, with the clauses behind the answer."""
        trunks, high_risk = await self._globals()
        tenant_id = attempt.tenant_id
        if tenant_id is None and attempt.source_ip is not None:
            tenant_id = trunks.tenant_for(attempt.source_ip)
        snap = await self._snapshot(tenant_id) if tenant_id is not None else None
        if snap is None:
            if is_emergency_anywhere(self.numbering, attempt.destination):
                return admitted(None, emergency=True, warnings=("the tenant is unknown",))
            who = tenant_id or f"source address {attempt.source_ip}"
            return refused(Finding("tenant", ("ACC-1",), f"unknown tenant: {who}"))
        verdict = evaluate(attempt, snap, self.numbering, high_risk)
        if verdict.emergency:
            return admitted(None, emergency=True)
        if verdict.blocking is not None:
            return refused(verdict.blocking, observed=verdict.observed, warnings=verdict.warnings)
        cap = snap.limits.max_call_duration_s
        hold = await self.spend.reserve(attempt, snap, verdict, cap)
        if isinstance(hold, Finding):
            return refused(hold, observed=verdict.observed, warnings=verdict.warnings)
        max_duration = cap
        if hold.max_duration_s is not None:
            max_duration = hold.max_duration_s if cap is None else min(cap, hold.max_duration_s)
        outcome = await self._counter_rules(attempt, snap, verdict, max_duration)
        observed = (*verdict.observed, *hold.observed, *outcome.observed)
        warnings = (*verdict.warnings, *hold.warnings, *outcome.warnings)
        degraded = outcome.degraded or hold.degraded
        if outcome.blocking is not None:
            if hold is not _NO_HOLD:
                await self.spend.release(snap.tenant_id, attempt.call_id)
            return refused(
                outcome.blocking, degraded=degraded, warnings=warnings, observed=observed
            )
        return admitted(max_duration, degraded=degraded, warnings=warnings, observed=observed)

    def _leased_number(
        self, attempt: CallAttempt, snap: TenantSnapshot, verdict: Verdict
    ) -> str | None:
        """The tenant's own number on the call: the caller ID out, the called number in."""
        if attempt.direction is Direction.INBOUND:
            return verdict.destination.e164
        if not attempt.caller:
            return None
        return self.numbering.classify(attempt.caller, snap.country).e164

    def _lease_ttl(self, max_duration: int | None) -> float:
        base = UNLIMITED_LEASE_TTL_S if max_duration is None else float(max_duration)
        return base + self.lease_grace_s

    async def _counter_rules(
        self,
        attempt: CallAttempt,
        snap: TenantSnapshot,
        verdict: Verdict,
        max_duration: int | None,
    ) -> _Outcome:
        """Every counter rule of the attempt in ONE counters operation (one Redis round trip).

        Rates (LIM-5) run first, then the concurrency leases (LIM-2), then the repeat-call window
        (DIA-4); an enforced refusal stops the later ones, and a window refusal gives back the
        leases this attempt took. In observe mode a rule's refusal is recorded and the attempt
        goes on. When the counters cannot be reached every rule in the operation failed: the
        first of them that is enforced and fails closed refuses (503), the others before it
        fail open with a warning each.
        """
        out = _Outcome()
        tenant, now = snap.tenant_id, attempt.at
        dest_e164 = verdict.destination.e164
        limits = snap.limits
        user_id = attempt.user_id

        # The rules that take part, in the order they run: (rule, policy, clause).
        rules: list[tuple[str, RulePolicy, str]] = []

        # LIM-5: attempts per second and per minute, per tenant, user and source address.
        rate_policy = _active(snap.policy("attempt_rate"), dest_e164, user_id)
        checks: tuple[RateCheck, ...] = ()
        if rate_policy is not None:
            checks = self._plans.rate_checks(limits, user_id, attempt.source_ip)
            if snap.throttles:
                checks = (*checks, *_throttle_checks(snap, user_id, now))
            if checks:
                rules.append(("attempt_rate", rate_policy, "LIM-5"))

        # LIM-2: concurrent calls per tenant, user and presented number, as leases with a TTL.
        lease_policy = _active(snap.policy("concurrent_calls"), dest_e164, user_id)
        scopes: tuple[tuple[str, int], ...] = ()
        claims: tuple[LeaseClaim, ...] = ()
        observe_leases = False
        if lease_policy is not None:
            observe_leases = lease_policy.mode is RuleMode.OBSERVE
            number = self._leased_number(attempt, snap, verdict)
            scopes, claims = self._plans.lease_claims(limits, user_id, number, observe_leases)
            if claims:
                rules.append(("concurrent_calls", lease_policy, "LIM-2"))

        # DIA-4: calls to one destination in a rolling 24 hours.
        repeat_policy = _active(snap.policy("repeat_calls"), dest_e164, user_id)
        cap = limits.calls_per_destination_per_day
        window: WindowCheck | None = None
        if repeat_policy is not None and cap is not None and dest_e164 is not None:
            window = WindowCheck(f"dest:{dest_e164}", DAY_S, max(cap, 1))
            rules.append(("repeat_calls", repeat_policy, "DIA-4"))

        if not rules:
            return out
        plan = AdmitPlan(
            rates=checks,
            rates_enforced=_enforced(rate_policy),
            claims=claims,
            ttl_s=self._lease_ttl(max_duration),
            leases_enforced=_enforced(lease_policy),
            window=window,
            window_enforced=_enforced(repeat_policy),
        )
        try:
            result = await self.counters.admit(tenant, attempt.call_id, plan, now)
        except CountersUnavailable as exc:
            out.degraded = True
            for rule, policy, clause in rules:
                log.warning("counters unreachable", extra={"rule": rule, "error": str(exc)})
                if policy.failure is FailureMode.CLOSED and policy.mode is RuleMode.ENFORCE:
                    out.blocking = Finding(
                        rule, (clause,), f"{rule}: counters unreachable; failing closed", 503
                    )
                    return out
                out.warnings.append(f"{rule}: counters unreachable; failed open")
            return out

        rate = result.rates
        if rate is not None and rate_policy is not None and not rate.allowed:
            throttled = rate.key is not None and rate.key.startswith(THROTTLE_KEY)
            finding = Finding(
                "attempt_rate",
                ("LIM-5", "FRD-3") if throttled else ("LIM-5",),
                f"too many call attempts ({rate.key}{'; throttled' if throttled else ''}); "
                f"retry in {rate.retry_after:.2f} s",
                503,
                retry_after_s=rate.retry_after,
            )
            if _object(out, rate_policy, finding):
                return out

        lease = result.leases
        if lease is not None:
            if observe_leases:
                for (key, limit), count in zip(scopes, lease.counts, strict=False):
                    if count > limit:
                        out.observed.append(_concurrency_finding(key, limit))
            elif not lease.acquired:
                limit = dict(scopes)[lease.full_key or ""]
                out.blocking = _concurrency_finding(lease.full_key or "?", limit)
                return out

        counted = result.window
        if counted is not None and repeat_policy is not None and not counted.admitted:
            finding = Finding(
                "repeat_calls",
                ("DIA-4",),
                f"{dest_e164} was already called {counted.count} times in 24 hours",
                403,
                retry_after_s=counted.retry_after,
            )
            # An enforced refusal: the counters already gave back this attempt's leases.
            _object(out, repeat_policy, finding)
        return out

    # -- call events ---------------------------------------------------------------------------
    async def call_event(
        self,
        call_id: str,
        event: CallEvent,
        *,
        tenant_id: str | None,
        source_ip: str | None,
        duration_s: float | None = None,
    ) -> bool:
        """Apply a call's progress or end: answered renews its leases; an end releases exactly
        what it holds and settles its cost (``duration_s`` of talk time for ``ended``; failed
        and cancelled calls cost nothing). Repeated events are harmless; returns whether
        anything changed."""
        if tenant_id is None and source_ip is not None:
            trunks, _ = await self._globals()
            tenant_id = trunks.tenant_for(source_ip)
        if tenant_id is None:
            return False
        if event in (CallEvent.ANSWERED, CallEvent.PROGRESS):
            snap = await self._snapshot(tenant_id)
            max_duration = snap.limits.max_call_duration_s if snap else None
            return await self.counters.renew_leases(
                tenant_id, call_id, self._lease_ttl(max_duration), self.clock()
            )
        released = await self.counters.release_leases(tenant_id, call_id, self.clock())
        snap = await self._snapshot(tenant_id)
        talk = duration_s if event is CallEvent.ENDED else 0.0
        await self.spend.settle(snap, tenant_id, call_id, talk)
        return released


def _either(own: int | None, inherited: int | None) -> int | None:
    """A tenant's own setting, else its plan's."""
    return own if own is not None else inherited


def _active(policy: RulePolicy, dest_e164: str | None, user_id: str | None) -> RulePolicy | None:
    """The policy of a counter rule that takes part in this attempt: None when the rule is off
    or its allowlist exempts the destination or the user."""
    if policy.mode is RuleMode.OFF or policy.exempts(dest_e164, user_id):
        return None
    return policy


def _object(out: _Outcome, policy: RulePolicy, finding: Finding) -> bool:
    """Record a counter rule's refusal: observed in observe mode (the attempt goes on, False),
    else blocking (True)."""
    if policy.mode is RuleMode.OBSERVE:
        out.observed.append(finding)
        return False
    out.blocking = finding
    return True


def _enforced(policy: RulePolicy | None) -> bool:
    """Whether a refusal under this (active) policy stops the attempt: all but observe mode."""
    return policy is not None and policy.mode is not RuleMode.OBSERVE


@lru_cache(maxsize=256)
def _rate(n: int, period_s: float) -> Rate:
    """A sustained rate of n per period, with bursts of up to n at once (built once per value)."""
    return Rate(n, period_s, burst=n - 1)


def _rate_checks(
    limits: PlanLimits, user_id: str | None, source_ip: str | None
) -> tuple[RateCheck, ...]:
    """The attempt-rate checks of LIM-5: each configured rolling window, per tenant, user and
    source address."""
    scopes = ["tenant"]
    if user_id:
        scopes.append(f"user:{user_id}")
    if source_ip:
        scopes.append(f"source:{source_ip}")
    checks: list[RateCheck] = []
    windows = (
        ("s", limits.attempts_per_second, 1.0),
        ("m", limits.attempts_per_minute, 60.0),
        ("q", limits.attempts_per_15_minutes, 900.0),
        ("h", limits.attempts_per_hour, 3600.0),
    )
    for label, n, period in windows:
        if n:
            rate = _rate(n, period)
            checks.extend(RateCheck(f"{label}:{scope}", rate) for scope in scopes)
    return tuple(checks)


THROTTLE_KEY = "throttle:"
"""Counter keys of throttles start with this and the throttle's id, so each throttle counts
on keys of its own (a key is always checked with one rate) and its refusals are told apart."""


def _throttle_checks(snap: TenantSnapshot, user_id: str | None, at: float) -> list[RateCheck]:
    """The rate checks a tenant's throttles in force add for an attempt (LIM-5, FRD-3): a
    tenant-wide throttle on the tenant's attempts, a user's on that user's."""
    checks: list[RateCheck] = []
    for throttle in snap.throttles:
        if throttle.expires_at is not None and throttle.expires_at.timestamp() <= at:
            continue
        if throttle.user_id is None:
            scope = "tenant"
        elif throttle.user_id == user_id:
            scope = f"user:{user_id}"
        else:
            continue
        for label, n, period in throttle.rates.windows(snap.limits):
            checks.append(
                RateCheck(f"{THROTTLE_KEY}{throttle.id}:{label}:{scope}", _rate(n, period))
            )
    return checks


def _concurrency_scopes(
    limits: PlanLimits, user_id: str | None, number: str | None
) -> tuple[tuple[str, int], ...]:
    """The (key, limit) pairs a call holds a lease on: tenant, user, and its number."""
    scopes: list[tuple[str, int]] = []
    if limits.concurrent_calls_per_tenant is not None:
        scopes.append(("tenant", limits.concurrent_calls_per_tenant))
    if user_id and limits.concurrent_calls_per_user is not None:
        scopes.append((f"user:{user_id}", limits.concurrent_calls_per_user))
    if number and limits.concurrent_calls_per_number is not None:
        scopes.append((f"number:{number}", limits.concurrent_calls_per_number))
    return tuple(scopes)


_RateEntry = tuple[PlanLimits, tuple[RateCheck, ...]]
_LeaseEntry = tuple[PlanLimits, tuple[tuple[str, int], ...], tuple[LeaseClaim, ...]]


class _CounterPlanCache:
    """The rate checks and lease claims of recent (limits, user, source, number) combinations.

    A tenant's attempts ask for the same counter keys over and over; building them once keeps
    string formatting and object creation off the hot path. Entries remember the limits object
    they were built from, so a changed plan (a new snapshot) never reuses them; the cache is
    emptied when it grows past ``size``.
    """

    def __init__(self, size: int = 65_536) -> None:
        self.size = size
        self._rates: dict[tuple[int, str | None, str | None], _RateEntry] = {}
        self._leases: dict[tuple[int, str | None, str | None, bool], _LeaseEntry] = {}

    def rate_checks(
        self, limits: PlanLimits, user_id: str | None, source_ip: str | None
    ) -> tuple[RateCheck, ...]:
        """LIM-5 checks for an attempt (see :func:`_rate_checks`)."""
        key = (id(limits), user_id, source_ip)
        entry = self._rates.get(key)
        if entry is None or entry[0] is not limits:
            if len(self._rates) >= self.size:
                self._rates.clear()
            entry = self._rates[key] = (limits, _rate_checks(limits, user_id, source_ip))
        return entry[1]

    def lease_claims(
        self, limits: PlanLimits, user_id: str | None, number: str | None, observe: bool
    ) -> tuple[tuple[tuple[str, int], ...], tuple[LeaseClaim, ...]]:
        """LIM-2 scopes and the claims taken on them; in observe mode every call takes its
        leases (unbounded), so the counts show what would have been refused."""
        key = (id(limits), user_id, number, observe)
        entry = self._leases.get(key)
        if entry is None or entry[0] is not limits:
            if len(self._leases) >= self.size:
                self._leases.clear()
            scopes = _concurrency_scopes(limits, user_id, number)
            claims = tuple(LeaseClaim(k, _UNBOUNDED if observe else n) for k, n in scopes)
            entry = self._leases[key] = (limits, scopes, claims)
        return entry[1], entry[2]


def _concurrency_finding(key: str, limit: int) -> Finding:
    return Finding(
        "concurrent_calls",
        ("LIM-2",),
        f"concurrent call limit reached for {key} ({limit} calls)",
        486,
    )
