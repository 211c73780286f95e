"""The `callwarden` command: serve, demo, migrate, and the operator's everyday verbs."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, BinaryIO, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from callwarden.adapters.cli.backfill import backfill
from callwarden.adapters.cli.common import DatabaseUrl, acting, platform_for
from callwarden.adapters.cli.simulate import evaluate, simulate_command
from callwarden.adapters.cli.stream import stream_app
from callwarden.adapters.cli.surveillance import surveillance_app
from callwarden.adapters.cli.usage import dead_letter_app, ingest, ingest_watch, usage_app
from callwarden.core.model import NumberOwnership, NumberStatus, UserRole
from callwarden.core.ratedeck import BadRow, BadRowsError
from callwarden.core.rating import format_price
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.services.ports import (
    NumberQuery,
    PageRequest,
    RateDeckInfo,
    TenantQuery,
    UserQuery,
)
from callwarden.services.rating import ImportProgress, effective_datetime
from callwarden.settings import Settings

app = typer.Typer(help="callwarden: acceptable-use-policy enforcement for contact centers.")
tenant_app = typer.Typer(help="Tenants: create, list, suspend, reinstate, SIM-box consent.")
user_app = typer.Typer(help="Users of a tenant: create, list, activate.")
number_app = typer.Typer(help="Phone numbers of a tenant: add, list, suspend.")
operator_app = typer.Typer(help="The provider's operators.")
audit_app = typer.Typer(help="The audit log.")
deck_app = typer.Typer(help="Rate decks (LIM-1): create, import CSV, assign, look up a rate.")
app.add_typer(tenant_app, name="tenant")
app.add_typer(user_app, name="user")
app.add_typer(number_app, name="number")
app.add_typer(operator_app, name="operator")
app.add_typer(audit_app, name="audit")
app.add_typer(deck_app, name="deck")
app.add_typer(stream_app, name="stream")
app.add_typer(surveillance_app, name="surveillance")
app.command("ingest")(ingest)
app.command("ingest-watch")(ingest_watch)
app.command("simulate")(simulate_command)
app.command("evaluate")(evaluate)
app.command("backfill")(backfill)
app.add_typer(dead_letter_app, name="dead-letters")
app.add_typer(usage_app, name="usage")

out = Console(soft_wrap=True)
err = Console(stderr=True)


def _acting(database_url: str | None) -> AbstractContextManager[Platform]:
    """The platform for one command: a refusal prints its reason and the clauses behind it,
    and exits 2; always closed."""
    return acting(database_url, show_clauses=True)


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
    platform_for(database_url).close()
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


@tenant_app.command("sim-box-consent")
def tenant_sim_box_consent(
    tenant_id: str,
    reference: Annotated[
        str | None, typer.Option(help="The signed document holding the written consent")
    ] = None,
    withdraw: Annotated[
        str | None, typer.Option(help="Take the consent off record, with this reason")
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Put a tenant's written consent to run SIM boxes on record, or withdraw it (FRD-6)."""
    if (reference is None) == (withdraw is None):
        err.print("[red]error:[/red] give either --reference or --withdraw", markup=True)
        raise typer.Exit(code=2)
    with _acting(database_url) as platform:
        if reference is not None:
            platform.governance.record_sim_box_consent(SYSTEM, tenant_id, reference=reference)
            out.print(f"tenant {tenant_id}: SIM-box consent on record ({reference.strip()})")
        else:
            assert withdraw is not None
            platform.governance.withdraw_sim_box_consent(SYSTEM, tenant_id, reason=withdraw)
            out.print(f"tenant {tenant_id}: SIM-box consent withdrawn")


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


# -- rate decks -----------------------------------------------------------------------------------
#: Bad rows printed after an import; ``--bad-rows FILE`` writes every one.
BAD_ROWS_SHOWN = 50


class OnBadRows(StrEnum):
    """What bad rows do to an import."""

    REFUSE = "refuse"
    SKIP = "skip"


@deck_app.command("create")
def deck_create(
    name: str,
    currency: Annotated[str, typer.Option(help="ISO 4217 code of every price in the deck")],
    description: Annotated[str, typer.Option(help="What the deck is, for people")] = "",
    database_url: DatabaseUrl = None,
) -> None:
    """Create an empty rate deck."""
    with _acting(database_url) as platform:
        deck = platform.rating.create_deck(
            SYSTEM, name=name, currency=currency, description=description
        )
    out.print(f"rate deck {deck.id} {deck.name!r} created ({deck.currency})")


@deck_app.command("list")
def deck_list(database_url: DatabaseUrl = None) -> None:
    """List the rate decks with their rate counts and effective dates."""
    with _acting(database_url) as platform:
        page = platform.rating.list_decks(SYSTEM, PageRequest(limit=10_000))
    table = Table("id", "name", "currency", "rates", "effective dates")
    for d in page.items:
        table.add_row(d.id, d.name, d.currency, f"{d.rate_count:,}", _dates(d))
    out.print(table)


