"""What the services need from the outside world, as protocols the adapters implement.

The store is used one transaction at a time: every change and its audit entry are written in the
same transaction, or neither is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from callwarden.core.admission.policy import RulePolicy
from callwarden.core.admission.snapshot import NumberState, UserState
from callwarden.core.audit import AuditEntry, AuditFact
from callwarden.core.model import (
    ApiKey,
    Order,
    Override,
    PhoneNumber,
    Plan,
    Principal,
    Tenant,
    Trunk,
    User,
)
from callwarden.core.prefixes import PrefixEntry
from callwarden.core.rating import Rate, RateDeck

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Which slice of a list the caller wants."""

    limit: int = 50
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One slice of a list, with the total so a console can draw pagination."""

    items: list[T]
    total: int
    limit: int
    offset: int

    @property
    def next_offset(self) -> int | None:
        """Offset of the following page, or None on the last one."""
        nxt = self.offset + self.limit
        return nxt if nxt < self.total else None


@dataclass(frozen=True, slots=True)
class TenantQuery:
    """Filters for listing tenants; None means any."""

    status: str | None = None
    country: str | None = None
    plan_id: str | None = None
    name_contains: str | None = None
    tenant_id: str | None = None


@dataclass(frozen=True, slots=True)
class UserQuery:
    """Filters for listing a tenant's users."""

    tenant_id: str | None
    role: str | None = None
    status: str | None = None
    email_contains: str | None = None


@dataclass(frozen=True, slots=True)
class NumberQuery:
    """Filters for listing a tenant's phone numbers."""

    tenant_id: str
    status: str | None = None
    ownership: str | None = None
    prefix: str | None = None


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters for reading the audit log."""

    tenant_id: str | None = None
    action: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class RateDeckInfo:
    """A stored rate deck (LIM-1) as people see it: its name and currency, how many rates it
    holds, and the distinct effective dates its rates start on (epoch seconds, oldest first;
    the first 1,000 of ``effective_date_count``)."""

    id: str
    name: str
    currency: str
    description: str
    rate_count: int
    effective_dates: tuple[int, ...]
    effective_date_count: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RateDeckAssignment:
    """The deck that rates a plan's tenants (``scope`` "plan") or one tenant ("tenant")."""

    scope: str
    scope_id: str
    deck_id: str
    assigned_at: datetime


