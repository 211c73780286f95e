"""The admission rules: pure functions over a call attempt and the tenant's snapshot.

Each rule returns None (no objection) or a `Finding` naming its clauses. The pipeline runs them
in the order of `PIPELINE`; rules that need shared counters (rates, concurrency, repeat calls)
are applied by the admission service after these, in the same spirit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from callwarden.core.admission.attempt import CallAttempt, Direction
from callwarden.core.admission.decision import Finding
from callwarden.core.admission.snapshot import TenantSnapshot
from callwarden.core.model import Channel, NumberStatus, TenantStatus, UserStatus
from callwarden.core.numbering import Destination, NumberingPlan, NumberType
from callwarden.core.prefixes import PrefixList

WITHHELD = frozenset({"", "anonymous", "restricted", "unavailable", "unknown", "private"})


@dataclass(frozen=True, slots=True)
class Context:
    """What every rule may look at for one attempt."""

    attempt: CallAttempt
    snapshot: TenantSnapshot
    destination: Destination
    numbering: NumberingPlan
    high_risk: PrefixList


Rule = Callable[[Context], Finding | None]


def _with_gov2(clause_ids: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*clause_ids, "GOV-2")))


def tenant_status(ctx: Context) -> Finding | None:
    """A suspended or terminated tenant places no calls (GOV-2)."""
    snap = ctx.snapshot
    if snap.status is TenantStatus.ACTIVE:
        return None
    why = f": {snap.suspension.reason}" if snap.suspension else ""
    clauses = _with_gov2(snap.suspension.clause_ids if snap.suspension else ())
    return Finding("tenant_status", clauses, f"tenant {snap.tenant_id} is {snap.status.value}{why}")


def user_status(ctx: Context) -> Finding | None:
    """The calling user must be the tenant's, active, and hold a seat (ACC-1, ACC-3, GOV-2)."""
    user_id = ctx.attempt.user_id
    if user_id is None:
        return None
    user = ctx.snapshot.users.get(user_id)
    if user is None:
        return Finding("user_status", ("ACC-1",), f"user {user_id} is not a user of this tenant")
    if user.status is UserStatus.ACTIVE:
        return None
    if user.status is UserStatus.SUSPENDED:
        why = f": {user.suspension.reason}" if user.suspension else ""
        clauses = _with_gov2(user.suspension.clause_ids if user.suspension else ())
        return Finding("user_status", clauses, f"user {user_id} is suspended{why}")
    return Finding(
        "user_status", ("ACC-3",), f"user {user_id} holds no seat (status {user.status.value})"
    )


def channel(ctx: Context) -> Finding | None:
    """The plan must entitle the tenant to voice (ACC-1)."""
    if Channel.VOICE in ctx.snapshot.channels:
        return None
    return Finding("channel", ("ACC-1",), "the tenant's plan does not include voice calls")


def destination_valid(ctx: Context) -> Finding | None:
    """An unparseable or invalid destination is refused with its reason (FRD-1)."""
    dest = ctx.destination
    if dest.valid:
        return None
    return Finding(
        "destination_valid",
        ("FRD-1",),
        f"destination is not a valid number: {dest.reason or 'unknown reason'}",
        sip_status=484,
    )


def destination_type(ctx: Context) -> Finding | None:
    """Premium-rate, shared-cost, satellite and international-network ranges are blocked per
    plan (FRD-1)."""
    kind = ctx.destination.number_type
    if kind.value not in ctx.snapshot.limits.blocked_number_types:
        return None
    label = ctx.destination.e164 or ctx.destination.raw
    return Finding(
        "destination_type", ("FRD-1",), f"destination {label} is a {kind.value} number, blocked"
    )


def destination_country(ctx: Context) -> Finding | None:
    """Only the plan's permitted destination countries may be called (FRD-1)."""
    allowed = ctx.snapshot.limits.allowed_countries
    region = ctx.destination.region
    if allowed is None or region is None or region in allowed:
        return None
    return Finding(
        "destination_country",
        ("FRD-1",),
        f"destination country {region} is not permitted for this tenant",
    )


def high_risk_prefix(ctx: Context) -> Finding | None:
    """Destinations on the operator's high-risk prefix list are refused (FRD-1)."""
    e164 = ctx.destination.e164
    if e164 is None or not len(ctx.high_risk):
        return None
    entry = ctx.high_risk.longest_match(e164)
    if entry is None:
        return None
    label = f" ({entry.label})" if entry.label else ""
    return Finding(
        "high_risk_prefix",
        ("FRD-1",),
        f"destination {e164} is in high-risk range +{entry.prefix}{label}",
    )


def caller_id(ctx: Context) -> Finding | None:
    """The presented caller ID must be a valid number the tenant owns or verified, active, and
    never premium-rate; a withheld one only where the plan allows it (CID-1)."""
    snap, raw = ctx.snapshot, (ctx.attempt.caller or "").strip()
    if raw.lower() in WITHHELD:
        if snap.limits.allow_withheld_caller_id:
            return None
        return Finding("caller_id", ("CID-1",), "caller ID is withheld; this plan requires one")
    caller = ctx.numbering.classify(raw, snap.country)
    if not caller.valid or caller.e164 is None:
        return Finding("caller_id", ("CID-1",), f"caller ID {raw!r} is not a valid number")
    if caller.number_type is NumberType.PREMIUM_RATE:
        return Finding("caller_id", ("CID-1",), f"caller ID {caller.e164} is a premium-rate number")
    number = snap.numbers.get(caller.e164)
    if number is None or number.status is NumberStatus.RELEASED:
        return Finding(
            "caller_id",
            ("CID-1",),
            f"caller ID {caller.e164} is not a number this tenant owns or has verified",
        )
    if number.status is NumberStatus.SUSPENDED:
        why = f": {number.suspension.reason}" if number.suspension else ""
        clauses = _with_gov2(
            ("CID-1", *(number.suspension.clause_ids if number.suspension else ()))
        )
        return Finding("caller_id", clauses, f"caller ID {caller.e164} is suspended{why}")
    return None


_BOTH = frozenset(Direction)
_OUT = frozenset({Direction.OUTBOUND})

PIPELINE: tuple[tuple[str, Rule, frozenset[Direction]], ...] = (
    ("tenant_status", tenant_status, _BOTH),
    ("user_status", user_status, _OUT),
    ("channel", channel, _BOTH),
    ("destination_valid", destination_valid, _OUT),
    ("destination_type", destination_type, _OUT),
    ("destination_country", destination_country, _OUT),
    ("high_risk_prefix", high_risk_prefix, _OUT),
    ("caller_id", caller_id, _OUT),
)
"""The pure rules in the order they run; the first enforced finding refuses."""
