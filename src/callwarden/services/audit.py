"""Reading and verifying the audit log (GOV-1)."""

from __future__ import annotations

from collections.abc import Iterator

from callwarden.core.audit import AuditEntry, ChainBreak, verify_chain
from callwarden.core.model import Principal
from callwarden.core.permissions import Permission
from callwarden.services.governance import authorize
from callwarden.services.ports import AuditQuery, Page, PageRequest, Store


class AuditService:
    """The audit log as operators and auditors read it."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def list(self, by: Principal, query: AuditQuery, page: PageRequest) -> Page[AuditEntry]:
        """Entries, newest first; a tenant's users see only their tenant's entries."""
        authorize(by, Permission.AUDIT_READ, query.tenant_id if not by.is_operator else None)
        with self.store.transaction() as tx:
            return tx.list_audit(query, page)

    def verify(self) -> tuple[int, ChainBreak | None]:
        """Walk the whole chain; return how many entries it holds and the first broken link."""
        with self.store.transaction() as tx:
            head = tx.audit_head()
            count = 0

            def counted() -> Iterator[AuditEntry]:
                nonlocal count
                for entry in tx.iter_audit():
                    count += 1
                    yield entry

            broken = verify_chain(counted(), head=head)
        return count, broken
