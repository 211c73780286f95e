"""Governance: plans, tenants, orders, users, numbers, trunks, suspensions and overrides.

Every method checks the caller's role and tenant, validates its input, makes the change and
writes the audit entry (GOV-1) in the same transaction, then tells the change listeners so the
admission snapshot sees it on the very next call attempt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from callwarden.core import validation as v
from callwarden.core.audit import AuditFact, JSONValue
from callwarden.core.errors import Conflict, Forbidden, InvalidInput, NotFound, PolicyRefusal
from callwarden.core.model import (
    Billing,
    Channel,
    NumberOwnership,
    NumberStatus,
    Order,
    Override,
    PhoneNumber,
    Plan,
    PlanLimits,
    Principal,
    SimBoxConsent,
    Suspension,
    Tenant,
    TenantStatus,
    Throttle,
    ThrottleRates,
    Trunk,
    User,
    UserRole,
    UserStatus,
)
from callwarden.core.permissions import Permission, allows
from callwarden.core.seats import (
    RefuseBeyondLimit,
    SeatCount,
    SeatLimitPolicy,
    check_activation,
    seat_limit_at,
)
from callwarden.services.ids import new_id
from callwarden.services.ports import (
    ChangeListener,
    NumberQuery,
    Page,
    PageRequest,
    Store,
    TenantQuery,
    Transaction,
    UserQuery,
)

SYSTEM = Principal(user_id="system", tenant_id=None, role=UserRole.OPERATOR)
"""The principal the CLI and internal jobs act as: an operator with no user row."""


def utcnow() -> datetime:
    """The current time in UTC (the default clock)."""
    return datetime.now(UTC)


def authorize(principal: Principal, permission: Permission, tenant_id: str | None = None) -> None:
    """Raise `Forbidden` unless the principal's role allows it, inside its own tenant."""
    if not allows(principal.role, permission):
        raise Forbidden(f"role {principal.role.value} may not {permission.value}")
    if not principal.is_operator and tenant_id != principal.tenant_id:
        raise Forbidden("this key belongs to another tenant")


