"""The `callwarden` command: serve, demo, migrate, and the operator's everyday verbs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from callwarden.core.errors import CallwardenError
from callwarden.core.model import NumberOwnership, NumberStatus, UserRole
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import NumberQuery, PageRequest, TenantQuery, UserQuery
from callwarden.settings import Settings

app = typer.Typer(help="callwarden: acceptable-use-policy enforcement for contact centers.")
tenant_app = typer.Typer(help="Tenants: create, list, suspend, reinstate.")
user_app = typer.Typer(help="Users of a tenant: create, list, activate.")
number_app = typer.Typer(help="Phone numbers of a tenant: add, list, suspend.")
operator_app = typer.Typer(help="The provider's operators.")
audit_app = typer.Typer(help="The audit log.")
app.add_typer(tenant_app, name="tenant")
app.add_typer(user_app, name="user")
app.add_typer(number_app, name="number")
app.add_typer(operator_app, name="operator")
app.add_typer(audit_app, name="audit")

out = Console(soft_wrap=True)
err = Console(stderr=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Overrides CALLWARDEN_DATABASE_URL", show_default=False),
]


def _platform(database_url: str | None) -> Platform:
    settings = Settings(database_url=database_url) if database_url else Settings()
    return Platform.build(settings)


@contextmanager
def _acting(database_url: str | None) -> Iterator[Platform]:
    """The platform for one command: a refusal prints its reason and exits 2; always closed."""
    platform = _platform(database_url)
    try:
        yield platform
    except CallwardenError as exc:
        raise _fail(exc) from exc
    finally:
        platform.close()


def _fail(exc: CallwardenError) -> typer.Exit:
    where = f" ({exc.field})" if exc.field else ""
    clauses = f" [{', '.join(exc.clause_ids)}]" if exc.clause_ids else ""
    err.print(f"[red]error{where}:[/red] {exc.message}{clauses}")
    return typer.Exit(code=2)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the HTTP API."""
    from callwarden.adapters.api.server import run

    settings = Settings()
    overrides = {
        k: v
        for k, v in (("host", host), ("port", port), ("database_url", database_url))
        if v is not None
    }
    run(settings.model_copy(update=overrides))


@app.command()
def migrate(database_url: DatabaseUrl = None) -> None:
    """Create or upgrade the database schema."""
    _platform(database_url).close()
    out.print("schema is up to date")


@app.command()
def demo(
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its SQLite file")] = Path(
        ".demo"
    ),
    port: Annotated[int, typer.Option(help="Port to serve on")] = 8080,
    serve_api: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve after seeding")
    ] = True,
    with_traffic: Annotated[
        bool, typer.Option("--traffic/--no-traffic", help="Send demo call attempts")
    ] = True,
) -> None:
    """Seed a demo provider (operator, plans, tenants, users, numbers) and serve it."""
    from callwarden.adapters.cli.demo import seed

    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        database_url=f"sqlite:///{(data_dir / 'callwarden.db').resolve()}", port=port
    )
    platform = Platform.build(settings)
    try:
        result = seed(platform)
    finally:
        platform.close()
    base = f"http://{settings.host}:{settings.port}"
    out.rule("callwarden demo")
    out.print(f"operator API key:  [bold]{result.operator_key}[/bold]")
    out.print(f"tenant admin key:  {result.tenant_admin_key}  (tenant {result.tenant_id})")
    out.print(f"API:               {base}/v1/tenants")
    out.print(f"OpenAPI:           {base}/openapi.json   docs: {base}/docs")
    out.print(f"health:            {base}/healthz   ready: {base}/readyz   metrics: {base}/metrics")
    out.print(f"live decisions:    {base}/v1/admission/recent  (demo traffic runs in the server)")
    out.print(
        f"try:  curl -H 'Authorization: Bearer {result.operator_key}' {base}/v1/admission/recent"
    )
    if serve_api:
        from functools import partial

        from callwarden.adapters.api.server import run
        from callwarden.adapters.cli.demo_traffic import run_traffic

        traffic = partial(run_traffic, base, result.operator_key, result.tenants)
        run(settings, background=[traffic] if with_traffic else [])


@operator_app.command("create")
def operator_create(
    email: str,
    name: Annotated[str, typer.Option(help="Display name")] = "Operator",
    database_url: DatabaseUrl = None,
) -> None:
    """Create an operator and print an API key for it (the first key of a new installation)."""
    with _acting(database_url) as platform:
        user = platform.governance.create_user(
            SYSTEM, None, email=email, display_name=name, role=UserRole.OPERATOR
        )
        issued = platform.access.issue(SYSTEM, None, user.id, "created by the CLI")
    out.print(f"operator {user.id} created; API key (shown once): [bold]{issued.secret}[/bold]")


@tenant_app.command("create")
def tenant_create(
    name: str,
    country: Annotated[str, typer.Option(help="ISO 3166 alpha-2")],
    timezone: Annotated[str, typer.Option(help="IANA time zone")],
    plan_id: Annotated[str, typer.Option(help="Plan id")],
    database_url: DatabaseUrl = None,
) -> None:
    """Onboard a tenant."""
    with _acting(database_url) as platform:
        tenant = platform.governance.create_tenant(
            SYSTEM, name=name, country=country, timezone=timezone, plan_id=plan_id
        )
    out.print(f"tenant {tenant.id} created")