class Transaction(Protocol):
    """Reads and writes inside one database transaction."""

    def add_plan(self, plan: Plan) -> None: ...
    def get_plan(self, plan_id: str) -> Plan | None: ...
    def get_plan_by_name(self, name: str) -> Plan | None: ...
    def save_plan(self, plan: Plan) -> None: ...
    def list_plans(self, page: PageRequest) -> Page[Plan]: ...

    def add_tenant(self, tenant: Tenant) -> None: ...
    def get_tenant(self, tenant_id: str) -> Tenant | None: ...
    def save_tenant(self, tenant: Tenant) -> None: ...
    def list_tenants(self, query: TenantQuery, page: PageRequest) -> Page[Tenant]: ...

    def add_order(self, order: Order) -> None: ...
    def get_order(self, order_id: str) -> Order | None: ...
    def list_orders(self, tenant_id: str, page: PageRequest) -> Page[Order]: ...
    def all_orders(self, tenant_id: str) -> list[Order]: ...

    def add_user(self, user: User) -> None: ...
    def get_user(self, user_id: str) -> User | None: ...
    def get_user_by_email(self, email: str) -> User | None: ...
    def save_user(self, user: User) -> None: ...
    def list_users(self, query: UserQuery, page: PageRequest) -> Page[User]: ...
    def count_seated_users(self, tenant_id: str) -> int: ...
    def lock_tenant(self, tenant_id: str) -> None: ...

    def add_number(self, number: PhoneNumber) -> None: ...
    def get_number(self, number_id: str) -> PhoneNumber | None: ...
    def get_number_by_e164(self, e164: str) -> PhoneNumber | None: ...
    def save_number(self, number: PhoneNumber) -> None: ...
    def list_numbers(self, query: NumberQuery, page: PageRequest) -> Page[PhoneNumber]: ...

    def add_trunk(self, trunk: Trunk) -> None: ...
    def get_trunk(self, trunk_id: str) -> Trunk | None: ...
    def save_trunk(self, trunk: Trunk) -> None: ...
    def delete_trunk(self, trunk_id: str) -> None: ...
    def list_trunks(self, tenant_id: str, page: PageRequest) -> Page[Trunk]: ...

    def add_api_key(self, key: ApiKey, secret_hash: str) -> None: ...
    def get_api_key(self, key_id: str) -> ApiKey | None: ...
    def save_api_key(self, key: ApiKey) -> None: ...
    def list_api_keys(self, user_id: str, page: PageRequest) -> Page[ApiKey]: ...
    def principal_for_key(self, secret_hash: str) -> tuple[Principal, ApiKey] | None: ...

    def add_override(self, override: Override) -> None: ...
    def list_overrides(self, tenant_id: str, page: PageRequest) -> Page[Override]: ...

    def get_rule_policies(self, scope: str, scope_id: str) -> dict[str, RulePolicy]: ...
    def set_rule_policy(
        self, scope: str, scope_id: str, rule: str, policy: RulePolicy, at: datetime
    ) -> None: ...
    def delete_rule_policy(self, scope: str, scope_id: str, rule: str) -> bool: ...
    def replace_high_risk_prefixes(self, entries: list[PrefixEntry], at: datetime) -> None: ...
    def list_high_risk_prefixes(self) -> list[PrefixEntry]: ...

    def add_rate_deck(self, deck: RateDeckInfo) -> None: ...
    def get_rate_deck(self, deck_id: str) -> RateDeckInfo | None: ...
    def get_rate_deck_by_name(self, name: str) -> RateDeckInfo | None: ...
    def list_rate_decks(self, page: PageRequest) -> Page[RateDeckInfo]: ...
    def write_rates(
        self,
        deck_id: str,
        rates: Iterable[Rate],
        *,
        replace: bool,
        at: datetime,
        progress: Callable[[int], None] | None = None,
    ) -> RateDeckInfo: ...
    def load_rate_deck(self, deck_id: str) -> RateDeck | None: ...
    def rate_deck_assignments(self) -> list[RateDeckAssignment]: ...
    def set_rate_deck_assignment(self, assignment: RateDeckAssignment) -> None: ...
    def delete_rate_deck_assignment(self, scope: str, scope_id: str) -> bool: ...
    def rate_deck_changed_since(self, seq: int) -> tuple[int, bool]: ...

    def all_trunks(self) -> list[Trunk]: ...
    def user_states(self, tenant_id: str) -> dict[str, UserState]: ...
    def number_states(self, tenant_id: str) -> dict[str, NumberState]: ...
    def changed_tenants_since(self, seq: int) -> tuple[int, set[str | None]]: ...

    def append_audit(self, fact: AuditFact, at: datetime) -> AuditEntry: ...
    def list_audit(self, query: AuditQuery, page: PageRequest) -> Page[AuditEntry]: ...
    def iter_audit(self) -> Iterator[AuditEntry]: ...
    def audit_head(self) -> tuple[int, str]: ...


class Store(Protocol):
    """Opens transactions and reports whether the database answers."""

    def transaction(self) -> AbstractContextManager[Transaction]: ...
    def ping(self) -> None: ...


class ChangeListener(Protocol):
    """Told after a change commits, so caches such as admission snapshots refresh at once."""

    def tenant_changed(self, tenant_id: str) -> None: ...
    def key_changed(self) -> None: ...
    def all_changed(self) -> None: ...


class Clock(Protocol):
    """The current time, timezone-aware UTC; tests pass a fixed one."""

    def __call__(self) -> datetime: ...
