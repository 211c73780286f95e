"""`callwarden surveillance ...`: detector policies and the automatic-action policy from the
shell, through the same audited service as the API (acting as the system principal).

Exit codes: 0 on success, 2 for a refusal (an unknown detector, plan or tenant, a bad
parameter), with the field named.
"""

from __future__ import annotations

import json
import signal
from typing import Annotated, Any

import anyio
import typer
from rich.console import Console

from callwarden.adapters.cli.common import DatabaseUrl, acting, require_nats_url
from callwarden.adapters.heap import settle_heap
from callwarden.core.cases import action_policy_from_json, action_policy_to_json
from callwarden.core.detectors.policy_json import policy_to_json
from callwarden.core.errors import InvalidInput
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.settings import Settings

surveillance_app = typer.Typer(help="Surveillance: detector policies and the action policy.")

out = Console(soft_wrap=True)

PlanOption = Annotated[
    str | None, typer.Option("--plan", help="A plan's policy (default: everyone's)")
]
TenantOption = Annotated[str | None, typer.Option("--tenant", help="A tenant's own policy")]


def _scope(plan: str | None, tenant: str | None) -> tuple[str, str]:
    if plan and tenant:
        raise InvalidInput("give --plan or --tenant, not both", field="scope")
    if plan:
        return "plan", plan
    if tenant:
        return "tenant", tenant
    return "default", ""


def _print(data: Any) -> None:
    out.print_json(json.dumps(data, sort_keys=True))


@surveillance_app.command("detectors")
def detectors(database_url: DatabaseUrl = None) -> None:
    """List the detectors: clauses, parameters with their defaults, and default policies."""
    with acting(database_url) as platform:
        config = platform.surveillance.config
        defaults = config.policies(SYSTEM, "default")
        for info in config.detectors():
            policy = defaults.get(info.id)
            mode = policy.mode.value if policy else "observe"
            params = ", ".join(f"{f.name}={f.default}" for f in info.params)
            out.print(f"{info.id} [{', '.join(info.clause_ids)}] {mode}: {params}", highlight=False)


@surveillance_app.command("show")
def show(
    plan: PlanOption = None, tenant: TenantOption = None, database_url: DatabaseUrl = None
) -> None:
    """Print the detector policies set by default, for a plan, or for a tenant, as JSON."""
    with acting(database_url) as platform:
        scope, scope_id = _scope(plan, tenant)
        found = platform.surveillance.config.policies(SYSTEM, scope, scope_id)
        _print({detector: policy_to_json(p) for detector, p in found.items()})


@surveillance_app.command("set")
def set_policy(
    detector: Annotated[str, typer.Argument(help="A detector id, e.g. irsf")],
    mode: Annotated[str, typer.Option("--mode", help="enforce, observe or off")] = "observe",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="name=value (JSON value), repeatable", show_default=False),
    ] = None,
    allow_user: Annotated[list[str] | None, typer.Option("--allow-user")] = None,
    allow_number: Annotated[list[str] | None, typer.Option("--allow-number")] = None,
    allow_destination: Annotated[list[str] | None, typer.Option("--allow-destination")] = None,
    plan: PlanOption = None,
    tenant: TenantOption = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Set how a detector runs by default, for a plan or for a tenant (audited)."""
    with acting(database_url) as platform:
        scope, scope_id = _scope(plan, tenant)
        params: dict[str, object] | None = None
        if param:
            params = {}
            for item in param:
                name, sep, raw = item.partition("=")
                try:
                    if not sep:
                        raise ValueError(item)
                    params[name.strip()] = json.loads(raw)
                except ValueError:
                    raise InvalidInput(
                        f"--param {item!r} is not name=value", field=f"params.{name}"
                    ) from None
        config = platform.surveillance.config
        policy = config.build_policy(
            detector,
            mode=mode,
            params=params,
            allow_users=allow_user or [],
            allow_numbers=allow_number or [],
            allow_destinations=allow_destination or [],
        )
        config.set_policy(SYSTEM, scope, scope_id, detector, policy)
        _print(policy_to_json(policy))


@surveillance_app.command("unset")
def unset_policy(
    detector: Annotated[str, typer.Argument(help="A detector id")],
    plan: PlanOption = None,
    tenant: TenantOption = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Drop a detector's policy at a scope: the next wider one applies (audited)."""
    with acting(database_url) as platform:
        scope, scope_id = _scope(plan, tenant)
        platform.surveillance.config.delete_policy(SYSTEM, scope, scope_id, detector)
        out.print(f"{detector}: policy dropped", highlight=False)


@surveillance_app.command("action-policy")
def action_policy(
    replace_with: Annotated[
        str | None,
        typer.Option("--set", help="A new policy as JSON (the API's body)", show_default=False),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Print the automatic-action policy as JSON, or replace it with --set (audited)."""
    with acting(database_url) as platform:
        config = platform.surveillance.config
        if replace_with is not None:
            try:
                data = json.loads(replace_with)
            except ValueError:
                raise InvalidInput("--set is not JSON", field="action_policy") from None
            if not isinstance(data, dict):
                raise InvalidInput("--set must be a JSON object", field="action_policy")
            config.set_action_policy(SYSTEM, action_policy_from_json(data))
        _print(action_policy_to_json(config.action_policy(SYSTEM)))


@surveillance_app.command("run")
def run_worker(database_url: DatabaseUrl = None) -> None:
    """Run surveillance as a worker until SIGTERM or Ctrl-C: read the usage stream, open cases,
    take automatic actions and undo expired ones.

    The worker reads the NATS JetStream usage stream (CALLWARDEN_NATS_URL) under the durable
    consumer ``surveillance``, so records published by any API instance or ingestion job reach
    it, and what it has not acknowledged is redelivered after a restart. Run one worker per
    usage stream (detector windows need all of a tenant's records) and set
    CALLWARDEN_SURVEILLANCE_ENABLED=false on the API instances.
    """
    settings = Settings(database_url=database_url) if database_url else Settings()
    require_nats_url(
        settings,
        "a surveillance worker reads the shared usage stream (the in-process stream lives "
        "inside one server)",
    )
    anyio.run(_run_until_stopped, settings)


async def _run_until_stopped(settings: Settings) -> None:
    platform = Platform.build(settings)
    settle_heap()  # detector state grows for hours: keep the collector off start-up objects
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(platform.surveillance.run)
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                out.print(f"surveillance worker reading {settings.nats_url}", highlight=False)
                async for _ in signals:
                    break
            tasks.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await platform.aclose()
