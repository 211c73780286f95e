"""The notification service on both databases: subscriptions, tenant filters, the follower
delivering audit entries to a real local webhook receiver once and in order."""

from __future__ import annotations

import json
import random

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update
from tests.adapters.notify.notify_receivers import http_receiver
from tests.world import build_world

from callwarden.adapters.notify.webhook import Backoff, WebhookSender, verify_signature
from callwarden.adapters.store.notifications import (
    NotificationSubscriptionRow,
    SqlNotificationStore,
)
from callwarden.core.admission.attempt import CallAttempt, Direction
from callwarden.core.audit import AuditFact
from callwarden.core.errors import Forbidden, InvalidInput, NotFound
from callwarden.core.model import Billing, PlanLimits, Principal, UserRole
from callwarden.core.model import Channel as PlanChannel
from callwarden.platform import Platform
from callwarden.services.admission import CallEvent
from callwarden.services.governance import SYSTEM, utcnow
from callwarden.services.notifications import (
    Channel,
    DeliveryStatus,
    NewSubscription,
    NotificationService,
    action_matches,
    delivery_id,
)
from callwarden.services.ports import AuditQuery, PageRequest
from callwarden.settings import Settings

pytestmark = pytest.mark.anyio


async def _no_pause(_: float) -> None:
    return None


def _service(platform: Platform, max_attempts: int = 3) -> NotificationService:
    sender = WebhookSender(
        timeout_s=5.0,
        max_attempts=max_attempts,
        backoff=Backoff(base_s=0.01, max_s=0.01),
        sleep=_no_pause,
        rng=random.Random(1),
    )
    return NotificationService(
        SqlNotificationStore(platform.store.engine), {Channel.WEBHOOK: sender}
    )


def _tenants(platform: Platform) -> list[str]:
    gov = platform.governance
    plan = gov.create_plan(
        SYSTEM,
        name="Standard",
        billing=Billing.METERED,
        channels=[PlanChannel.VOICE],
        currency="EUR",
        limits=PlanLimits(),
    )
    return [
        gov.create_tenant(
            SYSTEM, name=f"Tenant {i}", country="GB", timezone="Europe/London", plan_id=plan.id
        ).id
        for i in range(2)
    ]


def _admin(tenant_id: str) -> Principal:
    return Principal(user_id="us_00000000000000ad", tenant_id=tenant_id, role=UserRole.TENANT_ADMIN)


def _threshold(
    platform: Platform, tenant_id: str, mark: str, action: str = "spend.threshold"
) -> int:
    """Record an alert as the spend gate does; returns its sequence number."""
    with platform.store.transaction() as tx:
        entry = tx.append_audit(
            AuditFact(
                actor="system",
                action=action,
                subject_type="tenant",
                subject_id=tenant_id,
                tenant_id=tenant_id,
                reason=f"the month's charges reached {mark}",
                clause_ids=("LIM-1", "LIM-3"),
                details={"month": "2026-11", "mark": mark, "currency": "EUR"},
            ),
            utcnow(),
        )
    return entry.seq


def _subscribe(
    service: NotificationService,
    url: str,
    tenant_id: str | None,
    actions: tuple[str, ...] = ("spend.threshold",),
    by: Principal = SYSTEM,
) -> str:
    return service.subscribe(by, NewSubscription(Channel.WEBHOOK, url, actions, tenant_id)).id


