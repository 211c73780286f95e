"""Notifications (FRD-4, LIM-3): audit log entries delivered to webhooks and e-mail addresses.

Events worth telling someone about are already audit log entries (``spend.threshold``,
``case.opened``, suspensions...). A subscription names a channel (a signed webhook or an e-mail
address), the event actions it wants (``spend.threshold``, ``case.*`` or ``*``) and whose
events: one tenant's (a tenant admin subscribes for their own tenant) or every tenant's
(operators only).

The follower reads the audit log after each subscription's own position and hands every
matching entry to the channel's sender, one at a time and in sequence order per subscription;
each subscription's position moves forward in the same transaction that records the delivery.
A crash between sending and recording sends that entry again, so delivery is at least once;
the delivery id stays the same for one entry and one subscription, and receivers drop repeats
by it. A delivery that fails after the sender's retries is recorded as failed and the
subscription moves on, so one dead receiver never holds back the others or its own later
events. A new subscription starts at the end of the log: it receives what happens after it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Final, Protocol
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from callwarden.core.audit import AuditEntry, AuditFact, JSONValue
from callwarden.core.errors import Forbidden, InvalidInput, NotFound
from callwarden.core.model import Principal
from callwarden.core.permissions import Permission
from callwarden.services.governance import authorize, utcnow
from callwarden.services.ids import new_id
from callwarden.services.ports import Page, PageRequest

log = logging.getLogger("callwarden.notifications")

CLAUSES: Final[tuple[str, ...]] = ("FRD-4",)
"""Clauses cited by subscription changes: anomalies are notified promptly."""
TEST_EVENT: Final[str] = "notification.test"
MAX_ACTIONS: Final[int] = 50
_ACTION: Final[re.Pattern[str]] = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$")
_EMAIL: Final[re.Pattern[str]] = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
)
_MAX_URL: Final[int] = 2000


class Channel(StrEnum):
    """How a subscription is told."""

    WEBHOOK = "webhook"
    EMAIL = "email"


class DeliveryStatus(StrEnum):
    """Where a delivery ended."""

    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Subscription:
    """Who is told of which events: `tenant_id` None means every tenant (operators only);
    `last_seq` is the last audit entry the follower has dealt with."""

    id: str
    channel: Channel
    target: str
    actions: tuple[str, ...]
    tenant_id: str | None
    created_by: str
    created_at: datetime
    last_seq: int
    secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event sent (or not) to one subscription; `seq` is None for a test notification."""

    id: str
    subscription_id: str
    seq: int | None
    event: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class Notification:
    """What a sender sends: an audit entry, with the tenant's name and the delivery id."""

    delivery_id: str
    event: str
    seq: int | None
    at: datetime
    tenant_id: str | None
    tenant_name: str | None
    subject_type: str
    subject_id: str
    actor: str
    reason: str | None
    clause_ids: tuple[str, ...]
    details: Mapping[str, JSONValue]

    def payload(self) -> dict[str, JSONValue]:
        """The JSON object a webhook receives."""
        return {
            "id": self.delivery_id,
            "event": self.event,
            "seq": self.seq,
            "at": self.at.isoformat(),
            "tenant": {"id": self.tenant_id, "name": self.tenant_name},
            "subject": {"type": self.subject_type, "id": self.subject_id},
            "actor": self.actor,
            "reason": self.reason,
            "clause_ids": list(self.clause_ids),
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class SendResult:
    """How a sender's attempts at one notification ended."""

    delivered: bool
    attempts: int
    last_error: str | None = None


class Sender(Protocol):
    """A channel: sends one notification to one subscription, retrying as it sees fit, and
    reports the outcome instead of raising for the receiver's faults."""

    async def send(self, subscription: Subscription, notification: Notification) -> SendResult: ...


class NotificationTransaction(Protocol):
    """Reads and writes of subscriptions and deliveries inside one database transaction."""

    def add_subscription(self, subscription: Subscription) -> None: ...
    def get_subscription(self, subscription_id: str) -> Subscription | None: ...
    def list_subscriptions(
        self, tenant_id: str | None, page: PageRequest
    ) -> Page[Subscription]: ...
    def all_subscriptions(self) -> list[Subscription]: ...
    def delete_subscription(self, subscription_id: str) -> bool: ...
    def advance(self, subscription_id: str, seq: int) -> None: ...
    def record_delivery(self, delivery: Delivery) -> None: ...
    def list_deliveries(self, subscription_id: str, page: PageRequest) -> Page[Delivery]: ...
    def audit_after(self, seq: int, limit: int) -> list[AuditEntry]: ...
    def audit_head_seq(self) -> int: ...
    def tenant_names(self, tenant_ids: set[str]) -> dict[str, str]: ...
    def tenant_exists(self, tenant_id: str) -> bool: ...
    def append_audit(self, fact: AuditFact, at: datetime) -> AuditEntry: ...


class NotificationStore(Protocol):
    """Opens notification transactions."""

    def transaction(self) -> AbstractContextManager[NotificationTransaction]: ...


@dataclass(frozen=True, slots=True)
class NewSubscription:
    """What a caller asks for; the service checks it and fills in the rest."""

    channel: Channel
    target: str
    actions: tuple[str, ...]
    tenant_id: str | None


def action_matches(pattern: str, action: str) -> bool:
    """True when an audit action is wanted by a subscription's action pattern: the action
    itself, ``prefix.*`` (every action under the prefix) or ``*`` (everything)."""
    if pattern == "*":
        return True
    if pattern.endswith(".*"):
        return action.startswith(pattern[:-1])
    return action == pattern


def wants(subscription: Subscription, entry: AuditEntry) -> bool:
    """True when the entry is one of the subscription's events: a wanted action, and the
    subscription's tenant (or any tenant for an operator-wide subscription)."""
    if subscription.tenant_id is not None and entry.tenant_id != subscription.tenant_id:
        return False
    return any(action_matches(p, entry.action) for p in subscription.actions)


def delivery_id(subscription_id: str, seq: int) -> str:
    """The delivery id of one audit entry to one subscription: the same on every redelivery,
    so a receiver recognises a repeat."""
    digest = hashlib.sha256(f"{subscription_id}:{seq}".encode()).hexdigest()
    return f"dl_{digest[:16]}"


def notification_of(entry: AuditEntry, tenant_name: str | None, delivery: str) -> Notification:
    """The notification that tells of `entry`."""
    return Notification(
        delivery_id=delivery,
        event=entry.action,
        seq=entry.seq,
        at=entry.at,
        tenant_id=entry.tenant_id,
        tenant_name=tenant_name,
        subject_type=entry.subject_type,
        subject_id=entry.subject_id,
        actor=entry.actor,
        reason=entry.reason,
        clause_ids=entry.clause_ids,
        details=entry.details,
    )


def check_target(channel: Channel, target: str) -> str:
    """The target as stored, or `InvalidInput` naming what is wrong with it: a webhook needs
    an absolute http(s) URL without credentials, an e-mail channel one plain address."""
    if channel is Channel.WEBHOOK:
        if len(target) > _MAX_URL or any(ord(c) < 33 or ord(c) == 127 for c in target):
            raise InvalidInput("the webhook URL is too long or holds spaces", field="target")
        try:
            parts = urlsplit(target)
            host, _ = parts.hostname, parts.port
        except ValueError as exc:
            raise InvalidInput(f"the webhook URL is not valid: {exc}", field="target") from exc
        if parts.scheme not in ("http", "https") or not host:
            raise InvalidInput("the webhook URL must be an http:// or https:// URL", field="target")
        if parts.username is not None or parts.password is not None:
            raise InvalidInput("the webhook URL must not hold credentials", field="target")
        return target
    if not _EMAIL.fullmatch(target) or len(target) > 320:
        raise InvalidInput("the e-mail target must be one plain address", field="target")
    return target


def check_actions(actions: Sequence[str]) -> tuple[str, ...]:
    """The action patterns as stored (duplicates removed, order kept), or `InvalidInput`."""
    if not actions:
        raise InvalidInput("name at least one event action (or '*')", field="actions")
    if len(actions) > MAX_ACTIONS:
        raise InvalidInput(f"at most {MAX_ACTIONS} event actions", field="actions")
    for action in actions:
        if not _ACTION.fullmatch(action):
            raise InvalidInput(
                f"{action!r} is not an event action such as spend.threshold, case.* or *",
                field="actions",
            )
    return tuple(dict.fromkeys(actions))


def _audited_target(channel: Channel, target: str) -> str:
    """The target as the audit log keeps it: a webhook URL's path and query may carry a
    token, so only its scheme and host are kept."""
    if channel is Channel.EMAIL:
        return target
    parts = urlsplit(target)
    return f"{parts.scheme}://{parts.netloc}/..."


class NotificationService:
    """Subscriptions, the delivery log, and the follower that delivers audit entries."""

    def __init__(
        self,
        store: NotificationStore,
        senders: Mapping[Channel, Sender],
        *,
        clock: Callable[[], datetime] = utcnow,
        batch_size: int = 500,
    ) -> None:
        self.store = store
        self.senders = dict(senders)
        self.clock = clock
        self.batch_size = batch_size

    # -- subscriptions -------------------------------------------------------------------------
    def subscribe(self, by: Principal, wanted: NewSubscription) -> Subscription:
        """Create a subscription (audited); the answer is the only place its webhook secret is
        shown. Tenant admins subscribe for their own tenant; only operators for all tenants."""
        authorize(by, Permission.NOTIFICATIONS_WRITE, wanted.tenant_id)
        if wanted.tenant_id is None and not by.is_operator:
            raise Forbidden("only operators subscribe to every tenant's events")
        if wanted.channel not in self.senders:
            raise InvalidInput(
                f"the {wanted.channel.value} channel is not configured on this server",
                field="channel",
            )
        target = check_target(wanted.channel, wanted.target)
        actions = check_actions(wanted.actions)
        now = self.clock()
        with self.store.transaction() as tx:
            if wanted.tenant_id is not None and not tx.tenant_exists(wanted.tenant_id):
                raise NotFound(f"tenant {wanted.tenant_id} not found", field="tenant_id")
            subscription = Subscription(
                id=new_id("ns"),
                channel=wanted.channel,
                target=target,
                actions=actions,
                tenant_id=wanted.tenant_id,
                created_by=by.user_id,
                created_at=now,
                last_seq=0,
                secret=f"whsec_{secrets.token_hex(24)}"
                if wanted.channel is Channel.WEBHOOK
                else None,
            )
            entry = tx.append_audit(
                AuditFact(
                    actor=by.user_id,
                    action="notification.subscribed",
                    subject_type="notification_subscription",
                    subject_id=subscription.id,
                    tenant_id=wanted.tenant_id,
                    clause_ids=CLAUSES,
                    details={
                        "channel": wanted.channel.value,
                        "target": _audited_target(wanted.channel, target),
                        "actions": list(actions),
                    },
                ),
                now,
            )
            subscription = replace(subscription, last_seq=entry.seq)
            tx.add_subscription(subscription)
        return subscription

    def _visible(self, by: Principal, subscription_id: str, permission: Permission) -> Subscription:
        with self.store.transaction() as tx:
            found = tx.get_subscription(subscription_id)
        if found is None or (not by.is_operator and found.tenant_id != by.tenant_id):
            authorize(by, permission, by.tenant_id)
            raise NotFound(f"subscription {subscription_id} not found", field="subscription_id")
        authorize(by, permission, found.tenant_id)
        return found

    def get(self, by: Principal, subscription_id: str) -> Subscription:
        """One subscription (its tenant's admins and operators)."""
        return self._visible(by, subscription_id, Permission.NOTIFICATIONS_READ)

    def subscriptions(
        self, by: Principal, tenant_id: str | None, page: PageRequest
    ) -> Page[Subscription]:
        """A tenant's subscriptions, or (operators, `tenant_id` None) every subscription."""
        authorize(by, Permission.NOTIFICATIONS_READ, tenant_id)
        with self.store.transaction() as tx:
            return tx.list_subscriptions(tenant_id, page)

    def unsubscribe(self, by: Principal, subscription_id: str) -> None:
        """Delete a subscription and its delivery log (audited)."""
        found = self._visible(by, subscription_id, Permission.NOTIFICATIONS_WRITE)
        now = self.clock()
        with self.store.transaction() as tx:
            if not tx.delete_subscription(subscription_id):
                raise NotFound(f"subscription {subscription_id} not found", field="subscription_id")
            tx.append_audit(
                AuditFact(
                    actor=by.user_id,
                    action="notification.unsubscribed",
                    subject_type="notification_subscription",
                    subject_id=subscription_id,
                    tenant_id=found.tenant_id,
                    clause_ids=CLAUSES,
                    details={"channel": found.channel.value},
                ),
                now,
            )

    def deliveries(self, by: Principal, subscription_id: str, page: PageRequest) -> Page[Delivery]:
        """A subscription's delivery log, newest first."""
        self._visible(by, subscription_id, Permission.NOTIFICATIONS_READ)
        with self.store.transaction() as tx:
            return tx.list_deliveries(subscription_id, page)

    async def send_test(self, by: Principal, subscription_id: str) -> Delivery:
        """Send a ``notification.test`` event to the subscription now and log the outcome, so
        a receiver can be checked (signature, address) without waiting for a real event."""
        found = await anyio.to_thread.run_sync(
            self._visible, by, subscription_id, Permission.NOTIFICATIONS_WRITE
        )
        names = await anyio.to_thread.run_sync(self._names, {found.tenant_id} - {None})
        now = self.clock()
        notification = Notification(
            delivery_id=new_id("dl"),
            event=TEST_EVENT,
            seq=None,
            at=now,
            tenant_id=found.tenant_id,
            tenant_name=names.get(found.tenant_id or ""),
            subject_type="notification_subscription",
            subject_id=found.id,
            actor=by.user_id,
            reason="a test notification asked for through the API",
            clause_ids=CLAUSES,
            details={},
        )
        delivery = await self._send(found, notification, created_at=now)
        await anyio.to_thread.run_sync(self._record, delivery, None)
        return delivery

    # -- the follower --------------------------------------------------------------------------
    async def deliver_pending(self) -> int:
        """Bring every subscription up to the end of the audit log, the subscriptions side by
        side; returns how many audit entries were examined."""
        ids = await anyio.to_thread.run_sync(self._subscription_ids)
        examined: list[int] = []

        async def catch_up(subscription_id: str) -> None:
            examined.append(await self._catch_up(subscription_id))

        async with anyio.create_task_group() as tasks:
            for subscription_id in ids:
                tasks.start_soon(catch_up, subscription_id)
        return sum(examined)

    async def run(self, interval_s: float) -> None:
        """Deliver for as long as the process serves. Every `interval_s` seconds each
        subscription that is not busy starts catching up on its own, so a slow or dead
        receiver (retrying with backoff) never delays another subscription's events."""
        busy: set[str] = set()

        async def catch_up(subscription_id: str) -> None:
            try:
                await self._catch_up(subscription_id)
            except Exception:  # a database hiccup must not stop the follower; it logs, retries
                log.exception(
                    "notification delivery failed", extra={"subscription": subscription_id}
                )
            finally:
                busy.discard(subscription_id)

        async with anyio.create_task_group() as tasks:
            while True:
                try:
                    subscriptions = await anyio.to_thread.run_sync(self._subscription_ids)
                except Exception:
                    log.exception("reading notification subscriptions failed")
                    subscriptions = []
                for subscription_id in subscriptions:
                    if subscription_id not in busy:
                        busy.add(subscription_id)
                        tasks.start_soon(catch_up, subscription_id)
                await anyio.sleep(interval_s)

    async def _catch_up(self, subscription_id: str) -> int:
        """Deliver one subscription's pending entries, batch after batch, until none is left;
        returns how many entries were examined."""
        examined = 0
        while True:
            subscription, entries, names = await anyio.to_thread.run_sync(
                self._pending, subscription_id
            )
            if subscription is None or not entries:
                return examined
            await self._follow(subscription, entries, names)
            examined += len(entries)
            if len(entries) < self.batch_size:
                return examined

    def _subscription_ids(self) -> list[str]:
        with self.store.transaction() as tx:
            return [s.id for s in tx.all_subscriptions()]

    def _pending(
        self, subscription_id: str
    ) -> tuple[Subscription | None, list[AuditEntry], dict[str, str]]:
        with self.store.transaction() as tx:
            subscription = tx.get_subscription(subscription_id)
            if subscription is None:
                return None, [], {}
            entries = tx.audit_after(subscription.last_seq, self.batch_size)
            tenants = {e.tenant_id for e in entries if e.tenant_id is not None}
            return subscription, entries, tx.tenant_names(tenants)

    def _names(self, tenant_ids: set[str | None]) -> dict[str, str]:
        with self.store.transaction() as tx:
            return tx.tenant_names({t for t in tenant_ids if t is not None})

    async def _follow(
        self, subscription: Subscription, entries: list[AuditEntry], names: dict[str, str]
    ) -> None:
        """Deliver the entries this subscription wants, in order, moving its position."""
        position = subscription.last_seq
        for entry in entries:
            if entry.seq <= position:
                continue
            if wants(subscription, entry):
                notification = notification_of(
                    entry,
                    names.get(entry.tenant_id or ""),
                    delivery_id(subscription.id, entry.seq),
                )
                delivery = await self._send(subscription, notification, created_at=self.clock())
                await anyio.to_thread.run_sync(self._record, delivery, entry.seq)
            position = entry.seq
        if position > subscription.last_seq:
            await anyio.to_thread.run_sync(self._advance, subscription.id, position)

    async def _send(
        self, subscription: Subscription, notification: Notification, *, created_at: datetime
    ) -> Delivery:
        sender = self.senders.get(subscription.channel)
        if sender is None:
            result = SendResult(
                False, 0, f"the {subscription.channel.value} channel is not configured"
            )
        else:
            try:
                result = await sender.send(subscription, notification)
            except Exception as exc:  # a sender's own fault is logged, not lost
                log.exception("notification sender failed")
                result = SendResult(False, 1, f"{type(exc).__name__}: {exc}")
        if not result.delivered:
            log.warning(
                "notification not delivered",
                extra={"subscription": subscription.id, "error": result.last_error},
            )
        return Delivery(
            id=notification.delivery_id,
            subscription_id=subscription.id,
            seq=notification.seq,
            event=notification.event,
            status=DeliveryStatus.DELIVERED if result.delivered else DeliveryStatus.FAILED,
            attempts=result.attempts,
            last_error=result.last_error,
            created_at=created_at,
            finished_at=self.clock(),
        )

    def _record(self, delivery: Delivery, seq: int | None) -> None:
        with self.store.transaction() as tx:
            if tx.get_subscription(delivery.subscription_id) is None:
                return  # deleted while the delivery was under way: nothing to log it under
            tx.record_delivery(delivery)
            if seq is not None:
                tx.advance(delivery.subscription_id, seq)

    def _advance(self, subscription_id: str, seq: int) -> None:
        with self.store.transaction() as tx:
            tx.advance(subscription_id, seq)