@deck_app.command("import")
def deck_import(
    name: Annotated[str, typer.Argument(help="The deck's name or id")],
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV deck")
    ],
    on_error: Annotated[
        OnBadRows,
        typer.Option(help="refuse: any bad row refuses the whole file; skip: import the rest"),
    ] = OnBadRows.REFUSE,
    replace: Annotated[
        bool, typer.Option("--replace", help="Drop the deck's rates first (default: merge)")
    ] = False,
    bad_rows: Annotated[
        Path | None,
        typer.Option("--bad-rows", help="Write every bad row (line, reason) to this CSV file"),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Import a CSV deck, with a progress bar; exit 2 if it is refused."""
    started = time.perf_counter()
    mode: Literal["merge", "replace"] = "replace" if replace else "merge"
    choice: Literal["refuse", "skip"] = "skip" if on_error is OnBadRows.SKIP else "refuse"
    with _acting(database_url) as platform:
        deck = platform.rating.find_deck(SYSTEM, name)
        with file.open("rb") as raw, _import_progress(file.stat().st_size) as progress:
            text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
            try:
                result = platform.rating.import_rates(
                    SYSTEM,
                    deck.id,
                    text,
                    on_error=choice,
                    mode=mode,
                    progress=progress(raw),
                )
            except BadRowsError as exc:
                _show_bad_rows(exc.bad_rows, bad_rows)
                raise
    seconds = time.perf_counter() - started
    _show_bad_rows(result.bad_rows, bad_rows)
    out.print(
        f"imported {result.rates_imported:,} rates into {deck.name!r} ({mode}) from "
        f"{result.rows_read:,} rows, {len(result.bad_rows):,} bad rows skipped, "
        f"in {seconds:.1f} s"
    )
    out.print(
        f"the deck holds {result.deck.rate_count:,} rates; effective dates: {_dates(result.deck)}"
    )


@contextmanager
def _import_progress(
    size: int,
) -> Iterator[Callable[[BinaryIO], Callable[[ImportProgress], None]]]:
    """A progress bar of bytes read, then of rates stored; yields a factory of the import's
    progress callback for the file being read."""
    megabytes = f"{size / 1e6:,.1f} MB"
    with Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        reading = bar.add_task("reading", total=size, detail=f"0.0/{megabytes}")
        storing = bar.add_task("storing", total=None, visible=False, detail="")

        def for_file(raw: BinaryIO) -> Callable[[ImportProgress], None]:
            def update(step: ImportProgress) -> None:
                if step.stage == "read":
                    done = raw.tell()
                    detail = f"{done / 1e6:,.1f}/{megabytes}, {step.done:,} rows"
                    bar.update(reading, completed=done, detail=detail)
                else:
                    bar.update(reading, completed=size)
                    bar.update(
                        storing,
                        total=step.total,
                        completed=step.done,
                        visible=True,
                        detail=f"{step.done:,}/{step.total or 0:,} rates",
                    )

            return update

        yield for_file


def _show_bad_rows(rows: tuple[BadRow, ...], path: Path | None) -> None:
    """Print the first bad rows with their line numbers; write them all to ``path``."""
    if not rows:
        return
    table = Table("line", "reason", title=f"{len(rows):,} bad rows")
    for row in rows[:BAD_ROWS_SHOWN]:
        table.add_row(str(row.line), row.reason)
    err.print(table)
    if len(rows) > BAD_ROWS_SHOWN and path is None:
        err.print(f"... and {len(rows) - BAD_ROWS_SHOWN:,} more: --bad-rows FILE lists them all")
    if path is not None:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["line", "reason"])
            writer.writerows([row.line, row.reason] for row in rows)
        err.print(f"every bad row is in {path}")


def _dates(deck: RateDeckInfo) -> str:
    shown = ", ".join(_day(t) for t in deck.effective_dates[:10])
    more = deck.effective_date_count - min(10, len(deck.effective_dates))
    return f"{shown} and {more:,} more" if more > 0 else shown or "none"


def _day(epoch_s: int) -> str:
    when = effective_datetime(epoch_s)
    return when.date().isoformat() if when.time() == datetime.min.time() else when.isoformat()


@deck_app.command("assign")
def deck_assign(
    name: Annotated[str, typer.Argument(help="The deck's name or id")],
    plan: Annotated[str | None, typer.Option("--plan", help="Plan id")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant id")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Rate a plan's tenants, or one tenant, with the deck (a tenant's own deck wins)."""
    scope, scope_id = _scope(plan, tenant)
    with _acting(database_url) as platform:
        deck = platform.rating.find_deck(SYSTEM, name)
        platform.rating.assign(SYSTEM, scope, scope_id, deck.id)
    out.print(f"rate deck {deck.name!r} rates {scope} {scope_id}")


@deck_app.command("unassign")
def deck_unassign(
    plan: Annotated[str | None, typer.Option("--plan", help="Plan id")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="Tenant id")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Drop a plan's or tenant's deck."""
    scope, scope_id = _scope(plan, tenant)
    with _acting(database_url) as platform:
        platform.rating.unassign(SYSTEM, scope, scope_id)
    out.print(f"{scope} {scope_id} has no rate deck of its own now")


def _scope(plan: str | None, tenant: str | None) -> tuple[str, str]:
    if (plan is None) == (tenant is None):
        raise typer.BadParameter("give either --plan or --tenant")
    return ("plan", plan) if plan is not None else ("tenant", tenant or "")


@deck_app.command("rate")
def deck_rate(
    name: Annotated[str, typer.Argument(help="The deck's name or id")],
    number: Annotated[str, typer.Argument(help="E.164 number, '+' optional")],
    at: Annotated[
        datetime | None,
        typer.Option(help="When the call starts, ISO 8601 (default: now; no zone: UTC)"),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """The rate the deck charges for a call to the number."""
    when = at or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    with _acting(database_url) as platform:
        deck = platform.rating.find_deck(SYSTEM, name)
        rate = platform.rating.lookup(SYSTEM, deck.id, number, when.timestamp())
    table = Table("prefix", "description", "per minute", "connection fee", "increments", "since")
    table.add_row(
        rate.prefix,
        rate.description,
        f"{format_price(rate.rate_per_minute_nano)} {rate.currency}",
        f"{format_price(rate.connection_fee_nano)} {rate.currency}",
        f"{rate.initial_s}/{rate.subsequent_s}",
        _day(rate.effective_from),
    )
    out.print(table)


if __name__ == "__main__":
    app()