async def test_a_spend_alert_reaches_a_subscribed_webhook_once_and_in_order(
    platform: Platform,
) -> None:
    a, _ = _tenants(platform)
    service = _service(platform)
    with http_receiver() as receiver:
        created = service.subscribe(
            _admin(a), NewSubscription(Channel.WEBHOOK, receiver.url, ("spend.threshold",), a)
        )
        seqs = [_threshold(platform, a, m) for m in ("soft:50", "soft:80", "hard:50")]
        _threshold(platform, a, "hard:80", action="tenant.renamed")
        await service.deliver_pending()
        await service.deliver_pending()
    bodies = [json.loads(r.body) for r in receiver.received]
    assert [b["seq"] for b in bodies] == seqs
    assert [b["details"]["mark"] for b in bodies] == ["soft:50", "soft:80", "hard:50"]
    assert {b["tenant"]["name"] for b in bodies} == {"Tenant 0"}
    for request in receiver.received:
        assert created.secret is not None
        assert verify_signature(
            created.secret, request.headers["x-callwarden-signature"], request.body
        )
    log = service.deliveries(SYSTEM, created.id, PageRequest())
    assert log.total == 3
    assert {d.status for d in log.items} == {DeliveryStatus.DELIVERED}
    assert {d.id for d in log.items} == {delivery_id(created.id, s) for s in seqs}


async def test_a_tenant_subscription_receives_only_its_tenants_events(platform: Platform) -> None:
    a, b = _tenants(platform)
    service = _service(platform)
    with http_receiver() as mine, http_receiver() as everyone:
        _subscribe(service, mine.url, a)
        _subscribe(service, everyone.url, None)
        _threshold(platform, b, "hard:50")
        _threshold(platform, a, "hard:80")
        await service.deliver_pending()
    assert [json.loads(r.body)["tenant"]["id"] for r in mine.received] == [a]
    assert [json.loads(r.body)["tenant"]["id"] for r in everyone.received] == [b, a]


async def test_a_subscription_receives_only_what_happens_after_it(platform: Platform) -> None:
    a, _ = _tenants(platform)
    service = _service(platform)
    _threshold(platform, a, "soft:50")
    with http_receiver() as receiver:
        _subscribe(service, receiver.url, a)
        later = _threshold(platform, a, "soft:80")
        await service.deliver_pending()
    assert [json.loads(r.body)["seq"] for r in receiver.received] == [later]


async def test_a_failed_delivery_is_logged_and_later_events_still_go_out(
    platform: Platform,
) -> None:
    a, _ = _tenants(platform)
    service = _service(platform, max_attempts=2)
    with http_receiver((500, {}), (500, {})) as receiver:
        sub = _subscribe(service, receiver.url, a)
        first = _threshold(platform, a, "soft:50")
        second = _threshold(platform, a, "soft:80")
        await service.deliver_pending()
    assert [json.loads(r.body)["seq"] for r in receiver.received] == [first, first, second]
    log = {d.seq: d for d in service.deliveries(SYSTEM, sub, PageRequest()).items}
    assert log[first].status is DeliveryStatus.FAILED
    assert log[first].attempts == 2
    assert log[first].last_error is not None and "HTTP 500" in log[first].last_error
    assert log[second].status is DeliveryStatus.DELIVERED


async def test_wildcard_actions_select_every_action_under_a_prefix(platform: Platform) -> None:
    a, _ = _tenants(platform)
    service = _service(platform)
    with http_receiver() as receiver:
        _subscribe(service, receiver.url, a, actions=("case.*",))
        _threshold(platform, a, "x", action="case.opened")
        _threshold(platform, a, "x", action="spend.threshold")
        _threshold(platform, a, "x", action="case.updated")
        await service.deliver_pending()
    events = [r.headers["x-callwarden-event"] for r in receiver.received]
    assert events == ["case.opened", "case.updated"]


async def test_an_unsubscribed_webhook_receives_nothing_more(platform: Platform) -> None:
    a, _ = _tenants(platform)
    service = _service(platform)
    with http_receiver() as receiver:
        sub = _subscribe(service, receiver.url, a)
        service.unsubscribe(_admin(a), sub)
        _threshold(platform, a, "soft:50")
        await service.deliver_pending()
    assert receiver.received == []
    with pytest.raises(NotFound):
        service.get(SYSTEM, sub)
    actions = [
        e.action for e in platform.audit.list(SYSTEM, AuditQuery(tenant_id=a), PageRequest()).items
    ]
    assert "notification.unsubscribed" in actions and "notification.subscribed" in actions


