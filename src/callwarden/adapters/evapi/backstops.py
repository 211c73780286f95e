"""Kamailio's backstop tables, kept current from callwarden's state over JSON-RPC.

When callwarden cannot be asked, integrations/kamailio/kamailio.cfg decides from three hash
tables (module htable) that callwarden fills:

- `cw_suspended`: tenant id -> the clause ids of its suspension (GOV-2); present means the
  tenant is suspended or terminated;
- `cw_limits`: `<tenant id>::calls`, `::cps` and `::secs` -> the plan's concurrent calls per
  tenant (LIM-2), attempts per second (LIM-5) and maximum call duration (LIM-3); 0 is no limit;
- `cw_sources`: the address of each single-address trunk -> its tenant id, so Kamailio can
  tell the tenant of a call by its source address on its own.

`BackstopSync` is a change listener: a tenant's entries are rewritten as soon as a change to it
commits here, and every table is reconciled in full at start, whenever Kamailio's evapi
connection is (re)established (a restarted Kamailio has empty tables) and every
`interval_s` (changes made through other callwarden instances).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from callwarden.adapters.evapi.jsonrpc import KamailioRpc, KamailioRpcError
from callwarden.core.model import PlanLimits, Tenant, TenantStatus, Trunk
from callwarden.services.ports import Page, PageRequest, Store, TenantQuery

log = logging.getLogger("callwarden.evapi.backstops")

SUSPENDED = "cw_suspended"
LIMITS = "cw_limits"
SOURCES = "cw_sources"
TABLES = (SUSPENDED, LIMITS, SOURCES)

_PAGE = 1000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Entry:
    """One item of a Kamailio hash table: `$sht(table=>key)` holds `value`."""

    table: str
    key: str
    value: str | int

    @property
    def tenant_id(self) -> str:
        """The tenant the entry is about."""
        if self.table == SOURCES:
            return str(self.value)
        return self.key.split("::", 1)[0]


def tenant_entries(
    tenant: Tenant, limits: PlanLimits | None, trunks: Iterable[Trunk]
) -> set[Entry]:
    """Every backstop entry for one tenant, from its standing, its plan's limits and its
    trunks. A tenant without a plan gets no limits (Kamailio's defaults apply)."""
    entries: set[Entry] = set()
    if tenant.status is not TenantStatus.ACTIVE:
        clauses = tenant.suspension.clause_ids if tenant.suspension else ()
        entries.add(Entry(SUSPENDED, tenant.id, ",".join(dict.fromkeys((*clauses, "GOV-2")))))
    if limits is not None:
        for suffix, value in (
            ("calls", limits.concurrent_calls_per_tenant),
            ("cps", limits.attempts_per_second),
            ("secs", limits.max_call_duration_s),
        ):
            entries.add(Entry(LIMITS, f"{tenant.id}::{suffix}", value or 0))
    for trunk in trunks:
        if trunk.tenant_id != tenant.id:
            continue
        for address in trunk.source_addresses:
            network = ipaddress.ip_network(address, strict=False)
            if network.num_addresses == 1:
                entries.add(Entry(SOURCES, str(network.network_address), tenant.id))
    return entries


def parse_dump(table: str, result: object) -> set[Entry]:
    """The entries of an `htable.dump` answer (a list of hash slots, each with its items)."""
    entries: set[Entry] = set()
    if not isinstance(result, list):
        return entries
    for slot in result:
        items = slot.get("slot") if isinstance(slot, dict) else None
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            name, value = item.get("name"), item.get("value")
            if isinstance(name, str) and isinstance(value, str | int):
                entries.add(Entry(table, name, value))
    return entries


class BackstopSync:
    """Keeps Kamailio's backstop tables equal to what callwarden's store says."""

    def __init__(self, store: Store, rpc: KamailioRpc, *, interval_s: float = 60.0) -> None:
        self.store = store
        self.rpc = rpc
        self.interval_s = interval_s
        self._held: dict[tuple[str, str], str | int] = {}
        self._pending: set[str] = set()
        self._full = True
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self.synced = 0
        """Completed full reconciliations (for health checks and tests)."""

    # -- change listener (called from any thread, after the change commits) --------------------
    def tenant_changed(self, tenant_id: str) -> None:
        """Rewrite this tenant's entries soon."""
        with self._lock:
            self._pending.add(tenant_id)
        self._poke()

    def all_changed(self) -> None:
        """Reconcile every table soon."""
        self.request_full()

    def key_changed(self) -> None:
        """API keys are not part of the backstops."""

    def request_full(self) -> None:
        """Reconcile every table soon (e.g. Kamailio has just (re)connected)."""
        with self._lock:
            self._full = True
        self._poke()

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    # -- the sync loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Apply changes as they come and reconcile in full every `interval_s`, forever."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            with self._lock:
                full, pending = self._full, self._pending
                self._full, self._pending = False, set()
            try:
                if full:
                    await self.full_sync()
                else:
                    for tenant_id in sorted(pending):
                        await self.sync_tenant(tenant_id)
            except KamailioRpcError as exc:
                log.warning("Kamailio backstop tables not updated", extra={"error": str(exc)})
                with self._lock:
                    self._full = True
            except Exception:  # e.g. the store is unreachable: retried, never fatal to evapi
                log.exception("Kamailio backstop tables not updated")
                with self._lock:
                    self._full = True
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            except TimeoutError:
                with self._lock:
                    self._full = True
            self._wake.clear()

    async def full_sync(self) -> int:
        """Make every table equal to the store; returns the number of entries written or
        removed."""
        wanted = await asyncio.to_thread(self._all_entries)
        held: set[Entry] = set()
        for table in TABLES:
            held |= parse_dump(table, await self.rpc.call("htable.dump", table))
        self._held = {(e.table, e.key): e.value for e in held}
        changes = await self._apply(wanted, held)
        self.synced += 1
        return changes

    async def sync_tenant(self, tenant_id: str) -> int:
        """Make one tenant's entries equal to the store; returns the number of changes."""
        wanted = await asyncio.to_thread(self._tenant_entries, tenant_id)
        held = {
            Entry(table, key, value)
            for (table, key), value in self._held.items()
            if Entry(table, key, value).tenant_id == tenant_id
        }
        return await self._apply(wanted, held)

    async def _apply(self, wanted: set[Entry], held: set[Entry]) -> int:
        changes = 0
        wanted_keys = {(e.table, e.key) for e in wanted}
        for entry in held:
            if (entry.table, entry.key) not in wanted_keys:
                try:
                    await self.rpc.call("htable.delete", entry.table, entry.key)
                except KamailioRpcError as exc:
                    if "not found" not in str(exc).lower():
                        raise
                self._held.pop((entry.table, entry.key), None)
                changes += 1
        for entry in wanted - held:
            method = "htable.seti" if isinstance(entry.value, int) else "htable.sets"
            await self.rpc.call(method, entry.table, entry.key, entry.value)
            self._held[(entry.table, entry.key)] = entry.value
            changes += 1
        if changes:
            log.info("Kamailio backstop tables updated", extra={"changes": changes})
        return changes

    # -- reading the store (in a worker thread) --------------------------------------------------
    def _all_entries(self) -> set[Entry]:
        with self.store.transaction() as tx:
            plans = {plan.id: plan for plan in _every(tx.list_plans)}
            tenants = _every(lambda page: tx.list_tenants(TenantQuery(), page))
            trunks = tx.all_trunks()
        by_tenant: dict[str, list[Trunk]] = {}
        for trunk in trunks:
            by_tenant.setdefault(trunk.tenant_id, []).append(trunk)
        entries: set[Entry] = set()
        for tenant in tenants:
            plan = plans.get(tenant.plan_id)
            limits = plan.limits if plan else None
            entries |= tenant_entries(tenant, limits, by_tenant.get(tenant.id, ()))
        return entries

    def _tenant_entries(self, tenant_id: str) -> set[Entry]:
        with self.store.transaction() as tx:
            tenant = tx.get_tenant(tenant_id)
            if tenant is None:
                return set()
            plan = tx.get_plan(tenant.plan_id)
            trunks = tx.list_trunks(tenant_id, PageRequest(limit=_PAGE)).items
        return tenant_entries(tenant, plan.limits if plan else None, trunks)


def _every(fetch: Callable[[PageRequest], Page[T]]) -> list[T]:
    """Every item of a paged list."""
    items: list[T] = []
    offset: int | None = 0
    while offset is not None:
        page = fetch(PageRequest(limit=_PAGE, offset=offset))
        items.extend(page.items)
        offset = page.next_offset
    return items
