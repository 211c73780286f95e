"""The store on SQLAlchemy: one `SqlTransaction` per unit of work, SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, Select, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callwarden.adapters.store import mapping as m
from callwarden.adapters.store import rate_decks
from callwarden.adapters.store.database import make_engine
from callwarden.adapters.store.surveillance import SurveillanceQueries
from callwarden.adapters.store.tables import (
    ApiKeyRow,
    AuditHeadRow,
    AuditRow,
    Base,
    HighRiskPrefixRow,
    OrderRow,
    OverrideRow,
    PhoneNumberRow,
    PlanRow,
    RulePolicyRow,
    TenantRow,
    TrunkRow,
    UserRow,
)
from callwarden.core.admission.policy import FailureMode, RuleMode, RulePolicy
from callwarden.core.admission.snapshot import NumberState, UserState
from callwarden.core.audit import AuditEntry, AuditFact, seal
from callwarden.core.errors import Conflict
from callwarden.core.model import (
    ApiKey,
    NumberOwnership,
    NumberStatus,
    Order,
    Override,
    PhoneNumber,
    Plan,
    Principal,
    Tenant,
    Trunk,
    User,
    UserRole,
    UserStatus,
)
from callwarden.core.prefixes import PrefixEntry
from callwarden.core.rating import Rate, RateDeck
from callwarden.services.ids import new_id
from callwarden.services.ports import (
    AuditQuery,
    NumberQuery,
    Page,
    PageRequest,
    RateDeckAssignment,
    RateDeckInfo,
    TenantQuery,
    UserQuery,
)

R = TypeVar("R", bound=Base)
D = TypeVar("D")


def _like(fragment: str) -> str:
    escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SqlTransaction(SurveillanceQueries):
    """The `Transaction` port over one SQLAlchemy session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # -- helpers -------------------------------------------------------------------------------
    def _page(self, stmt: Select[R], page: PageRequest, convert: Callable[[R], D]) -> Page[D]:
        total = self.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        rows = self.session.scalars(stmt.limit(page.limit).offset(page.offset)).all()
        return Page([convert(r) for r in rows], total, page.limit, page.offset)

    def _insert(self, row: Base, what: str) -> None:
        self.session.add(row)
        try:
            with self.session.begin_nested():
                self.session.flush()
        except IntegrityError as exc:
            raise Conflict(f"{what} already exists") from exc

    def _update(self, table: type[Base], row_id: str, values: dict[str, Any], what: str) -> None:
        try:
            with self.session.begin_nested():
                self.session.execute(update(table).where(table.id == row_id).values(**values))  # type: ignore[attr-defined]
        except IntegrityError as exc:
            raise Conflict(f"{what} conflicts with an existing one") from exc

    # -- plans ---------------------------------------------------------------------------------
    def add_plan(self, plan: Plan) -> None:
        self._insert(PlanRow(**m.plan_values(plan)), f"a plan named {plan.name!r}")

    def get_plan(self, plan_id: str) -> Plan | None:
        row = self.session.get(PlanRow, plan_id)
        return m.plan_from_row(row) if row else None

    def get_plan_by_name(self, name: str) -> Plan | None:
        row = self.session.scalar(select(PlanRow).where(PlanRow.name == name))
        return m.plan_from_row(row) if row else None

    def save_plan(self, plan: Plan) -> None:
        self._update(PlanRow, plan.id, m.plan_values(plan), f"plan name {plan.name!r}")

    def list_plans(self, page: PageRequest) -> Page[Plan]:
        return self._page(select(PlanRow).order_by(PlanRow.name), page, m.plan_from_row)

    # -- tenants -------------------------------------------------------------------------------
    def add_tenant(self, tenant: Tenant) -> None:
        self._insert(TenantRow(**m.tenant_values(tenant)), f"tenant {tenant.id}")

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        row = self.session.get(TenantRow, tenant_id)
        return m.tenant_from_row(row) if row else None

    def save_tenant(self, tenant: Tenant) -> None:
        self._update(TenantRow, tenant.id, m.tenant_values(tenant), "tenant")

    def list_tenants(self, query: TenantQuery, page: PageRequest) -> Page[Tenant]:
        stmt = select(TenantRow).order_by(TenantRow.created_at, TenantRow.id)
        if query.tenant_id is not None:
            stmt = stmt.where(TenantRow.id == query.tenant_id)
        if query.status:
            stmt = stmt.where(TenantRow.status == query.status)
        if query.country:
            stmt = stmt.where(TenantRow.country == query.country)
        if query.plan_id:
            stmt = stmt.where(TenantRow.plan_id == query.plan_id)
        if query.name_contains:
            stmt = stmt.where(TenantRow.name.ilike(_like(query.name_contains), escape="\\"))
        return self._page(stmt, page, m.tenant_from_row)

    def lock_tenant(self, tenant_id: str) -> None:
        """Serialise seat changes of one tenant (row lock on PostgreSQL; SQLite locks the file)."""
        self.session.execute(
            select(TenantRow.id).where(TenantRow.id == tenant_id).with_for_update()
        )

    # -- orders --------------------------------------------------------------------------------
    def add_order(self, order: Order) -> None:
        self._insert(
            OrderRow(
                id=order.id,
                tenant_id=order.tenant_id,
                seat_limit=order.seat_limit,
                valid_from=order.valid_from,
                valid_until=order.valid_until,
                reference=order.reference,
                created_at=order.created_at,
            ),
            f"order {order.id}",
        )

    def get_order(self, order_id: str) -> Order | None:
        row = self.session.get(OrderRow, order_id)
        return m.order_from_row(row) if row else None

    def list_orders(self, tenant_id: str, page: PageRequest) -> Page[Order]:
        stmt = select(OrderRow).where(OrderRow.tenant_id == tenant_id)
        return self._page(stmt.order_by(OrderRow.valid_from, OrderRow.id), page, m.order_from_row)

    def all_orders(self, tenant_id: str) -> list[Order]:
        rows = self.session.scalars(select(OrderRow).where(OrderRow.tenant_id == tenant_id))
        return [m.order_from_row(r) for r in rows]

    # -- users ---------------------------------------------------------------------------------
    def add_user(self, user: User) -> None:
        self._insert(UserRow(**m.user_values(user)), f"a user with e-mail {user.email!r}")

    def get_user(self, user_id: str) -> User | None:
        row = self.session.get(UserRow, user_id)
        return m.user_from_row(row) if row else None

    def get_user_by_email(self, email: str) -> User | None:
        row = self.session.scalar(select(UserRow).where(UserRow.email == email))
        return m.user_from_row(row) if row else None

    def save_user(self, user: User) -> None:
        self._update(UserRow, user.id, m.user_values(user), f"user e-mail {user.email!r}")

    def list_users(self, query: UserQuery, page: PageRequest) -> Page[User]:
        stmt = select(UserRow).order_by(UserRow.created_at, UserRow.id)
        if query.tenant_id is None:
            stmt = stmt.where(UserRow.tenant_id.is_(None))
        else:
            stmt = stmt.where(UserRow.tenant_id == query.tenant_id)
        if query.role:
            stmt = stmt.where(UserRow.role == query.role)
        if query.status:
            stmt = stmt.where(UserRow.status == query.status)
        if query.email_contains:
            stmt = stmt.where(UserRow.email.ilike(_like(query.email_contains), escape="\\"))
        return self._page(stmt, page, m.user_from_row)

    def count_seated_users(self, tenant_id: str) -> int:
        stmt = select(func.count()).where(
            UserRow.tenant_id == tenant_id, UserRow.status == UserStatus.ACTIVE.value
        )
        return self.session.scalar(stmt) or 0

    # -- numbers -------------------------------------------------------------------------------
    def add_number(self, number: PhoneNumber) -> None:
        self._insert(PhoneNumberRow(**m.number_values(number)), f"number {number.e164}")

    def get_number(self, number_id: str) -> PhoneNumber | None:
        row = self.session.get(PhoneNumberRow, number_id)
        return m.number_from_row(row) if row else None

    def get_number_by_e164(self, e164: str) -> PhoneNumber | None:
        row = self.session.scalar(select(PhoneNumberRow).where(PhoneNumberRow.e164 == e164))
        return m.number_from_row(row) if row else None

    def save_number(self, number: PhoneNumber) -> None:
        self._update(PhoneNumberRow, number.id, m.number_values(number), f"number {number.e164}")

    def list_numbers(self, query: NumberQuery, page: PageRequest) -> Page[PhoneNumber]:
        stmt = select(PhoneNumberRow).where(PhoneNumberRow.tenant_id == query.tenant_id)
        if query.status:
            stmt = stmt.where(PhoneNumberRow.status == query.status)
        if query.ownership:
            stmt = stmt.where(PhoneNumberRow.ownership == query.ownership)
        if query.prefix:
            stmt = stmt.where(PhoneNumberRow.e164.startswith(query.prefix, autoescape=True))
        stmt = stmt.order_by(PhoneNumberRow.e164)
        return self._page(stmt, page, m.number_from_row)

    # -- trunks --------------------------------------------------------------------------------
    def add_trunk(self, trunk: Trunk) -> None:
        self._insert(TrunkRow(**m.trunk_values(trunk)), f"trunk {trunk.id}")

    def get_trunk(self, trunk_id: str) -> Trunk | None:
        row = self.session.get(TrunkRow, trunk_id)
        return m.trunk_from_row(row) if row else None

    def save_trunk(self, trunk: Trunk) -> None:
        self._update(TrunkRow, trunk.id, m.trunk_values(trunk), "trunk")

    def delete_trunk(self, trunk_id: str) -> None:
        row = self.session.get(TrunkRow, trunk_id)
        if row is not None:
            self.session.delete(row)
            self.session.flush()

    def list_trunks(self, tenant_id: str, page: PageRequest) -> Page[Trunk]:
        stmt = select(TrunkRow).where(TrunkRow.tenant_id == tenant_id).order_by(TrunkRow.name)
        return self._page(stmt, page, m.trunk_from_row)

    # -- API keys ------------------------------------------------------------------------------
    def add_api_key(self, key: ApiKey, secret_hash: str) -> None:
        row = ApiKeyRow(
            id=key.id,
            user_id=key.user_id,
            name=key.name,
            secret_hash=secret_hash,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )
        self._insert(row, "API key")

    def get_api_key(self, key_id: str) -> ApiKey | None:
        row = self.session.get(ApiKeyRow, key_id)
        return m.api_key_from_row(row) if row else None

    def save_api_key(self, key: ApiKey) -> None:
        self.session.execute(
            update(ApiKeyRow).where(ApiKeyRow.id == key.id).values(revoked_at=key.revoked_at)
        )

    def list_api_keys(self, user_id: str, page: PageRequest) -> Page[ApiKey]:
        stmt = select(ApiKeyRow).where(ApiKeyRow.user_id == user_id).order_by(ApiKeyRow.created_at)
        return self._page(stmt, page, m.api_key_from_row)

    def principal_for_key(self, secret_hash: str) -> tuple[Principal, ApiKey] | None:
        stmt = (
            select(ApiKeyRow, UserRow)
            .join(UserRow, UserRow.id == ApiKeyRow.user_id)
            .where(ApiKeyRow.secret_hash == secret_hash)
        )
        found = self.session.execute(stmt).first()
        if found is None:
            return None
        key_row, user_row = found
        principal = Principal(user_row.id, user_row.tenant_id, UserRole(user_row.role))
        if user_row.status != UserStatus.ACTIVE.value:
            return None
        return principal, m.api_key_from_row(key_row)

    # -- overrides -----------------------------------------------------------------------------
    def add_override(self, override: Override) -> None:
        row = OverrideRow(
            id=override.id,
            tenant_id=override.tenant_id,
            clause_id=override.clause_id,
            subject_type=override.subject_type,
            subject_id=override.subject_id,
            reason=override.reason,
            by=override.by,
            at=override.at,
            expires_at=override.expires_at,
            details=dict(override.details),
        )
        self._insert(row, f"override {override.id}")

    def list_overrides(self, tenant_id: str, page: PageRequest) -> Page[Override]:
        stmt = select(OverrideRow).where(OverrideRow.tenant_id == tenant_id)
        return self._page(stmt.order_by(OverrideRow.at), page, m.override_from_row)

    # -- admission configuration ---------------------------------------------------------------
    def get_rule_policies(self, scope: str, scope_id: str) -> dict[str, RulePolicy]:
        rows = self.session.scalars(
            select(RulePolicyRow).where(
                RulePolicyRow.scope == scope, RulePolicyRow.scope_id == scope_id
            )
        )
        return {
            r.rule: RulePolicy(
                mode=RuleMode(r.mode),
                failure=FailureMode(r.failure),
                allow_destinations=tuple(r.allow_destinations),
                allow_users=frozenset(r.allow_users),
            )
            for r in rows
        }

    def _rule_policy_row(self, scope: str, scope_id: str, rule: str) -> RulePolicyRow | None:
        return self.session.scalar(
            select(RulePolicyRow).where(
                RulePolicyRow.scope == scope,
                RulePolicyRow.scope_id == scope_id,
                RulePolicyRow.rule == rule,
            )
        )

    def set_rule_policy(
        self, scope: str, scope_id: str, rule: str, policy: RulePolicy, at: datetime
    ) -> None:
        row = self._rule_policy_row(scope, scope_id, rule)
        if row is None:
            row = RulePolicyRow(id=new_id("rp"), scope=scope, scope_id=scope_id, rule=rule)
            self.session.add(row)
        row.mode = policy.mode.value
        row.failure = policy.failure.value
        row.allow_destinations = list(policy.allow_destinations)
        row.allow_users = sorted(policy.allow_users)
        row.updated_at = at
        self.session.flush()

    def delete_rule_policy(self, scope: str, scope_id: str, rule: str) -> bool:
        row = self._rule_policy_row(scope, scope_id, rule)
        if row is None:
            return False
        self.session.delete(row)
        self.session.flush()
        return True

    def replace_high_risk_prefixes(self, entries: list[PrefixEntry], at: datetime) -> None:
        self.session.execute(delete(HighRiskPrefixRow))
        if entries:
            self.session.execute(
                insert(HighRiskPrefixRow),
                [{"prefix": e.prefix, "label": e.label, "added_at": at} for e in entries],
            )

    def list_high_risk_prefixes(self) -> list[PrefixEntry]:
        rows = self.session.scalars(select(HighRiskPrefixRow).order_by(HighRiskPrefixRow.prefix))
        return [PrefixEntry(r.prefix, r.label) for r in rows]

    # -- rate decks (adapters/store/rate_decks.py) ---------------------------------------------
    def add_rate_deck(self, deck: RateDeckInfo) -> None:
        rate_decks.add_deck(self.session, deck)

    def get_rate_deck(self, deck_id: str) -> RateDeckInfo | None:
        return rate_decks.get_deck(self.session, deck_id)

    def get_rate_deck_by_name(self, name: str) -> RateDeckInfo | None:
        return rate_decks.get_deck_by_name(self.session, name)

    def list_rate_decks(self, page: PageRequest) -> Page[RateDeckInfo]:
        return rate_decks.list_decks(self.session, page)

    def write_rates(
        self,
        deck_id: str,
        rates: Iterable[Rate],
        *,
        replace: bool,
        at: datetime,
        progress: Callable[[int], None] | None = None,
    ) -> RateDeckInfo:
        return rate_decks.write_rates(
            self.session, deck_id, rates, replace=replace, at=at, progress=progress
        )

    def load_rate_deck(self, deck_id: str) -> RateDeck | None:
        return rate_decks.load_deck(self.session, deck_id)

    def rate_deck_assignments(self) -> list[RateDeckAssignment]:
        return rate_decks.assignments(self.session)

    def set_rate_deck_assignment(self, assignment: RateDeckAssignment) -> None:
        rate_decks.set_assignment(self.session, assignment)

    def delete_rate_deck_assignment(self, scope: str, scope_id: str) -> bool:
        return rate_decks.delete_assignment(self.session, scope, scope_id)

    def rate_deck_changed_since(self, seq: int) -> tuple[int, bool]:
        return rate_decks.changed_since(self.session, seq)

    # -- admission snapshots -------------------------------------------------------------------
    def all_trunks(self) -> list[Trunk]:
        return [m.trunk_from_row(r) for r in self.session.scalars(select(TrunkRow))]

    def user_states(self, tenant_id: str) -> dict[str, UserState]:
        rows = self.session.execute(
            select(UserRow.id, UserRow.status, UserRow.suspension).where(
                UserRow.tenant_id == tenant_id
            )
        )
        return {
            uid: UserState(UserStatus(status), m.suspension_from_json(susp))
            for uid, status, susp in rows
        }

    def number_states(self, tenant_id: str) -> dict[str, NumberState]:
        rows = self.session.scalars(
            select(PhoneNumberRow).where(PhoneNumberRow.tenant_id == tenant_id)
        )
        return {
            r.e164: NumberState(
                r.id,
                NumberStatus(r.status),
                NumberOwnership(r.ownership),
                m.suspension_from_json(r.suspension),
            )
            for r in rows
        }

    def changed_tenants_since(self, seq: int) -> tuple[int, set[str | None]]:
        rows = self.session.execute(
            select(AuditRow.seq, AuditRow.tenant_id).where(AuditRow.seq > seq)
        ).all()
        if not rows:
            return seq, set()
        return max(r[0] for r in rows), {r[1] for r in rows}

    # -- audit ---------------------------------------------------------------------------------
    def append_audit(self, fact: AuditFact, at: datetime) -> AuditEntry:
        """Append after the current head; the head row lock keeps concurrent appends in line."""
        head = self.session.execute(
            select(AuditHeadRow).where(AuditHeadRow.id == 1).with_for_update()
        ).scalar_one()
        entry = seal(head.seq + 1, at, fact, head.hash)
        self.session.add(AuditRow(**m.audit_values(entry)))
        head.seq, head.hash = entry.seq, entry.hash
        self.session.flush()
        return entry

    def list_audit(self, query: AuditQuery, page: PageRequest) -> Page[AuditEntry]:
        stmt = select(AuditRow).order_by(AuditRow.seq.desc())
        if query.tenant_id:
            stmt = stmt.where(AuditRow.tenant_id == query.tenant_id)
        if query.action:
            stmt = stmt.where(AuditRow.action == query.action)
        if query.subject_type:
            stmt = stmt.where(AuditRow.subject_type == query.subject_type)
        if query.subject_id:
            stmt = stmt.where(AuditRow.subject_id == query.subject_id)
        if query.since:
            stmt = stmt.where(AuditRow.at >= query.since)
        if query.until:
            stmt = stmt.where(AuditRow.at < query.until)
        return self._page(stmt, page, m.audit_from_row)

    def iter_audit(self) -> Iterator[AuditEntry]:
        stmt = select(AuditRow).order_by(AuditRow.seq).execution_options(yield_per=1000)
        for row in self.session.scalars(stmt):
            yield m.audit_from_row(row)

    def audit_head(self) -> tuple[int, str]:
        head = self.session.execute(select(AuditHeadRow).where(AuditHeadRow.id == 1)).scalar_one()
        return head.seq, head.hash


class SqlStore:
    """The `Store` port: SQLite by default, PostgreSQL by URL."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str) -> SqlStore:
        """A store on the database at `url` (not migrated: call `migrate` first)."""
        return cls(make_engine(url))

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        """One unit of work: committed when the block ends, rolled back if it raises."""
        with self._sessions() as session, session.begin():
            yield SqlTransaction(session)

    def ping(self) -> None:
        """Raise if the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