async def test_a_test_notification_is_sent_at_once_and_logged(platform: Platform) -> None:
    a, _ = _tenants(platform)
    service = _service(platform)
    with http_receiver() as receiver:
        sub = _subscribe(service, receiver.url, a)
        delivery = await service.send_test(_admin(a), sub)
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.seq is None
    assert receiver.received[0].headers["x-callwarden-event"] == "notification.test"
    assert service.deliveries(SYSTEM, sub, PageRequest()).items[0].id == delivery.id


def test_a_tenant_admin_subscribes_only_for_their_own_tenant(platform: Platform) -> None:
    a, b = _tenants(platform)
    service = _service(platform)
    with pytest.raises(Forbidden):
        _subscribe(service, "https://hooks.example/x", b, by=_admin(a))
    with pytest.raises(Forbidden):
        _subscribe(service, "https://hooks.example/x", None, by=_admin(a))
    mine = _subscribe(service, "https://hooks.example/x", a, by=_admin(a))
    theirs = _subscribe(service, "https://hooks.example/y", b)
    assert [s.id for s in service.subscriptions(_admin(a), a, PageRequest()).items] == [mine]
    with pytest.raises(NotFound):
        service.get(_admin(a), theirs)
    with pytest.raises(Forbidden):
        service.subscriptions(_admin(a), None, PageRequest())
    assert service.subscriptions(SYSTEM, None, PageRequest()).total == 2


def test_an_agent_may_not_subscribe(platform: Platform) -> None:
    a, _ = _tenants(platform)
    agent = Principal(user_id="us_00000000000000ag", tenant_id=a, role=UserRole.AGENT)
    with pytest.raises(Forbidden):
        _subscribe(_service(platform), "https://hooks.example/x", a, by=agent)


@pytest.mark.parametrize(
    ("channel", "target", "actions", "field"),
    [
        (Channel.WEBHOOK, "ftp://hooks.example/x", ("*",), "target"),
        (Channel.WEBHOOK, "https://user:pw@hooks.example/x", ("*",), "target"),
        (Channel.WEBHOOK, "https://hooks.example/x", (), "actions"),
        (Channel.WEBHOOK, "https://hooks.example/x", ("Spend Threshold",), "actions"),
        (Channel.EMAIL, "noc@x.example", ("*",), "channel"),
    ],
)
def test_a_bad_subscription_is_refused_naming_the_field(
    platform: Platform, channel: Channel, target: str, actions: tuple[str, ...], field: str
) -> None:
    a, _ = _tenants(platform)
    with pytest.raises(InvalidInput) as refused:
        _service(platform).subscribe(SYSTEM, NewSubscription(channel, target, actions, a))
    assert refused.value.field == field


def test_a_webhook_secret_is_never_logged_in_the_audit(platform: Platform) -> None:
    a, _ = _tenants(platform)
    created = _service(platform).subscribe(
        SYSTEM, NewSubscription(Channel.WEBHOOK, "https://hooks.example/t/abc123", ("*",), a)
    )
    (entry,) = platform.audit.list(
        SYSTEM, AuditQuery(action="notification.subscribed"), PageRequest()
    ).items
    assert created.secret is not None
    assert created.secret not in json.dumps(dict(entry.details))
    assert "abc123" not in json.dumps(dict(entry.details))


@given(st.from_regex(r"[a-z]{1,8}(\.[a-z]{1,8}){0,2}", fullmatch=True))
def test_an_action_matches_itself_its_prefix_wildcard_and_star(action: str) -> None:
    assert action_matches(action, action)
    assert action_matches("*", action)
    prefix = action.split(".")[0]
    assert action_matches(f"{prefix}.*", action) == ("." in action)
    assert not action_matches(action + "x", action)


