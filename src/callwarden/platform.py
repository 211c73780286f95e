"""The composition root: builds the store, services and counters from one `Settings`."""

from __future__ import annotations

from dataclasses import dataclass

from callwarden.adapters.counters import counters_from_url
from callwarden.adapters.store.database import migrate
from callwarden.adapters.store.sql import SqlStore
from callwarden.core.counters import Counters
from callwarden.core.numbering import default_numbering_plan
from callwarden.services.access import AccessService
from callwarden.services.admission import AdmissionService
from callwarden.services.admission_config import AdmissionConfigService
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
    counters: Counters
    admission: AdmissionService
    admission_config: AdmissionConfigService

    @classmethod
    def build(cls, settings: Settings, *, migrate_schema: bool = True) -> Platform:
        """Open the store (migrating it unless told not to) and wire the services."""
        store = SqlStore.from_url(settings.database_url)
        if migrate_schema:
            migrate(store.engine)
        governance = GovernanceService(store)
        access = AccessService(governance, cache_ttl_s=settings.api_key_cache_ttl_s)
        counters = counters_from_url(settings.counters_url)
        admission = AdmissionService(
            store, counters, default_numbering_plan(), lease_grace_s=settings.lease_grace_s
        )
        governance.listeners.append(admission)
        return cls(
            settings,
            store,
            governance,
            access,
            AuditService(store),
            counters,
            admission,
            AdmissionConfigService(governance),
        )

    def close(self) -> None:
        """Release database connections (counters are closed by `aclose`)."""
        self.store.dispose()

    async def aclose(self) -> None:
        """Release the counters' connections and the database's."""
        await self.counters.close()
        self.close()
