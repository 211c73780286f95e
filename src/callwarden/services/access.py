"""API keys: issuing, revoking and recognising them.

A key is `cw_<key id>_<secret>` with 256 bits of randomness. Only its SHA-256 is stored: with
that much entropy a slow password hash adds nothing, and the admission hot path cannot afford one.
Recognised keys are cached briefly in process; revocation and user changes clear the cache.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, replace

from callwarden.core.errors import Forbidden, NotFound
from callwarden.core.model import ApiKey, Principal
from callwarden.core.permissions import Permission
from callwarden.services.governance import GovernanceService, authorize
from callwarden.services.ids import new_id
from callwarden.services.ports import Page, PageRequest


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: the secret is shown once and never stored."""

    key: ApiKey
    secret: str


def hash_secret(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class AccessService:
    """Issues and recognises API keys for users."""

    def __init__(self, governance: GovernanceService, cache_ttl_s: float = 5.0) -> None:
        self.governance = governance
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()
        governance.listeners.append(self)

    # ChangeListener: user and key changes may revoke access, so forget what we recognised.
    def tenant_changed(self, tenant_id: str) -> None:
        """Forget cached keys (a user of this tenant may have changed)."""
        self.key_changed()

    def all_changed(self) -> None:
        """Forget cached keys."""
        self.key_changed()

    def key_changed(self) -> None:
        """Forget every cached key."""
        with self._lock:
            self._cache.clear()

    def issue(self, by: Principal, tenant_id: str | None, user_id: str, name: str) -> IssuedKey:
        """Issue a key for a user; tenant admins may issue keys for their own tenant's users."""
        authorize(by, Permission.KEYS_WRITE, tenant_id)
        store, clock = self.governance.store, self.governance.clock
        key_id = new_id("ak")
        secret = f"cw_{key_id.removeprefix('ak_')}_{secrets.token_urlsafe(32)}"
        key = ApiKey(id=key_id, user_id=user_id, name=name, created_at=clock())
        with store.transaction() as tx:
            user = tx.get_user(user_id)
            if user is None or user.tenant_id != tenant_id:
                raise NotFound(f"user {user_id} not found", field="user_id")
            if user.role.value == "operator" and not by.is_operator:
                raise Forbidden("only operators issue operator keys")
            tx.add_api_key(key, hash_secret(secret))
            self.governance._audit(
                tx, by, "api_key.issued", "api_key", key_id, tenant_id, details={"user_id": user_id}
            )
        return IssuedKey(key, secret)

    def list(
        self, by: Principal, tenant_id: str | None, user_id: str, page: PageRequest
    ) -> Page[ApiKey]:
        """A user's keys (public parts only)."""
        authorize(by, Permission.KEYS_WRITE, tenant_id)
        with self.governance.store.transaction() as tx:
            user = tx.get_user(user_id)
            if user is None or user.tenant_id != tenant_id:
                raise NotFound(f"user {user_id} not found", field="user_id")
            return tx.list_api_keys(user_id, page)

    def revoke(self, by: Principal, tenant_id: str | None, user_id: str, key_id: str) -> ApiKey:
        """Revoke a key at once."""
        authorize(by, Permission.KEYS_WRITE, tenant_id)
        store, clock = self.governance.store, self.governance.clock
        with store.transaction() as tx:
            user = tx.get_user(user_id)
            key = tx.get_api_key(key_id)
            if user is None or user.tenant_id != tenant_id or key is None or key.user_id != user_id:
                raise NotFound(f"API key {key_id} not found", field="key_id")
            if key.revoked_at is None:
                key = replace(key, revoked_at=clock())
                tx.save_api_key(key)
                self.governance._audit(tx, by, "api_key.revoked", "api_key", key_id, tenant_id)
        self.key_changed()
        return key

    def cached(self, secret: str) -> Principal | None:
        """The principal behind a key recognised in the last `cache_ttl_s`, without touching the
        store (None when it is not cached: call `recognise`)."""
        found = self._cache.get(hash_secret(secret))
        if found is not None and found[0] > time.monotonic():
            return found[1]
        return None

    def recognise(self, secret: str) -> Principal | None:
        """The principal behind a presented key, or None if it is unknown, revoked or inactive."""
        digest = hash_secret(secret)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self.governance.store.transaction() as tx:
            found = tx.principal_for_key(digest)
        if found is None or found[1].revoked_at is not None:
            return None
        principal = found[0]
        with self._lock:
            self._cache[digest] = (now + self.cache_ttl_s, principal)
        return principal
