"""The HTTP API application (FastAPI on uvicorn; docs/decisions/http-framework.md says why)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from callwarden import __version__
from callwarden.adapters.api import hot_path
from callwarden.adapters.api.errors import install_error_handlers
from callwarden.adapters.api.middleware import SingleValuedQuery
from callwarden.adapters.api.observe import DecisionLog
from callwarden.adapters.api.routes import (
    admission,
    audit,
    health,
    numbers,
    plans,
    rate_decks,
    rules,
    tenants,
    users,
)
from callwarden.adapters.api.routes import cases as case_routes
from callwarden.adapters.api.routes import notifications as notification_routes
from callwarden.adapters.api.routes import surveillance as surveillance_routes
from callwarden.adapters.api.routes import throttles as throttle_routes
from callwarden.adapters.api.routes import usage as usage_routes
from callwarden.adapters.usage_jobs import run_usage_jobs
from callwarden.platform import Platform

log = logging.getLogger("callwarden.api")


async def _follow_changes(platform: Platform) -> None:
    """Read the change feed so changes made through other instances reach admission here."""
    interval = platform.settings.change_poll_interval_s
    while True:
        try:
            await anyio.to_thread.run_sync(platform.admission.poll_changes)
            await anyio.to_thread.run_sync(platform.rating.poll_changes)
        except Exception:  # a database hiccup must not stop the follower; it logs and retries
            log.exception("change feed poll failed")
        await anyio.sleep(interval)


class CallwardenApp(FastAPI):
    """The FastAPI app, with the admission hot path answered ahead of the framework.

    Requests :func:`hot_path.handler_for` claims (the call attempts and call events a SIP
    server sends) are served by :func:`hot_path.serve`; everything else, including every other
    method on those paths, goes through FastAPI as usual.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        hot = hot_path.handler_for(scope)
        if hot is None:
            await super().__call__(scope, receive, send)
            return
        handler, param = hot
        state = self.state
        await hot_path.serve(
            state.platform, state.decision_log, handler, param, scope, receive, send
        )


Background = Callable[[], Coroutine[Any, Any, None]]
"""A coroutine function the app runs for as long as it serves (e.g. demo traffic)."""


def create_app(
    platform: Platform, *, owns_platform: bool = False, background: Sequence[Background] = ()
) -> FastAPI:
    """The API over an already built platform. The caller owns the platform's lifetime unless
    `owns_platform` is set, in which case the app closes it when it shuts down."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_follow_changes, platform)
            tasks.start_soon(run_usage_jobs, platform)
            if platform.settings.notify_deliver:
                tasks.start_soon(
                    platform.notifications.run, platform.settings.notify_poll_interval_s
                )
            if platform.settings.surveillance_enabled:
                tasks.start_soon(platform.surveillance.run)
            for task in background:
                tasks.start_soon(task)
            yield
            tasks.cancel_scope.cancel()
        if owns_platform:
            await platform.aclose()

    app = CallwardenApp(
        title="callwarden",
        version=__version__,
        description=(
            "Acceptable-use-policy enforcement for hosted contact centers: tenants, seats, "
            "numbers, plans, suspensions and the audit log. Errors name the offending field and "
            "the policy clauses behind a refusal."
        ),
        lifespan=lifespan,
    )
    app.state.platform = platform
    app.state.decision_log = DecisionLog()
    install_error_handlers(app)
    app.add_middleware(SingleValuedQuery)
    for module in (health, admission, plans, tenants, users, numbers, rules, rate_decks, audit):
        app.include_router(module.router)
    app.include_router(usage_routes.router)
    app.include_router(case_routes.router)
    app.include_router(notification_routes.router)
    app.include_router(surveillance_routes.router)
    app.include_router(throttle_routes.router)
    return app