async def test_an_entry_sent_but_not_recorded_is_sent_again_with_the_same_delivery_id(
    platform: Platform,
) -> None:
    a, _ = _tenants(platform)
    service = _service(platform)
    with http_receiver() as receiver:
        sub = _subscribe(service, receiver.url, a)
        before = service.get(SYSTEM, sub).last_seq
        seq = _threshold(platform, a, "hard:100")
        await service.deliver_pending()
        # The process stops after sending, before its position is stored: put it back.
        with platform.store.engine.begin() as conn:
            conn.execute(
                update(NotificationSubscriptionRow)
                .where(NotificationSubscriptionRow.id == sub)
                .values(last_seq=before)
            )
        await service.deliver_pending()
    ids = [r.headers["x-callwarden-delivery"] for r in receiver.received]
    assert ids == [delivery_id(sub, seq)] * 2
    assert service.deliveries(SYSTEM, sub, PageRequest()).total == 1


async def test_a_receiver_stuck_in_retries_does_not_hold_back_another_subscription(
    platform: Platform,
) -> None:
    a, _ = _tenants(platform)
    never = anyio.Event()

    async def stuck(_: float) -> None:
        await never.wait()

    sender = WebhookSender(max_attempts=3, sleep=stuck)
    service = NotificationService(
        SqlNotificationStore(platform.store.engine), {Channel.WEBHOOK: sender}
    )
    with http_receiver(*[(500, {})] * 5) as dead, http_receiver() as alive:
        _subscribe(service, dead.url, a)
        _subscribe(service, alive.url, a)
        _threshold(platform, a, "soft:50")
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(service.run, 0.01)
            with anyio.fail_after(60):
                while not alive.received:
                    await anyio.sleep(0.01)
                # The dead receiver's subscription now waits in its retry pause; a later event
                # must still reach the other subscription.
                _threshold(platform, a, "soft:80")
                while len(alive.received) < 2:
                    await anyio.sleep(0.01)
            tasks.cancel_scope.cancel()
    marks = [json.loads(r.body)["details"]["mark"] for r in alive.received]
    assert marks == ["soft:50", "soft:80"]
    assert len(dead.received) == 1


async def test_calls_crossing_a_charge_limit_send_each_spend_alert_once_in_order(
    sqlite_url: str,
) -> None:
    platform = Platform.build(Settings(database_url=sqlite_url, counters_url="memory://"))
    try:
        world = build_world(platform)
        tenant = world.tenants[0]
        platform.governance.update_plan(
            SYSTEM,
            world.plan_id,
            limits=PlanLimits(
                concurrent_calls_per_tenant=None,
                concurrent_calls_per_user=None,
                attempts_per_second=None,
                attempts_per_minute=None,
                calls_per_destination_per_day=None,
                max_call_duration_s=600,
                monthly_charge_limit_minor=3_000,
            ),
        )
        deck = platform.rating.create_deck(SYSTEM, name="Retail", currency="EUR")
        platform.rating.import_rates(
            SYSTEM,
            deck.id,
            [
                "prefix,description,rate,connection fee,increments,effective date,currency",
                "4420,London,0.6000,0,60/60,2020-01-01,EUR",
            ],
        )
        platform.rating.assign(SYSTEM, "plan", world.plan_id, deck.id)
        with http_receiver() as receiver:
            _subscribe(platform.notifications, receiver.url, tenant)
            for n in range(5):  # 6.00 EUR each against a 30.00 EUR hard limit
                await platform.admission.decide(
                    CallAttempt(
                        call_id=f"call-{n}",
                        destination=f"+44207946010{n}",
                        direction=Direction.OUTBOUND,
                        at=1_800_000_000.0,
                        tenant_id=tenant,
                        user_id=world.admins[0],
                        caller="+442079460000",
                    )
                )
                await platform.admission.call_event(
                    f"call-{n}", CallEvent.ENDED, tenant_id=tenant, source_ip=None, duration_s=600.0
                )
            await platform.notifications.deliver_pending()
            await platform.notifications.deliver_pending()
    finally:
        await platform.aclose()
    bodies = [json.loads(r.body) for r in receiver.received]
    assert [b["details"]["mark"] for b in bodies] == ["hard:50", "hard:80", "hard:100"]
    assert all(b["event"] == "spend.threshold" for b in bodies)
    assert all(b["clause_ids"] == ["LIM-1", "LIM-3"] for b in bodies)