@tenant_app.command("list")
def tenant_list(
    status: Annotated[str | None, typer.Option(help="active, suspended or terminated")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List tenants."""
    with _acting(database_url) as platform:
        page = platform.governance.list_tenants(
            SYSTEM, TenantQuery(status=status), PageRequest(limit=10_000)
        )
    table = Table("id", "name", "country", "plan", "status", "suspension")
    for t in page.items:
        why = (
            f"{t.suspension.reason} [{', '.join(t.suspension.clause_ids)}]" if t.suspension else ""
        )
        table.add_row(t.id, t.name, t.country, t.plan_id, t.status.value, why)
    out.print(table)


@tenant_app.command("suspend")
def tenant_suspend(
    tenant_id: str,
    reason: Annotated[str, typer.Option(help="Why, in words")],
    clause: Annotated[list[str], typer.Option(help="Clause id(s), e.g. FRD-3")],
    database_url: DatabaseUrl = None,
) -> None:
    """Suspend a tenant at once (GOV-2)."""
    with _acting(database_url) as platform:
        platform.governance.suspend_tenant(SYSTEM, tenant_id, reason=reason, clause_ids=clause)
    out.print(f"tenant {tenant_id} suspended")


@tenant_app.command("reinstate")
def tenant_reinstate(
    tenant_id: str,
    reason: Annotated[str, typer.Option(help="Why, in words")],
    database_url: DatabaseUrl = None,
) -> None:
    """Lift a tenant's suspension."""
    with _acting(database_url) as platform:
        platform.governance.reinstate_tenant(SYSTEM, tenant_id, reason=reason)
    out.print(f"tenant {tenant_id} reinstated")


@user_app.command("create")
def user_create(
    tenant_id: str,
    email: str,
    name: Annotated[str, typer.Option(help="Display name")],
    role: Annotated[UserRole, typer.Option(help="Role")] = UserRole.AGENT,
    activate: Annotated[bool, typer.Option(help="Activate (take a seat) at once")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Invite a user to a tenant, optionally activating it."""
    with _acting(database_url) as platform:
        user = platform.governance.create_user(
            SYSTEM, tenant_id, email=email, display_name=name, role=role
        )
        if activate:
            user = platform.governance.activate_user(SYSTEM, tenant_id, user.id)
    out.print(f"user {user.id} {user.status.value}")


@user_app.command("activate")
def user_activate(
    tenant_id: str,
    user_id: str,
    override_reason: Annotated[
        str | None, typer.Option(help="Operator override past the seat limit (GOV-7)")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Give a user a seat (ACC-3)."""
    with _acting(database_url) as platform:
        platform.governance.activate_user(
            SYSTEM, tenant_id, user_id, override_reason=override_reason
        )
    out.print(f"user {user_id} active")


@user_app.command("list")
def user_list(tenant_id: str, database_url: DatabaseUrl = None) -> None:
    """List a tenant's users."""
    with _acting(database_url) as platform:
        page = platform.governance.list_users(
            SYSTEM, UserQuery(tenant_id=tenant_id), PageRequest(limit=10_000)
        )
    table = Table("id", "email", "name", "role", "status")
    for u in page.items:
        table.add_row(u.id, u.email, u.display_name, u.role.value, u.status.value)
    out.print(table)


@number_app.command("add")
def number_add(
    tenant_id: str,
    e164: str,
    ownership: Annotated[NumberOwnership, typer.Option(help="owned or verified")] = (
        NumberOwnership.OWNED
    ),
    database_url: DatabaseUrl = None,
) -> None:
    """Assign a caller-ID number to a tenant."""
    with _acting(database_url) as platform:
        number = platform.governance.add_number(SYSTEM, tenant_id, e164=e164, ownership=ownership)
    out.print(f"number {number.id} {number.e164} added")


@number_app.command("list")
def number_list(tenant_id: str, database_url: DatabaseUrl = None) -> None:
    """List a tenant's numbers."""
    with _acting(database_url) as platform:
        page = platform.governance.list_numbers(
            SYSTEM, NumberQuery(tenant_id=tenant_id), PageRequest(limit=10_000)
        )
    table = Table("id", "e164", "ownership", "status")
    for n in page.items:
        table.add_row(n.id, n.e164, n.ownership.value, n.status.value)
    out.print(table)


@number_app.command("suspend")
def number_suspend(
    tenant_id: str,
    number_id: str,
    reason: Annotated[str, typer.Option(help="Why, in words")],
    clause: Annotated[list[str], typer.Option(help="Clause id(s)")],
    database_url: DatabaseUrl = None,
) -> None:
    """Suspend a number at once (GOV-2)."""
    with _acting(database_url) as platform:
        platform.governance.set_number_status(
            SYSTEM,
            tenant_id,
            number_id,
            status=NumberStatus.SUSPENDED,
            reason=reason,
            clause_ids=clause,
        )
    out.print(f"number {number_id} suspended")


@audit_app.command("verify")
def audit_verify(database_url: DatabaseUrl = None) -> None:
    """Walk the audit chain; exit 1 and name the first broken link if it does not hold."""
    with _acting(database_url) as platform:
        count, broken = platform.audit.verify()
    if broken is None:
        out.print(f"[green]audit log intact[/green]: {count} entries, every link holds")
        return
    err.print(f"[red]audit log broken[/red] at entry {broken.seq}: {broken.problem}")
    raise typer.Exit(code=1)


if __name__ == "__main__":
    app()
