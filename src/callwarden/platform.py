"""The composition root: builds the store, services and counters from one `Settings`."""

from __future__ import annotations

from dataclasses import dataclass

from callwarden.adapters.counters import counters_from_url
from callwarden.adapters.notify.channels import channels_from_settings
from callwarden.adapters.store.cases import SqlCaseStore
from callwarden.adapters.store.database import migrate
from callwarden.adapters.store.notifications import SqlNotificationStore
from callwarden.adapters.store.sql import SqlStore
from callwarden.adapters.store.usage import SqlUsageStore
from callwarden.adapters.stream import stream_from_url
from callwarden.core.counters import Counters
from callwarden.core.numbering import default_numbering_plan
from callwarden.services.access import AccessService
from callwarden.services.admission import AdmissionService
from callwarden.services.admission_config import AdmissionConfigService
from callwarden.services.audit import AuditService
from callwarden.services.governance import GovernanceService
from callwarden.services.notifications import NotificationService
from callwarden.services.rating import RatingService
from callwarden.services.spend import MonthlySpend
from callwarden.services.stream import UsageStream
from callwarden.services.surveillance import Surveillance
from callwarden.services.usage import UsageIngestion
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
    stream: UsageStream
    rating: RatingService
    usage: UsageIngestion
    spend: MonthlySpend
    notifications: NotificationService
    surveillance: Surveillance

    @classmethod
    def build(cls, settings: Settings, *, migrate_schema: bool = True) -> Platform:
        """Open the store (migrating it unless told not to) and wire the services."""
        store = SqlStore.from_url(settings.database_url)
        if migrate_schema:
            migrate(store.engine)
        governance = GovernanceService(store)
        access = AccessService(governance, cache_ttl_s=settings.api_key_cache_ttl_s)
        counters = counters_from_url(settings.counters_url)
        rating = RatingService(governance)
        spend = MonthlySpend(counters, rating, store, lease_grace_s=settings.lease_grace_s)
        admission = AdmissionService(
            store,
            counters,
            default_numbering_plan(),
            lease_grace_s=settings.lease_grace_s,
            spend=spend,
        )
        governance.listeners.append(admission)
        stream = stream_from_url(
            settings.nats_url,
            stream_name=settings.nats_stream,
            subject_prefix=settings.nats_subject_prefix,
            max_deliver=settings.nats_max_deliver,
            ack_wait_s=settings.nats_ack_wait_s,
            max_age_s=settings.nats_max_age_s,
            batch_size=settings.nats_batch_size,
        )
        admission_config = AdmissionConfigService(governance)
        surveillance = Surveillance(
            governance,
            admission_config,
            rating,
            stream,
            SqlCaseStore(store.engine),
            admission.numbering,
            expiry_interval_s=settings.surveillance_expiry_interval_s,
        )
        return cls(
            settings,
            store,
            governance,
            access,
            AuditService(store),
            counters,
            admission,
            admission_config,
            stream,
            rating=rating,
            spend=spend,
            surveillance=surveillance,
            notifications=NotificationService(
                SqlNotificationStore(store.engine), channels_from_settings(settings)
            ),
            usage=UsageIngestion(
                SqlUsageStore(store.engine),
                publisher=stream,
                default_tz=settings.usage_default_tz,
                batch_size=settings.usage_batch_size,
                retention_days=settings.usage_retention_days,
            ),
        )

    def close(self) -> None:
        """Release database connections (counters are closed by `aclose`)."""
        self.store.dispose()

    async def aclose(self) -> None:
        """Stop the usage stream, release the counters' connections and the database's."""
        await self.stream.close()
        await self.counters.close()
        self.close()
