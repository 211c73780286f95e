"""Surveillance: the usage stream through the detectors, into cases and automatic actions (FRD-3).

:class:`Surveillance` subscribes to the usage stream under the durable consumer name
``surveillance`` and feeds every record to a :class:`~callwarden.core.detectors.DetectorSet`
whose context it keeps from the store: each tenant's country, time zone, plan and billing kind
and rate deck (through the rating service), and the operator's high-risk prefix list. Facts are
read when a tenant is first seen and again after governance reports a change to it (or after
``facts_ttl_s``, for changes made by other processes).

Each finding opens a case, or updates the active case of the same tenant, detector and key
(:mod:`callwarden.core.cases`). A finding raised in enforce mode whose severity reaches the
:class:`~callwarden.core.cases.ActionPolicy` threshold triggers its action
(:mod:`callwarden.services.case_actions`), once per case, kind and target. Actions with an
expiry are undone by :meth:`Surveillance.run`'s periodic job.

Detectors run in observe mode unless configured otherwise (docs/detectors.md), so a fresh
installation opens cases and changes nothing until an operator opts in. The configuration in
force is the one given in code (:meth:`Surveillance.configure`) overlaid by what operators stored
through :class:`~callwarden.services.surveillance_config.SurveillanceConfigService`: a stored
policy replaces the code's for the same detector and scope, a stored action policy the code's.
Stored changes are read again at once when made in this process, and every ``facts_ttl_s``
otherwise (changes made by other processes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

import anyio
import anyio.to_thread

from callwarden.core.cases import ActionPolicy, Case, merge_finding, open_case
from callwarden.core.detectors import (
    DetectorConfig,
    DetectorContext,
    DetectorFinding,
    DetectorSet,
    EventContext,
    KeyKind,
    SuggestedAction,
    TenantFacts,
    default_detectors,
)
from callwarden.core.detectors.base import Detector
from callwarden.core.errors import InvalidInput
from callwarden.core.model import Plan, Tenant
from callwarden.core.numbering import NumberingPlan
from callwarden.core.prefixes import PrefixList
from callwarden.core.rating import RateDeck
from callwarden.core.usage.record import UsageRecord
from callwarden.services.admission_config import AdmissionConfigService
from callwarden.services.case_actions import ActionRunner, ActionTarget
from callwarden.services.cases import CaseService, CaseStore, audit_case
from callwarden.services.governance import SYSTEM, GovernanceService
from callwarden.services.ids import new_id
from callwarden.services.rating import RatingService
from callwarden.services.stream import Subscription, UsageStream
from callwarden.services.surveillance_config import SurveillanceConfigService

__all__ = ["CONSUMER", "MIN_BLOCK_DIGITS", "Surveillance", "action_target", "overlay"]

log = logging.getLogger("callwarden.surveillance")

CONSUMER: Final[str] = "surveillance"
"""The durable consumer name surveillance reads the usage stream under."""
MIN_BLOCK_DIGITS: Final[int] = 4
"""The shortest prefix an automatic block puts on the (global) high-risk list: a country code
alone would refuse a whole country for every tenant."""
BLOCK_DIGITS: Final[int] = 6
"""Digits of the called number blocked when neither the finding nor the rate deck names a
range of at least :data:`MIN_BLOCK_DIGITS`."""


def action_target(
    kind: SuggestedAction, finding: DetectorFinding, ctx: EventContext
) -> ActionTarget:
    """What ``kind`` acts on, from the finding's key and the record that raised it.

    - suspend_tenant: the finding's tenant;
    - suspend_user: the finding's key when it is a user, else the record's user;
    - suspend_number: the finding's key when it is a number, else the record's calling number
      (E.164);
    - block_prefix: the longest of the finding's destination range and the rate deck's prefix
      for the called number, when it has :data:`MIN_BLOCK_DIGITS` digits or more; else the first
      :data:`BLOCK_DIGITS` digits of the called number;
    - throttle: the finding's key when it is a user, else the finding's tenant.
    """
    record = ctx.record
    if kind is SuggestedAction.SUSPEND_TENANT:
        return ActionTarget(kind, finding.tenant_id, "the finding names no tenant")
    if kind is SuggestedAction.SUSPEND_USER:
        user = finding.key if finding.key_kind is KeyKind.USER else record.user_id
        return ActionTarget(kind, user, "the record names no user")
    if kind is SuggestedAction.SUSPEND_NUMBER:
        number: str | None = None
        if finding.key_kind is KeyKind.NUMBER and finding.key.startswith("+"):
            number = finding.key
        elif ctx.caller is not None:
            number = ctx.caller.e164
        return ActionTarget(kind, number, "the record has no calling number in E.164")
    if kind is SuggestedAction.BLOCK_PREFIX:
        candidates: list[str] = []
        if finding.key_kind is KeyKind.DESTINATION:
            candidates.append(finding.key.removeprefix("+"))
        rate = ctx.rate
        if rate is not None:
            candidates.append(rate.prefix)
        ranges = [c for c in candidates if c.isdigit() and len(c) >= MIN_BLOCK_DIGITS]
        if ranges:
            return ActionTarget(kind, max(ranges, key=len))
        callee = ctx.callee
        if callee is not None and callee.e164 is not None:
            return ActionTarget(kind, callee.e164[1 : 1 + BLOCK_DIGITS])
        return ActionTarget(kind, None, "the record names no called number in E.164")
    if kind is SuggestedAction.THROTTLE:
        if finding.key_kind is KeyKind.USER:
            return ActionTarget(kind, finding.key)
        return ActionTarget(kind, finding.tenant_id, "the finding names no tenant")
    return ActionTarget(kind, None, f"{kind.value} names no target")


class Surveillance:
    """The detectors over the usage stream, with cases and automatic actions.

    Thread-safe for its callers: records are processed one batch at a time under a lock, and
    governance's change notifications (from any thread) only mark facts as stale.
    """

    def __init__(
        self,
        governance: GovernanceService,
        admission_config: AdmissionConfigService,
        rating: RatingService,
        stream: UsageStream,
        cases: CaseStore,
        numbering: NumberingPlan,
        *,
        detectors: Sequence[Detector[Any]] | None = None,
        config: DetectorConfig | None = None,
        actions: ActionPolicy | None = None,
        consumer: str = CONSUMER,
        expiry_interval_s: float = 5.0,
        facts_ttl_s: float = 60.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.governance = governance
        self.rating = rating
        self.stream = stream
        self.store = cases
        self.consumer = consumer
        self.expiry_interval_s = expiry_interval_s
        self.facts_ttl_s = facts_ttl_s
        self.clock = clock or governance.clock
        self.context = DetectorContext(numbering)
        self.detectors = DetectorSet(
            detectors if detectors is not None else default_detectors(), self.context, config
        )
        self._code_config = self.detectors.config
        self._code_actions = actions or ActionPolicy()
        self.actions = self._code_actions
        self.config = SurveillanceConfigService(governance, self.detectors.detectors)
        self.config.listeners.append(self.config_changed)
        self._config_stale = True
        self._config_loaded = 0.0
        self.runner = ActionRunner(governance, admission_config, cases, self.clock)
        self.cases = CaseService(cases, self.runner.revert, self.clock)
        self._lock = threading.Lock()
        self._stale_lock = threading.Lock()
        self._loaded: dict[str, float] = {}
        self._stale: set[str] = set()
        self._prefixes_stale = True
        self._subscription: Subscription | None = None
        governance.listeners.append(self)

    # -- configuration -------------------------------------------------------------------------
    def configure(
        self, config: DetectorConfig | None = None, actions: ActionPolicy | None = None
    ) -> None:
        """Put new detector policies and/or a new action policy given in code in force (state
        is kept); policies operators stored still take precedence where they are set."""
        with self._lock:
            if config is not None:
                self.detectors.configure(config)
                self._code_config = config
            if actions is not None:
                self._code_actions = actions
                self.actions = actions
            self._config_stale = True

    def config_changed(self) -> None:
        """Re-read the stored configuration before the next record (an operator changed it)."""
        self._config_stale = True

    def _load_config(self, now: float) -> None:
        """Put the code's configuration overlaid by the stored one in force."""
        self._config_stale = False
        self._config_loaded = now
        stored, stored_actions = self.config.load()
        config = overlay(self._code_config, stored)
        try:
            self.detectors.configure(config)
        except InvalidInput:
            log.exception("stored detector policies refused; the configuration in code holds")
            self.detectors.configure(self._code_config)
        self.actions = stored_actions or self._code_actions

    # -- ChangeListener: facts are re-read before the next record of a changed tenant ----------
    def tenant_changed(self, tenant_id: str) -> None:
        """Re-read this tenant's facts before its next record."""
        with self._stale_lock:
            self._stale.add(tenant_id)

    def key_changed(self) -> None:
        """API keys do not matter to detectors."""

    def all_changed(self) -> None:
        """Re-read every tenant's facts and the high-risk list before the next record."""
        with self._stale_lock:
            self._stale.update(self._loaded)
            self._prefixes_stale = True

    def _refresh(self, records: Sequence[UsageRecord]) -> None:
        with self._stale_lock:
            stale, self._stale = self._stale, set()
            prefixes, self._prefixes_stale = self._prefixes_stale, False
        if prefixes:
            with self.governance.store.transaction() as tx:
                self.context.high_risk = PrefixList(tx.list_high_risk_prefixes())
        now = time.monotonic()
        if self._config_stale or now - self._config_loaded >= self.facts_ttl_s:
            self._load_config(now)
        wanted = {r.tenant_id for r in records if r.tenant_id is not None}
        for tenant_id in wanted:
            loaded = self._loaded.get(tenant_id)
            if loaded is None or tenant_id in stale or now - loaded >= self.facts_ttl_s:
                self._load_facts(tenant_id, now)

    def _load_facts(self, tenant_id: str, now: float) -> None:
        with self.governance.store.transaction() as tx:
            tenant = tx.get_tenant(tenant_id)
            plan = tx.get_plan(tenant.plan_id) if tenant is not None else None
        self._loaded[tenant_id] = now
        if tenant is None or plan is None:
            return
        self.context.set_tenant(
            tenant_facts(tenant, plan, self.rating.deck_for(tenant.id, plan.id))
        )

    # -- processing ----------------------------------------------------------------------------
    def process(self, records: Sequence[UsageRecord]) -> list[Case]:
        """Feed records to the detectors in order; open or update a case per finding and take
        the actions the policy asks for. Returns the cases touched, as they are afterwards."""
        touched: dict[str, Case] = {}
        with self._lock:
            self._refresh(records)
            for record in records:
                findings = self.detectors.observe(record)
                if not findings:
                    continue
                ctx = self.context.event(record)
                for finding in findings:
                    case = self._record(finding)
                    kind = self.actions.action_for(finding)
                    if kind is not None:
                        case = self._act(case, kind, finding, ctx)
                    touched[case.id] = case
        return list(touched.values())

    def _record(self, finding: DetectorFinding) -> Case:
        """Open a case for the finding, or update the active one about the same key."""
        now = self.clock()
        with self.store.transaction() as tx:
            case = tx.active_case(
                finding.tenant_id, finding.detector, finding.key_kind.value, finding.key
            )
            if case is None:
                case = open_case(new_id("cs"), finding, now)
                tx.add_case(case)
                audit_case(
                    tx,
                    SYSTEM,
                    case,
                    "case.opened",
                    now,
                    reason=finding.summary,
                    details={
                        "detector": finding.detector,
                        "key_kind": finding.key_kind.value,
                        "key": finding.key,
                        "severity": finding.severity.value,
                        "mode": finding.mode.value,
                    },
                )
            else:
                case = merge_finding(case, finding, now)
                tx.save_case(case)
        return case

    def _act(
        self, case: Case, kind: SuggestedAction, finding: DetectorFinding, ctx: EventContext
    ) -> Case:
        """Take ``kind`` against its target unless the case already did (or tried) so."""
        wanted = action_target(kind, finding, ctx)
        for earlier in case.actions:
            if earlier.kind is kind and (
                earlier.target == wanted.target or earlier.reference == wanted.target
            ):
                return case
        action = self.runner.apply(case, wanted, finding.severity, self.actions)
        log.info(
            "automatic action",
            extra={
                "case_id": case.id,
                "action_id": action.id,
                "kind": action.kind.value,
                "status": action.status.value,
            },
        )
        return replace(case, actions=(*case.actions, action))

    # -- running -------------------------------------------------------------------------------
    async def _handle(self, records: Sequence[UsageRecord]) -> None:
        await anyio.to_thread.run_sync(self.process, records)

    async def start(self) -> None:
        """Subscribe to the usage stream (records published from now on are processed)."""
        if self._subscription is None:
            self._subscription = await self.stream.subscribe(self.consumer, self._handle)

    async def stop(self) -> None:
        """Stop reading the stream; unread records wait for the next subscription."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.stop()

    def expire_due(self) -> int:
        """Undo the actions whose expiry has passed; returns how many."""
        return len(self.runner.expire_due())

    async def run(self) -> None:
        """Read the stream and undo expired actions every ``expiry_interval_s`` until
        cancelled (the API's lifespan runs it)."""
        await self.start()
        try:
            while True:
                try:
                    await anyio.to_thread.run_sync(self.expire_due)
                except Exception:  # a database hiccup must not stop the job; it logs and retries
                    log.exception("expiring case actions failed")
                await anyio.sleep(self.expiry_interval_s)
        finally:
            with anyio.CancelScope(shield=True):
                await self.stop()


def tenant_facts(tenant: Tenant, plan: Plan, deck: RateDeck | None) -> TenantFacts:
    """What the detectors know of a tenant: its country, time zone, plan, billing kind, rate
    deck, and whether its written SIM-box consent is on record (FRD-6)."""
    return TenantFacts(
        tenant.id,
        country=tenant.country,
        timezone=tenant.timezone,
        plan_id=plan.id,
        billing=plan.billing,
        rate_deck=deck,
        sim_box_consent=tenant.sim_box_consent is not None,
    )


def overlay(base: DetectorConfig, stored: DetectorConfig) -> DetectorConfig:
    """``base`` with every policy of ``stored`` put over it: a stored policy replaces the base's
    for the same detector at the same scope (default, plan or tenant); the rest stays."""
    plans = {k: dict(v) for k, v in base.plans.items()}
    for plan_id, policies in stored.plans.items():
        plans.setdefault(plan_id, {}).update(policies)
    tenants = {k: dict(v) for k, v in base.tenants.items()}
    for tenant_id, policies in stored.tenants.items():
        tenants.setdefault(tenant_id, {}).update(policies)
    return DetectorConfig(
        defaults={**base.defaults, **stored.defaults}, plans=plans, tenants=tenants
    )
