"""Month-to-date spend: the admission service's spend gate (LIM-1, LIM-3).

When a call starts, :meth:`MonthlySpend.reserve` prices it with the tenant's rate deck and
reserves, in the counters, what the call may cost at most: the cost of the longest call the
plan allows, cut to what is left of the month's hard limit. The decision's ``max_duration_s``
is the duration that reservation pays for, so the SIP server cuts the call before it can
overspend. When the call ends, :meth:`MonthlySpend.settle` replaces the reservation with the
real cost; the month's spend reaching 50%, 80% or 100% of a limit is recorded once per month
as a ``spend.threshold`` event in the audit log, where notification channels pick it up.

The rule is ``monthly_charges``, with the usual modes: enforce, observe (the refusal is
recorded, the call admitted, its spend still tracked) or off, an allowlist, and a failure mode
for when the counters cannot be reached.

Limits left unpriced: a tenant with charge limits but no rate deck is admitted with a warning
(nothing can be priced, a configuration fault the warning names); a destination its deck has no
rate for is refused under a hard limit (an unpriceable call could overspend) and admitted with a
warning otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio.to_thread

from callwarden.core.admission.attempt import CallAttempt
from callwarden.core.admission.decision import Finding
from callwarden.core.admission.pipeline import Verdict
from callwarden.core.admission.policy import FailureMode, RuleMode, RulePolicy
from callwarden.core.admission.snapshot import TenantSnapshot
from callwarden.core.audit import AuditFact
from callwarden.core.counters import Counters, CountersUnavailable
from callwarden.core.errors import NotFound
from callwarden.core.model import Plan, Principal, Tenant
from callwarden.core.permissions import Permission
from callwarden.core.rating import Money, Rate, RateDeck, cost
from callwarden.core.spend import (
    SpendLimits,
    affordable_seconds,
    alert_marks,
    billable_seconds,
    decode_rate,
    encode_rate,
    month_of,
    reservation_bounds,
)
from callwarden.services.governance import SYSTEM, authorize, utcnow
from callwarden.services.ports import Store

log = logging.getLogger("callwarden.spend")

RULE = "monthly_charges"
CLAUSES = ("LIM-1", "LIM-3")
DEFAULT_CAP_S = 4 * 3600
"""The longest call priced when the plan sets no maximum duration."""


class DeckSource(Protocol):
    """Where the spend gate finds a tenant's rate deck (the rating service)."""

    def deck_for(self, tenant_id: str, plan_id: str) -> RateDeck | None: ...

    def is_cached(self, tenant_id: str, plan_id: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class SpendStatement:
    """A tenant's month so far, in minor units of its plan's currency."""

    tenant_id: str
    month: str
    currency: str
    settled_minor: int
    reserved_minor: int
    limits: SpendLimits

    @property
    def remaining_minor(self) -> int | None:
        """What the hard limit still allows (never below 0); None without a hard limit."""
        hard = self.limits.hard_minor
        if hard is None:
            return None
        return max(0, hard - self.settled_minor - self.reserved_minor)


@dataclass(frozen=True, slots=True)
class SpendHold:
    """What the spend gate adds to an admission: the duration the reservation pays for (None:
    spend sets no limit), warnings, observed findings, and whether it degraded."""

    max_duration_s: int | None = None
    warnings: tuple[str, ...] = ()
    observed: tuple[Finding, ...] = ()
    degraded: bool = False


class MonthlySpend:
    """Reserves each call's budget when it starts and settles its cost when it ends."""

    def __init__(
        self,
        counters: Counters,
        decks: DeckSource,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        lease_grace_s: float = 60.0,
    ) -> None:
        self.counters = counters
        self.decks = decks
        self.store = store
        self.clock = clock
        self.lease_grace_s = lease_grace_s

    async def _deck(self, snap: TenantSnapshot) -> RateDeck | None:
        """The tenant's deck: from memory, or (after an import or an assignment change) read
        from the store off the event loop, since a large deck takes seconds to load."""
        key = (snap.tenant_id, snap.plan_id)
        if self.decks.is_cached(*key):
            return self.decks.deck_for(*key)
        return await anyio.to_thread.run_sync(self.decks.deck_for, *key)

    async def reserve(
        self, attempt: CallAttempt, snap: TenantSnapshot, verdict: Verdict, cap_s: int | None
    ) -> SpendHold | Finding:
        """Price the call and hold its budget; a refusing finding when the hard limit leaves
        no room (or the call cannot be priced under one)."""
        limits = snap.charge_limits
        dest = verdict.destination.e164
        policy = snap.policy(RULE)
        if (
            not limits.any
            or policy.mode is RuleMode.OFF
            or policy.exempts(dest, attempt.user_id)
            or dest is None
        ):
            return SpendHold()
        deck = await self._deck(snap)
        if deck is None:
            return SpendHold(warnings=(f"{RULE}: the tenant has no rate deck; spend not limited",))
        rate = deck.lookup(dest.removeprefix("+"), attempt.at)
        hard = limits.hard_minor if policy.mode is RuleMode.ENFORCE else None
        if rate is None:
            finding = Finding(RULE, CLAUSES, f"no rate for {dest} in the tenant's rate deck", 403)
            return self._objection(policy, finding, limits.hard_minor is not None)
        if rate.currency != snap.currency:
            return SpendHold(
                warnings=(
                    f"{RULE}: the rate deck is in {rate.currency}, the plan in {snap.currency}; "
                    "spend not limited",
                )
            )
        cap = cap_s if cap_s is not None else DEFAULT_CAP_S
        wanted, minimum = reservation_bounds(rate, cap)
        try:
            grant = await self.counters.reserve_spend(
                snap.tenant_id,
                attempt.call_id,
                month_of(attempt.at, snap.timezone),
                wanted,
                minimum,
                hard,
                float(cap) + self.lease_grace_s,
                attempt.at,
                note=encode_rate(rate),
            )
        except CountersUnavailable as exc:
            log.warning("counters unreachable", extra={"rule": RULE, "error": str(exc)})
            if policy.failure is FailureMode.CLOSED and policy.mode is RuleMode.ENFORCE:
                return Finding(RULE, CLAUSES, f"{RULE}: counters unreachable; failing closed", 503)
            return SpendHold(
                warnings=(f"{RULE}: counters unreachable; failed open",), degraded=True
            )
        spent = grant.settled_minor + grant.reserved_minor - grant.granted_minor
        if grant.granted_minor == 0 and hard is not None and wanted > 0:
            finding = Finding(
                RULE,
                CLAUSES,
                f"monthly charge limit reached: {_money(spent, rate)} of "
                f"{_money(hard, rate)} spent or held this month",
                403,
            )
            return finding
        warnings: list[str] = []
        observed: list[Finding] = []
        if (
            policy.mode is RuleMode.OBSERVE
            and limits.hard_minor is not None
            and spent + minimum > limits.hard_minor
        ):
            observed.append(
                Finding(RULE, CLAUSES, "monthly charge limit reached (observed only)", 403)
            )
        if limits.soft_minor is not None and spent >= limits.soft_minor:
            warnings.append(
                f"{RULE}: soft charge limit of {_money(limits.soft_minor, rate)} reached this month"
            )
        duration = affordable_seconds(rate, grant.granted_minor, cap)
        return SpendHold(
            max_duration_s=duration if hard is not None else None,
            warnings=tuple(warnings),
            observed=tuple(observed),
        )

    @staticmethod
    def _objection(policy: RulePolicy, finding: Finding, hard: bool) -> SpendHold | Finding:
        if hard and policy.mode is RuleMode.ENFORCE:
            return finding
        if hard:
            return SpendHold(observed=(finding,))
        return SpendHold(warnings=(f"{RULE}: {finding.reason}; spend not tracked",))

    async def release(self, tenant_id: str, call_id: str) -> None:
        """Give back a reservation whose attempt was refused after all."""
        try:
            await self.counters.release_spend(tenant_id, call_id, self.clock())
        except CountersUnavailable:
            log.warning("counters unreachable; the reservation lapses on its own")

    async def settle(
        self, snap: TenantSnapshot | None, tenant_id: str, call_id: str, duration_s: float | None
    ) -> tuple[str, ...]:
        """Replace the call's reservation with its cost (a call that never connected costs
        nothing); returns the alert marks the month reached for the first time, each also
        recorded in the audit log. Repeating it changes nothing."""
        now = self.clock()
        held = await self.counters.reservation(tenant_id, call_id, now)
        if held is None:
            return ()
        rate = decode_rate(held.note)
        seconds = (
            billable_seconds(duration_s)
            if duration_s is not None
            else billable_seconds(max(0.0, now - held.reserved_at))
        )
        price = cost(rate, seconds).minor
        marks = alert_marks(snap.charge_limits) if snap is not None else ()
        settled = await self.counters.settle_spend(tenant_id, call_id, price, marks, now)
        if settled is None or not settled.reached:
            return ()
        limits = snap.charge_limits if snap is not None else None
        facts = [
            AuditFact(
                actor=SYSTEM.user_id,
                action="spend.threshold",
                subject_type="tenant",
                subject_id=tenant_id,
                tenant_id=tenant_id,
                reason=f"the month's charges reached {mark.replace(':', ' limit ')}%",
                clause_ids=CLAUSES,
                details={
                    "month": held.month,
                    "mark": mark,
                    "settled_minor": settled.settled_minor,
                    "limit_minor": (
                        limits.hard_minor if mark.startswith("hard") else limits.soft_minor
                    )
                    if limits is not None
                    else None,
                    "currency": rate.currency,
                },
            )
            for mark in settled.reached
        ]
        await anyio.to_thread.run_sync(self._record, facts)
        return settled.reached

    async def statement(self, by: Principal, tenant_id: str) -> SpendStatement:
        """The tenant's month-to-date spend and limits (its own users and operators)."""
        authorize(by, Permission.TENANTS_READ, tenant_id)
        tenant, plan = await anyio.to_thread.run_sync(self._tenant_and_plan, tenant_id)
        now = self.clock()
        month = month_of(now, tenant.timezone)
        settled, reserved = await self.counters.spend_totals(tenant_id, month, now)
        limits = SpendLimits(
            hard_minor=tenant.monthly_charge_limit_minor
            if tenant.monthly_charge_limit_minor is not None
            else plan.limits.monthly_charge_limit_minor,
            soft_minor=tenant.monthly_charge_soft_limit_minor
            if tenant.monthly_charge_soft_limit_minor is not None
            else plan.limits.monthly_charge_soft_limit_minor,
        )
        return SpendStatement(tenant_id, month, plan.currency, settled, reserved, limits)

    def _tenant_and_plan(self, tenant_id: str) -> tuple[Tenant, Plan]:
        with self.store.transaction() as tx:
            tenant = tx.get_tenant(tenant_id)
            if tenant is None:
                raise NotFound(f"tenant {tenant_id} not found", field="tenant_id")
            plan = tx.get_plan(tenant.plan_id)
            if plan is None:  # pragma: no cover - a foreign key keeps it
                raise NotFound(f"plan {tenant.plan_id} not found", field="plan_id")
            return tenant, plan

    def _record(self, facts: list[AuditFact]) -> None:
        with self.store.transaction() as tx:
            for fact in facts:
                tx.append_audit(fact, utcnow())


def _money(minor: int, rate: Rate) -> str:
    return str(Money(minor, rate.currency))