class GovernanceService:
    """The audited changes an operator or tenant admin makes to the platform's state."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime] = utcnow,
        seat_policy: SeatLimitPolicy | None = None,
        listeners: Sequence[ChangeListener] = (),
    ) -> None:
        self.store = store
        self.clock = clock
        self.seat_policy: SeatLimitPolicy = seat_policy or RefuseBeyondLimit()
        self.listeners = list(listeners)

    # -- helpers -------------------------------------------------------------------------------
    def _audit(
        self,
        tx: Transaction,
        by: Principal,
        action: str,
        subject_type: str,
        subject_id: str,
        tenant_id: str | None,
        *,
        reason: str | None = None,
        clause_ids: tuple[str, ...] = (),
        details: dict[str, JSONValue] | None = None,
    ) -> None:
        fact = AuditFact(
            actor=by.user_id,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            tenant_id=tenant_id,
            reason=reason,
            clause_ids=clause_ids,
            details=details or {},
        )
        tx.append_audit(fact, self.clock())

    def _changed(self, tenant_id: str | None) -> None:
        for listener in self.listeners:
            if tenant_id is None:
                listener.key_changed()
            else:
                listener.tenant_changed(tenant_id)

    def _suspension(self, by: Principal, reason: str, clause_ids: Sequence[str]) -> Suspension:
        return Suspension(
            reason=v.check_text(reason, "reason", max_length=2000),
            clause_ids=v.check_clause_ids(list(clause_ids)),
            at=self.clock(),
            by=by.user_id,
        )

    @staticmethod
    def _tenant(tx: Transaction, tenant_id: str) -> Tenant:
        tenant = tx.get_tenant(tenant_id)
        if tenant is None:
            raise NotFound(f"tenant {tenant_id} not found", field="tenant_id")
        return tenant

    @staticmethod
    def _user(tx: Transaction, tenant_id: str, user_id: str) -> User:
        user = tx.get_user(user_id)
        if user is None or user.tenant_id != tenant_id:
            raise NotFound(f"user {user_id} not found in tenant {tenant_id}", field="user_id")
        return user

    @staticmethod
    def _number(tx: Transaction, tenant_id: str, number_id: str) -> PhoneNumber:
        number = tx.get_number(number_id)
        if number is None or number.tenant_id != tenant_id:
            raise NotFound(f"number {number_id} not found in tenant {tenant_id}", field="number_id")
        return number

    @staticmethod
    def _trunk(tx: Transaction, tenant_id: str, trunk_id: str) -> Trunk:
        trunk = tx.get_trunk(trunk_id)
        if trunk is None or trunk.tenant_id != tenant_id:
            raise NotFound(f"trunk {trunk_id} not found in tenant {tenant_id}", field="trunk_id")
        return trunk

    # -- plans ---------------------------------------------------------------------------------
    def create_plan(
        self,
        by: Principal,
        *,
        name: str,
        billing: Billing,
        channels: Sequence[Channel],
        currency: str,
        limits: PlanLimits,
    ) -> Plan:
        """Add a plan to the provider's catalogue."""
        authorize(by, Permission.PLANS_WRITE)
        plan = Plan(
            id=new_id("pl"),
            name=v.check_text(name, "name"),
            billing=billing,
            channels=frozenset(channels),
            currency=_check_currency(currency),
            limits=_check_limits(limits),
            created_at=self.clock(),
        )
        with self.store.transaction() as tx:
            tx.add_plan(plan)
            self._audit(tx, by, "plan.created", "plan", plan.id, None, details={"name": plan.name})
        return plan

    def update_plan(self, by: Principal, plan_id: str, **changes: Any) -> Plan:
        """Change a plan's name, channels or limits; every tenant on it is affected at once."""
        authorize(by, Permission.PLANS_WRITE)
        with self.store.transaction() as tx:
            plan = tx.get_plan(plan_id)
            if plan is None:
                raise NotFound(f"plan {plan_id} not found", field="plan_id")
            if "name" in changes:
                changes["name"] = v.check_text(changes["name"], "name")
            if "currency" in changes:
                changes["currency"] = _check_currency(changes["currency"])
            if "limits" in changes:
                changes["limits"] = _check_limits(changes["limits"])
            if "channels" in changes:
                changes["channels"] = frozenset(changes["channels"])
            updated = dataclasses.replace(plan, **changes)
            tx.save_plan(updated)
            self._audit(
                tx,
                by,
                "plan.updated",
                "plan",
                plan.id,
                None,
                details={"fields": [str(k) for k in sorted(changes)]},
            )
            tenants = tx.list_tenants(TenantQuery(plan_id=plan.id), PageRequest(limit=10**9))
        for t in tenants.items:
            self._changed(t.id)
        return updated

    def get_plan(self, by: Principal, plan_id: str) -> Plan:
        """One plan."""
        authorize(by, Permission.PLANS_READ)
        with self.store.transaction() as tx:
            plan = tx.get_plan(plan_id)
        if plan is None:
            raise NotFound(f"plan {plan_id} not found", field="plan_id")
        return plan

    def list_plans(self, by: Principal, page: PageRequest) -> Page[Plan]:
        """The plan catalogue."""
        authorize(by, Permission.PLANS_READ)
        with self.store.transaction() as tx:
            return tx.list_plans(page)

    # -- tenants -------------------------------------------------------------------------------
    def create_tenant(
        self, by: Principal, *, name: str, country: str, timezone: str, plan_id: str
    ) -> Tenant:
        """Onboard a business customer on a plan."""
        authorize(by, Permission.TENANTS_WRITE)
        tenant = Tenant(
            id=new_id("tn"),
            name=v.check_text(name, "name"),
            country=v.check_country(country),
            timezone=v.check_timezone(timezone),
            plan_id=plan_id,
            status=TenantStatus.ACTIVE,
            suspension=None,
            created_at=self.clock(),
        )
        with self.store.transaction() as tx:
            if tx.get_plan(plan_id) is None:
                raise InvalidInput(f"plan_id {plan_id!r} names no plan", field="plan_id")
            tx.add_tenant(tenant)
            self._audit(
                tx,
                by,
                "tenant.created",
                "tenant",
                tenant.id,
                tenant.id,
                details={"name": tenant.name, "plan_id": plan_id},
            )
        self._changed(tenant.id)
        return tenant

    def get_tenant(self, by: Principal, tenant_id: str) -> Tenant:
        """One tenant, if the caller may see it."""
        authorize(by, Permission.TENANTS_READ, tenant_id)
        with self.store.transaction() as tx:
            return self._tenant(tx, tenant_id)

    def list_tenants(self, by: Principal, query: TenantQuery, page: PageRequest) -> Page[Tenant]:
        """Tenants matching `query`; a tenant's own users see only their tenant."""
        if not allows(by.role, Permission.TENANTS_READ):
            raise Forbidden(f"role {by.role.value} may not {Permission.TENANTS_READ.value}")
        if not by.is_operator:
            query = dataclasses.replace(query, tenant_id=by.tenant_id)
        with self.store.transaction() as tx:
            return tx.list_tenants(query, page)

    def update_tenant(self, by: Principal, tenant_id: str, **changes: Any) -> Tenant:
        """Rename a tenant, move it to another plan, country or time zone."""
        authorize(by, Permission.TENANTS_WRITE, tenant_id)
        if "name" in changes:
            changes["name"] = v.check_text(changes["name"], "name")
        if "country" in changes:
            changes["country"] = v.check_country(changes["country"])
        if "timezone" in changes:
            changes["timezone"] = v.check_timezone(changes["timezone"])
        with self.store.transaction() as tx:
            tenant = self._tenant(tx, tenant_id)
            if "plan_id" in changes and tx.get_plan(changes["plan_id"]) is None:
                raise InvalidInput(f"plan_id {changes['plan_id']!r} names no plan", field="plan_id")
            updated = dataclasses.replace(tenant, **changes)
            tx.save_tenant(updated)
            details: dict[str, JSONValue] = {k: str(val) for k, val in changes.items()}
            self._audit(tx, by, "tenant.updated", "tenant", tenant_id, tenant_id, details=details)
        self._changed(tenant_id)
        return updated

    def set_charge_limits(
        self, by: Principal, tenant_id: str, *, hard_minor: int | None, soft_minor: int | None
    ) -> Tenant:
        """Give a tenant its own monthly charge limits (LIM-1 hard, LIM-3 soft), in minor units
        of its plan's currency; None keeps the plan's. Operator only, audited."""
        authorize(by, Permission.PLANS_WRITE)
        for name, value in (("hard_minor", hard_minor), ("soft_minor", soft_minor)):
            if value is not None and (type(value) is not int or value < 0):
                raise InvalidInput(f"{name} must be an integer >= 0 or null", field=name)
        with self.store.transaction() as tx:
            tenant = self._tenant(tx, tenant_id)
            updated = dataclasses.replace(
                tenant,
                monthly_charge_limit_minor=hard_minor,
                monthly_charge_soft_limit_minor=soft_minor,
            )
            tx.save_tenant(updated)
            self._audit(
                tx,
                by,
                "tenant.charge_limits",
                "tenant",
                tenant_id,
                tenant_id,
                clause_ids=("LIM-1", "LIM-3"),
                details={"hard_minor": hard_minor, "soft_minor": soft_minor},
            )
        self._changed(tenant_id)
        return updated

    def record_sim_box_consent(self, by: Principal, tenant_id: str, *, reference: str) -> Tenant:
        """Put on record that the provider holds the tenant's written consent to run SIM boxes
        or GSM gateways (FRD-6), naming the signed document; the ``simbox`` detector then
        leaves the tenant alone. Recording it again replaces the reference. Operator only,
        audited."""
        authorize(by, Permission.TENANTS_WRITE)
        consent = SimBoxConsent(
            reference=v.check_text(reference, "reference", max_length=500),
            at=self.clock(),
            by=by.user_id,
        )
        with self.store.transaction() as tx:
            tenant = self._tenant(tx, tenant_id)
            updated = dataclasses.replace(tenant, sim_box_consent=consent)
            tx.save_tenant(updated)
            self._audit(
                tx,
                by,
                "tenant.sim_box_consent.recorded",
                "tenant",
                tenant_id,
                tenant_id,
                clause_ids=("FRD-6",),
                details={"reference": consent.reference},
            )
        self._changed(tenant_id)
        return updated

    def withdraw_sim_box_consent(self, by: Principal, tenant_id: str, *, reason: str) -> Tenant:
        """Take the tenant's SIM-box consent off record (it was withdrawn, expired or found
        wanting): the ``simbox`` detector watches the tenant again from its next record.
        Operator only, audited with the reason and the reference that was on record."""
        authorize(by, Permission.TENANTS_WRITE)
        reason = v.check_text(reason, "reason", max_length=2000)
        with self.store.transaction() as tx:
            tenant = self._tenant(tx, tenant_id)
            if tenant.sim_box_consent is None:
                raise NotFound(
                    f"tenant {tenant_id} has no SIM-box consent on record", field="tenant_id"
                )
            updated = dataclasses.replace(tenant, sim_box_consent=None)
            tx.save_tenant(updated)
            self._audit(
                tx,
                by,
                "tenant.sim_box_consent.withdrawn",
                "tenant",
                tenant_id,
                tenant_id,
                reason=reason,
                clause_ids=("FRD-6",),
                details={"reference": tenant.sim_box_consent.reference},
            )
        self._changed(tenant_id)
        return updated

    def suspend_tenant(
        self, by: Principal, tenant_id: str, *, reason: str, clause_ids: Sequence[str]
    ) -> Tenant:
        """Suspend a tenant at once (GOV-2): its next call is refused, emergency calls excepted."""
        authorize(by, Permission.SUSPEND, tenant_id)
        suspension = self._suspension(by, reason, clause_ids)
        with self.store.transaction() as tx:
            tenant = self._tenant(tx, tenant_id)
            if tenant.status is TenantStatus.TERMINATED:
                raise Conflict(f"tenant {tenant_id} is terminated", field="tenant_id")
            updated = dataclasses.replace(
                tenant, status=TenantStatus.SUSPENDED, suspension=suspension
            )
            tx.save_tenant(updated)
            self._audit(
                tx,
                by,
                "tenant.suspended",
                "tenant",
                tenant_id,
                tenant_id,
                reason=suspension.reason,
                clause_ids=suspension.clause_ids,
            )
        self._changed(tenant_id)
        return updated

    def reinstate_tenant(self, by: Principal, tenant_id: str, *, reason: str) -> Tenant:
        """Lift a tenant's suspension (GOV-2), with the reason recorded."""
        authorize(by, Permission.SUSPEND, tenant_id)
        reason = v.check_text(reason, "reason", max_length=2000)
        with self.store.transaction() as tx:
            tenant = self._tenant(tx, tenant_id)
            if tenant.status is not TenantStatus.SUSPENDED:
                raise Conflict(f"tenant {tenant_id} is {tenant.status.value}, not suspended")
            updated = dataclasses.replace(tenant, status=TenantStatus.ACTIVE, suspension=None)
            tx.save_tenant(updated)
            self._audit(
                tx,
                by,
                "tenant.reinstated",
                "tenant",
                tenant_id,
                tenant_id,
                reason=reason,
                clause_ids=("GOV-2",),
            )
        self._changed(tenant_id)
        return updated

    def terminate_tenant(
        self, by: Principal, tenant_id: str, *, reason: str, clause_ids: Sequence[str]
    ) -> Tenant:
        """End a tenant's service for good (GOV-2)."""
        authorize(by, Permission.SUSPEND, tenant_id)
        suspension = self._suspension(by, reason, clause_ids)
        with self.store.transaction() as tx:
            tenant = self._tenant(tx, tenant_id)
            updated = dataclasses.replace(
                tenant, status=TenantStatus.TERMINATED, suspension=suspension
            )
            tx.save_tenant(updated)
            self._audit(
                tx,
                by,
                "tenant.terminated",
                "tenant",
                tenant_id,
                tenant_id,
                reason=suspension.reason,
                clause_ids=suspension.clause_ids,
            )
        self._changed(tenant_id)
        return updated

    # -- orders and seats ----------------------------------------------------------------------
    def add_order(
        self,
        by: Principal,
        tenant_id: str,
        *,
        seat_limit: int,
        valid_from: datetime | None = None,
        valid_until: datetime | None = None,
        reference: str = "",
    ) -> Order:
        """Record a sales order granting seats (ACC-3)."""
        authorize(by, Permission.ORDERS_WRITE, tenant_id)
        if seat_limit < 0:
            raise InvalidInput("seat_limit must not be negative", field="seat_limit")
        start = valid_from or self.clock()
        if valid_until is not None and valid_until <= start:
            raise InvalidInput("valid_until must be after valid_from", field="valid_until")
        order = Order(
            id=new_id("or"),
            tenant_id=tenant_id,
            seat_limit=seat_limit,
            valid_from=start,
            valid_until=valid_until,
            reference=v.check_text(reference, "reference", allow_empty=True),
            created_at=self.clock(),
        )
        with self.store.transaction() as tx:
            self._tenant(tx, tenant_id)
            tx.add_order(order)
            self._audit(
                tx,
                by,
                "order.created",
                "order",
                order.id,
                tenant_id,
                clause_ids=("ACC-3",),
                details={"seat_limit": seat_limit, "reference": order.reference},
            )
        self._changed(tenant_id)
        return order

    def list_orders(self, by: Principal, tenant_id: str, page: PageRequest) -> Page[Order]:
        """A tenant's orders."""
        authorize(by, Permission.ORDERS_READ, tenant_id)
        with self.store.transaction() as tx:
            self._tenant(tx, tenant_id)
            return tx.list_orders(tenant_id, page)

    def get_order(self, by: Principal, tenant_id: str, order_id: str) -> Order:
        """One order of a tenant."""
        authorize(by, Permission.ORDERS_READ, tenant_id)
        with self.store.transaction() as tx:
            order = tx.get_order(order_id)
        if order is None or order.tenant_id != tenant_id:
            raise NotFound(f"order {order_id} not found in tenant {tenant_id}", field="order_id")
        return order

    def seat_count(self, by: Principal, tenant_id: str) -> SeatCount:
        """Seats bought and in use now."""
        authorize(by, Permission.TENANTS_READ, tenant_id)
        with self.store.transaction() as tx:
            self._tenant(tx, tenant_id)
            return self._seat_count(tx, tenant_id)

    def _seat_count(self, tx: Transaction, tenant_id: str) -> SeatCount:
        limit = seat_limit_at(tx.all_orders(tenant_id), self.clock())
        return SeatCount(limit=limit, used=tx.count_seated_users(tenant_id))

    # -- users ---------------------------------------------------------------------------------
    def create_user(
        self,
        by: Principal,
        tenant_id: str | None,
        *,
        email: str,
        display_name: str,
        role: UserRole,
    ) -> User:
        """Invite a user; an invited user takes no seat until activated."""
        if tenant_id is None:
            authorize(by, Permission.TENANTS_WRITE)
            if role is not UserRole.OPERATOR:
                raise InvalidInput("users without a tenant must be operators", field="role")
        else:
            authorize(by, Permission.USERS_WRITE, tenant_id)
            if role is UserRole.OPERATOR:
                raise InvalidInput("operators belong to no tenant", field="role")
        user = User(
            id=new_id("us"),
            tenant_id=tenant_id,
            email=v.check_email(email),
            display_name=v.check_text(display_name, "display_name"),
            role=role,
            status=UserStatus.ACTIVE if tenant_id is None else UserStatus.INVITED,
            suspension=None,
            created_at=self.clock(),
        )
        with self.store.transaction() as tx:
            if tenant_id is not None:
                self._tenant(tx, tenant_id)
            tx.add_user(user)
            self._audit(
                tx,
                by,
                "user.created",
                "user",
                user.id,
                tenant_id,
                details={"email": user.email, "role": role.value},
            )
        return user

    def get_user(self, by: Principal, tenant_id: str, user_id: str) -> User:
        """One user of a tenant."""
        authorize(by, Permission.USERS_READ, tenant_id)
        with self.store.transaction() as tx:
            return self._user(tx, tenant_id, user_id)

    def list_users(self, by: Principal, query: UserQuery, page: PageRequest) -> Page[User]:
        """A tenant's users."""
        authorize(by, Permission.USERS_READ, query.tenant_id)
        with self.store.transaction() as tx:
            if query.tenant_id is not None:
                self._tenant(tx, query.tenant_id)
            return tx.list_users(query, page)

    def update_user(self, by: Principal, tenant_id: str, user_id: str, **changes: Any) -> User:
        """Change a user's name, e-mail or role (status changes have their own verbs)."""
        authorize(by, Permission.USERS_WRITE, tenant_id)
        if "email" in changes:
            changes["email"] = v.check_email(changes["email"])
        if "display_name" in changes:
            changes["display_name"] = v.check_text(changes["display_name"], "display_name")
        if changes.get("role") is UserRole.OPERATOR:
            raise InvalidInput("operators belong to no tenant", field="role")
        with self.store.transaction() as tx:
            user = self._user(tx, tenant_id, user_id)
            updated = dataclasses.replace(user, **changes)
            tx.save_user(updated)
            details: dict[str, JSONValue] = {k: str(val) for k, val in changes.items()}
            self._audit(tx, by, "user.updated", "user", user_id, tenant_id, details=details)
        self._changed(tenant_id)
        return updated

    def activate_user(
        self, by: Principal, tenant_id: str, user_id: str, *, override_reason: str | None = None
    ) -> User:
        """Give a user a seat (ACC-3). Past the limit the seat policy decides; an operator may
        override it with a reason (GOV-7), which is recorded as an override."""
        authorize(by, Permission.USERS_WRITE, tenant_id)
        if override_reason is not None:
            authorize(by, Permission.OVERRIDE, tenant_id)
            override_reason = v.check_text(override_reason, "override_reason", max_length=2000)
        with self.store.transaction() as tx:
            tx.lock_tenant(tenant_id)
            tenant = self._tenant(tx, tenant_id)
            user = self._user(tx, tenant_id, user_id)
            if user.status is UserStatus.ACTIVE:
                return user
            if user.status is UserStatus.SUSPENDED:
                raise Conflict(f"user {user_id} is suspended; reinstate it instead")
            count = self._seat_count(tx, tenant_id)
            verdict = check_activation(tenant, user, count, self.seat_policy)
            clause_ids: tuple[str, ...] = ("ACC-3",)
            if not verdict.allowed:
                if override_reason is None:
                    raise PolicyRefusal(verdict.reason, clause_ids=verdict.clause_ids)
                override = Override(
                    id=new_id("ov"),
                    tenant_id=tenant_id,
                    clause_id="ACC-3",
                    subject_type="user",
                    subject_id=user_id,
                    reason=override_reason,
                    by=by.user_id,
                    at=self.clock(),
                    details={"seats_used": str(count.used), "seat_limit": str(count.limit)},
                )
                tx.add_override(override)
                self._audit(
                    tx,
                    by,
                    "override.recorded",
                    "override",
                    override.id,
                    tenant_id,
                    reason=override_reason,
                    clause_ids=("ACC-3", "GOV-7"),
                    details={"refusal": verdict.reason},
                )
                clause_ids = ("ACC-3", "GOV-7")
            updated = dataclasses.replace(user, status=UserStatus.ACTIVE)
            tx.save_user(updated)
            self._audit(
                tx,
                by,
                "user.activated",
                "user",
                user_id,
                tenant_id,
                clause_ids=clause_ids,
                details={"seats_used": count.used + 1, "seat_limit": count.limit},
            )
        self._changed(tenant_id)
        return updated

    def deactivate_user(self, by: Principal, tenant_id: str, user_id: str) -> User:
        """Free a user's seat; the user can no longer call or use the API."""
        authorize(by, Permission.USERS_WRITE, tenant_id)
        with self.store.transaction() as tx:
            user = self._user(tx, tenant_id, user_id)
            updated = dataclasses.replace(user, status=UserStatus.DEACTIVATED, suspension=None)
            tx.save_user(updated)
            self._audit(tx, by, "user.deactivated", "user", user_id, tenant_id)
        self._changed(tenant_id)
        self._changed(None)
        return updated

    def suspend_user(
        self, by: Principal, tenant_id: str, user_id: str, *, reason: str, clause_ids: Sequence[str]
    ) -> User:
        """Suspend one user at once (GOV-2); the seat stays held until deactivation."""
        authorize(by, Permission.SUSPEND, tenant_id)
        suspension = self._suspension(by, reason, clause_ids)
        with self.store.transaction() as tx:
            user = self._user(tx, tenant_id, user_id)
            if user.status is UserStatus.DEACTIVATED:
                raise Conflict(f"user {user_id} is deactivated")
            updated = dataclasses.replace(user, status=UserStatus.SUSPENDED, suspension=suspension)
            tx.save_user(updated)
            self._audit(
                tx,
                by,
                "user.suspended",
                "user",
                user_id,
                tenant_id,
                reason=suspension.reason,
                clause_ids=suspension.clause_ids,
            )
        self._changed(tenant_id)
        self._changed(None)
        return updated

    def reinstate_user(self, by: Principal, tenant_id: str, user_id: str, *, reason: str) -> User:
        """Lift a user's suspension (GOV-2)."""
        authorize(by, Permission.SUSPEND, tenant_id)
        reason = v.check_text(reason, "reason", max_length=2000)
        with self.store.transaction() as tx:
            user = self._user(tx, tenant_id, user_id)
            if user.status is not UserStatus.SUSPENDED:
                raise Conflict(f"user {user_id} is {user.status.value}, not suspended")
            updated = dataclasses.replace(user, status=UserStatus.ACTIVE, suspension=None)
            tx.save_user(updated)
            self._audit(
                tx,
                by,
                "user.reinstated",
                "user",
                user_id,
                tenant_id,
                reason=reason,
                clause_ids=("GOV-2",),
            )
        self._changed(tenant_id)
        self._changed(None)
        return updated

    # -- phone numbers -------------------------------------------------------------------------
    def add_number(
        self, by: Principal, tenant_id: str, *, e164: str, ownership: NumberOwnership
    ) -> PhoneNumber:
        """Assign a number to a tenant as a caller ID it may present (CID-1)."""
        authorize(by, Permission.NUMBERS_WRITE, tenant_id)
        number = PhoneNumber(
            id=new_id("nm"),
            tenant_id=tenant_id,
            e164=v.check_e164(e164),
            ownership=ownership,
            status=NumberStatus.ACTIVE,
            suspension=None,
            created_at=self.clock(),
        )
        with self.store.transaction() as tx:
            self._tenant(tx, tenant_id)
            if tx.get_number_by_e164(number.e164) is not None:
                raise Conflict(f"number {number.e164} is already assigned", field="e164")
            tx.add_number(number)
            self._audit(
                tx,
                by,
                "number.added",
                "phone_number",
                number.id,
                tenant_id,
                details={"e164": number.e164, "ownership": ownership.value},
            )
        self._changed(tenant_id)
        return number

    def get_number(self, by: Principal, tenant_id: str, number_id: str) -> PhoneNumber:
        """One number of a tenant."""
        authorize(by, Permission.NUMBERS_READ, tenant_id)
        with self.store.transaction() as tx:
            return self._number(tx, tenant_id, number_id)

    def list_numbers(
        self, by: Principal, query: NumberQuery, page: PageRequest
    ) -> Page[PhoneNumber]:
        """A tenant's numbers."""
        authorize(by, Permission.NUMBERS_READ, query.tenant_id)
        with self.store.transaction() as tx:
            self._tenant(tx, query.tenant_id)
            return tx.list_numbers(query, page)

    def update_number(
        self, by: Principal, tenant_id: str, number_id: str, *, ownership: NumberOwnership
    ) -> PhoneNumber:
        """Change how the tenant holds a number."""
        authorize(by, Permission.NUMBERS_WRITE, tenant_id)
        with self.store.transaction() as tx:
            number = self._number(tx, tenant_id, number_id)
            updated = dataclasses.replace(number, ownership=ownership)
            tx.save_number(updated)
            self._audit(
                tx,
                by,
                "number.updated",
                "phone_number",
                number_id,
                tenant_id,
                details={"ownership": ownership.value},
            )
        self._changed(tenant_id)
        return updated

    def set_number_status(
        self,
        by: Principal,
        tenant_id: str,
        number_id: str,
        *,
        status: NumberStatus,
        reason: str,
        clause_ids: Sequence[str] = ("GOV-2",),
    ) -> PhoneNumber:
        """Suspend, reinstate or release one number at once (GOV-2)."""
        authorize(by, Permission.SUSPEND, tenant_id)
        suspension = (
            self._suspension(by, reason, clause_ids) if status is NumberStatus.SUSPENDED else None
        )
        reason = v.check_text(reason, "reason", max_length=2000)
        with self.store.transaction() as tx:
            number = self._number(tx, tenant_id, number_id)
            if number.status is NumberStatus.RELEASED:
                raise Conflict(f"number {number.e164} was released")
            if status is NumberStatus.ACTIVE and number.status is not NumberStatus.SUSPENDED:
                raise Conflict(f"number {number.e164} is {number.status.value}, not suspended")
            updated = dataclasses.replace(number, status=status, suspension=suspension)
            tx.save_number(updated)
            action = {
                NumberStatus.SUSPENDED: "number.suspended",
                NumberStatus.ACTIVE: "number.reinstated",
                NumberStatus.RELEASED: "number.released",
            }[status]
            self._audit(
                tx,
                by,
                action,
                "phone_number",
                number_id,
                tenant_id,
                reason=reason,
                clause_ids=suspension.clause_ids if suspension else ("GOV-2",),
                details={"e164": number.e164},
            )
        self._changed(tenant_id)
        return updated

    # -- trunks --------------------------------------------------------------------------------
    def create_trunk(
        self, by: Principal, tenant_id: str, *, name: str, source_addresses: Sequence[str]
    ) -> Trunk:
        """Register the source addresses that identify a tenant's SIP traffic."""
        authorize(by, Permission.TRUNKS_WRITE, tenant_id)
        trunk = Trunk(
            id=new_id("tk"),
            tenant_id=tenant_id,
            name=v.check_text(name, "name"),
            source_addresses=_check_addresses(source_addresses),
            created_at=self.clock(),
        )
        with self.store.transaction() as tx:
            self._tenant(tx, tenant_id)
            tx.add_trunk(trunk)
            self._audit(
                tx,
                by,
                "trunk.created",
                "trunk",
                trunk.id,
                tenant_id,
                details={"name": trunk.name, "source_addresses": list(trunk.source_addresses)},
            )
        self._changed(tenant_id)
        return trunk

    def get_trunk(self, by: Principal, tenant_id: str, trunk_id: str) -> Trunk:
        """One trunk of a tenant."""
        authorize(by, Permission.TRUNKS_READ, tenant_id)
        with self.store.transaction() as tx:
            return self._trunk(tx, tenant_id, trunk_id)

    def list_trunks(self, by: Principal, tenant_id: str, page: PageRequest) -> Page[Trunk]:
        """A tenant's trunks."""
        authorize(by, Permission.TRUNKS_READ, tenant_id)
        with self.store.transaction() as tx:
            self._tenant(tx, tenant_id)
            return tx.list_trunks(tenant_id, page)

    def update_trunk(self, by: Principal, tenant_id: str, trunk_id: str, **changes: Any) -> Trunk:
        """Rename a trunk or change its source addresses."""
        authorize(by, Permission.TRUNKS_WRITE, tenant_id)
        if "name" in changes:
            changes["name"] = v.check_text(changes["name"], "name")
        if "source_addresses" in changes:
            changes["source_addresses"] = _check_addresses(changes["source_addresses"])
        with self.store.transaction() as tx:
            trunk = self._trunk(tx, tenant_id, trunk_id)
            updated = dataclasses.replace(trunk, **changes)
            tx.save_trunk(updated)
            self._audit(
                tx,
                by,
                "trunk.updated",
                "trunk",
                trunk_id,
                tenant_id,
                details={"name": updated.name, "source_addresses": list(updated.source_addresses)},
            )
        self._changed(tenant_id)
        return updated

    def delete_trunk(self, by: Principal, tenant_id: str, trunk_id: str) -> None:
        """Remove a trunk; its addresses no longer identify the tenant."""
        authorize(by, Permission.TRUNKS_WRITE, tenant_id)
        with self.store.transaction() as tx:
            trunk = self._trunk(tx, tenant_id, trunk_id)
            tx.delete_trunk(trunk_id)
            self._audit(
                tx, by, "trunk.deleted", "trunk", trunk_id, tenant_id, details={"name": trunk.name}
            )
        self._changed(tenant_id)

    # -- throttles (LIM-5, FRD-3) --------------------------------------------------------------
    @staticmethod
    def _throttle(tx: Transaction, tenant_id: str, throttle_id: str) -> Throttle:
        throttle = tx.get_throttle(throttle_id)
        if throttle is None or throttle.tenant_id != tenant_id:
            raise NotFound(
                f"throttle {throttle_id} not found in tenant {tenant_id}", field="throttle_id"
            )
        return throttle

    def throttle(
        self,
        by: Principal,
        tenant_id: str,
        *,
        rates: ThrottleRates,
        reason: str,
        clause_ids: Sequence[str] = ("LIM-5", "FRD-3"),
        user_id: str | None = None,
        expires_at: datetime | None = None,
    ) -> Throttle:
        """Tighten the attempt rates of a tenant, or of one of its users, from the next call
        attempt on (LIM-5, FRD-3): a measure short of suspension that slows a suspected flood
        or fraud while people look. Holds until lifted or until ``expires_at``."""
        authorize(by, Permission.SUSPEND, tenant_id)
        now = self.clock()
        if expires_at is not None and expires_at <= now:
            raise InvalidInput("expires_at must be in the future", field="expires_at")
        throttle = Throttle(
            id=new_id("th"),
            tenant_id=tenant_id,
            user_id=user_id,
            rates=rates,
            reason=v.check_text(reason, "reason", max_length=2000),
            clause_ids=v.check_clause_ids(list(clause_ids)),
            at=now,
            by=by.user_id,
            expires_at=expires_at,
        )
        with self.store.transaction() as tx:
            self._tenant(tx, tenant_id)
            if user_id is not None:
                self._user(tx, tenant_id, user_id)
            tx.add_throttle(throttle)
            self._audit(
                tx,
                by,
                "throttle.applied",
                "throttle",
                throttle.id,
                tenant_id,
                reason=throttle.reason,
                clause_ids=throttle.clause_ids,
                details=throttle_details(throttle),
            )
        self._changed(tenant_id)
        return throttle

    def lift_throttle(
        self, by: Principal, tenant_id: str, throttle_id: str, *, reason: str
    ) -> Throttle:
        """Lift a throttle at once: the plan's attempt rates alone apply again. Returns the
        throttle as it was."""
        authorize(by, Permission.SUSPEND, tenant_id)
        reason = v.check_text(reason, "reason", max_length=2000)
        with self.store.transaction() as tx:
            throttle = self._throttle(tx, tenant_id, throttle_id)
            tx.delete_throttle(throttle_id)
            self._audit(
                tx,
                by,
                "throttle.lifted",
                "throttle",
                throttle_id,
                tenant_id,
                reason=reason,
                clause_ids=throttle.clause_ids,
                details={"before": throttle_details(throttle)},
            )
        self._changed(tenant_id)
        return throttle

    def get_throttle(self, by: Principal, tenant_id: str, throttle_id: str) -> Throttle:
        """One throttle of a tenant."""
        authorize(by, Permission.TENANTS_READ, tenant_id)
        with self.store.transaction() as tx:
            return self._throttle(tx, tenant_id, throttle_id)

    def list_throttles(self, by: Principal, tenant_id: str) -> list[Throttle]:
        """The throttles on a tenant and its users, expired ones included until lifted; the
        tenant's own users may read them."""
        authorize(by, Permission.TENANTS_READ, tenant_id)
        with self.store.transaction() as tx:
            self._tenant(tx, tenant_id)
            return tx.list_throttles(tenant_id)

    # -- overrides -----------------------------------------------------------------------------
    def list_overrides(self, by: Principal, tenant_id: str, page: PageRequest) -> Page[Override]:
        """The operator overrides recorded for a tenant (GOV-7)."""
        authorize(by, Permission.AUDIT_READ, tenant_id)
        with self.store.transaction() as tx:
            self._tenant(tx, tenant_id)
            return tx.list_overrides(tenant_id, page)


