"""SIM-box and GSM-gateway signals, with the written-consent exemption (FRD-6).

Rule
----
Per trunk (else source address, else tenant) over 60 minutes, four signals named in public
SIM-box material (shared research, compliance rules section 3.5 and telecom anchors section
6.4: many SIM numbers as caller IDs, one-way traffic, short uniform calls, CLI rotation):

1. *mobile caller IDs*: ``min_mobile_clis`` or more distinct mobile numbers presented;
2. *one-way*: at least ``min_calls`` outbound calls and an outbound share of ``one_way_share``
   or more (a gateway terminates, it never receives);
3. *short uniform calls*: at least ``min_answered`` answered calls whose mean billable time is at
   most ``short_mean_s`` with a coefficient of variation at most ``uniform_cv``;
4. *CLI rotation*: distinct caller IDs per outbound call of ``rotation_share`` or more.

Signals 1 and 3 and at least one of the others raise a finding (short uniform calls are
required: a contact centre's agents on their own mobile numbers, starting their day on one
trunk, show many mobile caller IDs, one-way traffic and, for the first calls of the hour, one
caller ID per call, but their conversations have every length): medium with three signals, high with
all four (the suggested action is then throttling; the research advises flagging and
investigating before blocking, since call centres can look alike). A tenant whose written
consent is on record (``TenantFacts.sim_box_consent``) is exempt: nothing is tracked for it.

New trunk: a SIM box usually arrives as a new trunk (or source address) on a tenant already
known for a day or more (``learning_s``). Within ``new_trunk_s`` of a new trunk's first call,
``early_mobile_clis`` distinct mobile caller IDs, every call outbound and a different caller ID
on at least ``rotation_share`` of them raise a low finding (observe, no action) long before the
sixty-minute signals can be judged: that is the shape of a gateway's first calls through its
SIM cards. A contact centre's established trunk is not new; a newly connected office whose
agents present their own mobile numbers would be, and is the case to check by hand.

Benign look-alike: a contact centre trunk with many agents presenting the tenant's own
geographic numbers, taking calls as well as making them, with conversations of every length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from callwarden.core.admission.attempt import Direction
from callwarden.core.detectors.base import (
    Detector,
    DetectorFinding,
    Evidence,
    KeyKind,
    KeyOrder,
    Severity,
    SuggestedAction,
    held,
    key_for,
)
from callwarden.core.detectors.context import EventContext
from callwarden.core.detectors.windows import (
    ONE_HOUR,
    LruMap,
    SlidingDistinct,
    SlidingTotals,
    mean_cv,
)
from callwarden.core.numbering import NumberType
from callwarden.core.usage.record import CallRecord, UsageRecord

__all__ = ["SimBoxDetector", "SimBoxParams"]

_MOBILE: Final = frozenset({NumberType.MOBILE, NumberType.FIXED_LINE_OR_MOBILE})
_CLI_CAP: Final[int] = 256
_KEYS: Final[KeyOrder] = ((KeyKind.TRUNK, "trunk_id"), (KeyKind.SOURCE_IP, "source_ip"))


@dataclass(frozen=True, slots=True)
class SimBoxParams:
    """Thresholds of :class:`SimBoxDetector` (engineering defaults; tune in observe mode)."""

    min_mobile_clis: int = 10
    min_calls: int = 30
    one_way_share: float = 0.95
    min_answered: int = 20
    short_mean_s: float = 90
    uniform_cv: float = 0.35
    rotation_share: float = 0.3
    learning_s: int = 86_400
    new_trunk_s: int = 86_400
    early_mobile_clis: int = 5


class _Source:
    __slots__ = ("clis", "evidence", "first", "inbound", "mobile_clis", "totals")

    def __init__(self, evidence: Evidence) -> None:
        self.first = -1.0  # the source's first call; -1 until seen
        self.inbound = False  # whether it ever took an inbound call
        # outbound, inbound, answered outbound, seconds, seconds squared
        self.totals = SlidingTotals(ONE_HOUR, 5)
        self.clis: SlidingDistinct[str] = SlidingDistinct(ONE_HOUR, cap=_CLI_CAP)
        self.mobile_clis: SlidingDistinct[str] = SlidingDistinct(ONE_HOUR, cap=_CLI_CAP)
        self.evidence = evidence

    def size(self) -> int:
        return (
            self.totals.size() + self.clis.size() + self.mobile_clis.size() + self.evidence.size()
        )


class SimBoxDetector(Detector[SimBoxParams]):
    """Mobile caller IDs, one-way traffic, short uniform calls and CLI rotation per trunk."""

    id = "simbox"
    clause_ids = ("FRD-6",)
    params_type = SimBoxParams

    def __init__(self, params: SimBoxParams | None = None, **bounds: int) -> None:
        super().__init__(params, **bounds)
        self._sources: LruMap[tuple[str, str, str], _Source] = self.per_key(_Source)
        # tenant -> its first call seen: a trunk is new only on a tenant known for a while
        self._tenants: LruMap[str, list[float]] = LruMap(lambda: [-1.0], self.max_keys)

    def observe(
        self, event: UsageRecord, ctx: EventContext, params: SimBoxParams | None = None
    ) -> list[DetectorFinding]:
        """Update the trunk's signals; raise when enough of them agree."""
        if not isinstance(event, CallRecord):
            return []
        facts = ctx.tenant
        if facts.sim_box_consent:
            return []
        p = params or self.params
        tenant = facts.tenant_id
        key = event.trunk_id
        if key:
            key_kind = KeyKind.TRUNK  # the first party of _KEYS, read directly: most calls
        else:
            key_kind, key = key_for(event, tenant, _KEYS)
        at = ctx.at
        since = self._tenants.get(tenant)
        if since[0] < 0:
            since[0] = at
        state = self._sources.get((tenant, key_kind, key))
        if state.first < 0:
            state.first = at
        if event.direction is not Direction.OUTBOUND:
            state.inbound = True
            state.totals.add(at, (0, 1, 0, 0, 0))
            return []
        d = event.duration_s
        answered = 1 if event.answered_at is not None else 0
        outbound, inbound, n, s, s2 = state.totals.add(at, (1, 0, answered, d, d * d))
        clis = 0
        mobile_clis = state.mobile_clis
        caller_id = event.caller
        mobiles: int | None = None  # mobile caller IDs in the window, once counted
        if caller_id:
            all_clis = state.clis
            before = all_clis.count()
            clis = all_clis.add(at, caller_id)
            # A caller ID is classified when it is new in the window, or already known mobile.
            if clis != before or caller_id in mobile_clis:
                caller = ctx.caller
                if caller is not None and caller.number_type in _MOBILE:
                    # add() moves the window to ``at`` and returns its count
                    mobiles = mobile_clis.add(at, caller_id)
        if mobiles is None:
            mobiles = mobile_clis.count(at)
        if mobiles < p.min_mobile_clis:
            if (
                mobiles >= p.early_mobile_clis
                and key_kind is not KeyKind.TENANT
                and not state.inbound
                and state.first - since[0] >= p.learning_s
                and at - state.first < p.new_trunk_s
                and clis >= p.rotation_share * outbound
            ):
                state.evidence.add(event.call_id)
                return self._new_trunk(ctx, p, key_kind, key, mobiles, int(outbound), state)
            return []
        state.evidence.add(event.call_id)
        if n < p.min_answered:
            return []
        mean, cv = mean_cv(n, s, s2)
        if mean > p.short_mean_s or cv > p.uniform_cv:
            return []  # agents' conversations: every length, however many mobile numbers
        signals = ["mobile caller IDs", "short uniform calls"]
        if outbound >= p.min_calls and outbound / (outbound + inbound) >= p.one_way_share:
            signals.append("one-way traffic")
        if clis / outbound >= p.rotation_share:
            signals.append("caller ID rotation")
        if len(signals) < 3:
            return []
        severity = Severity.HIGH if len(signals) == 4 else Severity.MEDIUM
        return self.raise_once(
            ctx,
            "simbox",
            key_kind,
            key,
            severity,
            ONE_HOUR,
            statistic="mobile_caller_ids",
            value=mobiles,
            threshold=p.min_mobile_clis,
            summary=lambda: f"SIM-box signals in 60m: {', '.join(signals)}",
            evidence=state.evidence,
            action=SuggestedAction.THROTTLE if severity is Severity.HIGH else SuggestedAction.NONE,
        )

    def _new_trunk(
        self,
        ctx: EventContext,
        p: SimBoxParams,
        key_kind: KeyKind,
        key: str,
        mobiles: int,
        outbound: int,
        state: _Source,
    ) -> list[DetectorFinding]:
        """The low finding on a new trunk whose first calls rotate mobile caller IDs."""
        return self.raise_once(
            ctx,
            "new trunk",
            key_kind,
            key,
            Severity.LOW,
            ONE_HOUR,
            statistic="mobile_caller_ids",
            value=mobiles,
            threshold=p.early_mobile_clis,
            summary=lambda: (
                f"new {key_kind.value} {key}: {mobiles} mobile caller IDs on its first "
                f"{outbound} calls, all outbound"
            ),
            evidence=state.evidence,
            hold_s=p.new_trunk_s,
        )

    def state_size(self) -> int:
        """Keys, buckets, caller IDs and evidence ids held."""
        return held(self._sources) + len(self._tenants) + self.dedup.size()
