"""The composition root: builds the store, services and counters from one `Settings`."""

from __future__ import annotations

from dataclasses import dataclass

from callwarden.adapters.store.database import migrate
from callwarden.adapters.store.sql import SqlStore
from callwarden.services.access import AccessService
from callwarden.services.audit import AuditService
from callwarden.services.governance import GovernanceService
from callwarden.settings import Settings


@dataclass
class Platform:
    """Everything a running callwarden process holds, wired together once."""

    settings: Settings
    store: SqlStore
    governance: GovernanceService
    access: AccessService
    audit: AuditService

    @classmethod
    def build(cls, settings: Settings, *, migrate_schema: bool = True) -> Platform:
        """Open the store (migrating it unless told not to) and wire the services."""
        store = SqlStore.from_url(settings.database_url)
        if migrate_schema:
            migrate(store.engine)
        governance = GovernanceService(store)
        access = AccessService(governance, cache_ttl_s=settings.api_key_cache_ttl_s)
        return cls(settings, store, governance, access, AuditService(store))

    def close(self) -> None:
        """Release connections."""
        self.store.dispose()