def throttle_details(throttle: Throttle) -> dict[str, JSONValue]:
    """A throttle as audit details: who it applies to, its rates and its expiry."""
    rates = throttle.rates
    return {
        "user_id": throttle.user_id,
        "fraction": None if rates.fraction is None else str(rates.fraction),
        "attempts_per_second": rates.attempts_per_second,
        "attempts_per_minute": rates.attempts_per_minute,
        "expires_at": throttle.expires_at.isoformat() if throttle.expires_at else None,
    }


def _check_currency(value: str) -> str:
    code = value.strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise InvalidInput(f"currency {value!r} is not an ISO 4217 code", field="currency")
    return code


def _check_limits(limits: PlanLimits) -> PlanLimits:
    for f in dataclasses.fields(limits):
        value = getattr(limits, f.name)
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise InvalidInput(f"limits.{f.name} must not be negative", field=f"limits.{f.name}")
    ceilings = (
        ("attempts_per_second", 100_000),
        ("attempts_per_minute", 6_000_000),
        ("attempts_per_15_minutes", 90_000_000),
        ("attempts_per_hour", 360_000_000),
    )
    for name, ceiling in ceilings:
        value = getattr(limits, name)
        if value is not None and not 1 <= value <= ceiling:
            raise InvalidInput(
                f"limits.{name} must be between 1 and {ceiling:,}", field=f"limits.{name}"
            )
    if limits.allowed_countries is not None:
        countries = tuple(
            v.check_country(c, "limits.allowed_countries") for c in limits.allowed_countries
        )
        limits = dataclasses.replace(limits, allowed_countries=countries)
    return limits


def _check_addresses(addresses: Sequence[str]) -> tuple[str, ...]:
    if not addresses:
        raise InvalidInput(
            "source_addresses must name at least one address", field="source_addresses"
        )
    return tuple(dict.fromkeys(v.check_source_address(a) for a in addresses))
