"""/v1/.../notifications: subscriptions to audit events by signed webhook or e-mail (FRD-4).

A tenant admin subscribes for their own tenant under ``/v1/tenants/{tenant_id}``; an operator
may also subscribe to every tenant's events at ``/v1/notifications/subscriptions``. A webhook's
signing secret is in the answer that creates it, and nowhere else afterwards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field, StringConstraints

from callwarden.adapters.api.auth import Caller, PlatformDep
from callwarden.adapters.api.errors import ERROR_RESPONSES
from callwarden.adapters.api.schemas import (
    NO_CONTROL,
    Limit,
    Model,
    Offset,
    PageOut,
    TenantId,
    page_of,
)
from callwarden.services.notifications import (
    Channel,
    Delivery,
    NewSubscription,
    Subscription,
)
from callwarden.services.ports import PageRequest

router = APIRouter(tags=["notifications"], responses=ERROR_RESPONSES)

SubscriptionId = Annotated[
    str, Path(pattern=r"^ns_[0-9a-f]{16}$", description="A notification subscription id")
]
Target = Annotated[str, StringConstraints(min_length=3, max_length=2000, pattern=NO_CONTROL)]
ActionPattern = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=200, pattern=r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$"
    ),
]


class SubscriptionIn(Model):
    """A new subscription: the channel, where to send (an http(s) URL for a webhook, an
    address for e-mail) and the event actions wanted (``spend.threshold``, ``case.*``, ``*``)."""

    channel: Literal["webhook", "email"]
    target: Target
    actions: Annotated[list[ActionPattern], Field(min_length=1, max_length=50)]


class SubscriptionOut(BaseModel):
    id: str
    channel: str
    target: str
    actions: list[str]
    tenant_id: str | None
    created_by: str
    created_at: datetime
    last_seq: int

    @classmethod
    def of(cls, s: Subscription) -> SubscriptionOut:
        return cls(
            id=s.id,
            channel=s.channel.value,
            target=s.target,
            actions=list(s.actions),
            tenant_id=s.tenant_id,
            created_by=s.created_by,
            created_at=s.created_at,
            last_seq=s.last_seq,
        )


class CreatedSubscriptionOut(SubscriptionOut):
    """A new subscription with its webhook signing secret (shown only here; None for e-mail)."""

    secret: str | None

    @classmethod
    def issued(cls, s: Subscription) -> CreatedSubscriptionOut:
        return cls(**SubscriptionOut.of(s).model_dump(), secret=s.secret)


class DeliveryOut(BaseModel):
    id: str
    subscription_id: str
    seq: int | None
    event: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    finished_at: datetime

    @classmethod
    def of(cls, d: Delivery) -> DeliveryOut:
        return cls(
            id=d.id,
            subscription_id=d.subscription_id,
            seq=d.seq,
            event=d.event,
            status=d.status.value,
            attempts=d.attempts,
            last_error=d.last_error,
            created_at=d.created_at,
            finished_at=d.finished_at,
        )


def _new(body: SubscriptionIn, tenant_id: str | None) -> NewSubscription:
    return NewSubscription(Channel(body.channel), body.target, tuple(body.actions), tenant_id)


@router.post("/v1/tenants/{tenant_id}/notifications/subscriptions", status_code=201)
def subscribe_tenant(
    tenant_id: TenantId, body: SubscriptionIn, by: Caller, p: PlatformDep
) -> CreatedSubscriptionOut:
    """Subscribe to one tenant's events (its admins and operators)."""
    return CreatedSubscriptionOut.issued(p.notifications.subscribe(by, _new(body, tenant_id)))


@router.get("/v1/tenants/{tenant_id}/notifications/subscriptions")
def list_tenant_subscriptions(
    tenant_id: TenantId, by: Caller, p: PlatformDep, limit: Limit = 50, offset: Offset = 0
) -> PageOut[SubscriptionOut]:
    """A tenant's subscriptions, oldest first."""
    page = p.notifications.subscriptions(by, tenant_id, PageRequest(limit, offset))
    return page_of(page, [SubscriptionOut.of(s) for s in page.items])


@router.post("/v1/notifications/subscriptions", status_code=201)
def subscribe_all(body: SubscriptionIn, by: Caller, p: PlatformDep) -> CreatedSubscriptionOut:
    """Subscribe to every tenant's events, and to platform-wide ones (operators)."""
    return CreatedSubscriptionOut.issued(p.notifications.subscribe(by, _new(body, None)))


@router.get("/v1/notifications/subscriptions")
def list_subscriptions(
    by: Caller, p: PlatformDep, limit: Limit = 50, offset: Offset = 0
) -> PageOut[SubscriptionOut]:
    """Every subscription for an operator; the caller's own tenant's for anyone else."""
    tenant_id = None if by.is_operator else by.tenant_id
    page = p.notifications.subscriptions(by, tenant_id, PageRequest(limit, offset))
    return page_of(page, [SubscriptionOut.of(s) for s in page.items])


@router.get("/v1/notifications/subscriptions/{subscription_id}")
def get_subscription(
    subscription_id: SubscriptionId, by: Caller, p: PlatformDep
) -> SubscriptionOut:
    """One subscription (without its secret)."""
    return SubscriptionOut.of(p.notifications.get(by, subscription_id))


@router.delete("/v1/notifications/subscriptions/{subscription_id}", status_code=204)
def delete_subscription(subscription_id: SubscriptionId, by: Caller, p: PlatformDep) -> Response:
    """Stop a subscription and drop its delivery log (audited)."""
    p.notifications.unsubscribe(by, subscription_id)
    return Response(status_code=204)


@router.get("/v1/notifications/subscriptions/{subscription_id}/deliveries")
def list_deliveries(
    subscription_id: SubscriptionId,
    by: Caller,
    p: PlatformDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PageOut[DeliveryOut]:
    """The subscription's delivery log, newest first: delivered or failed, attempts, error."""
    page = p.notifications.deliveries(by, subscription_id, PageRequest(limit, offset))
    return page_of(page, [DeliveryOut.of(d) for d in page.items])


@router.post("/v1/notifications/subscriptions/{subscription_id}/test")
async def send_test(subscription_id: SubscriptionId, by: Caller, p: PlatformDep) -> DeliveryOut:
    """Send a ``notification.test`` event now and answer how the delivery went."""
    return DeliveryOut.of(await p.notifications.send_test(by, subscription_id))
