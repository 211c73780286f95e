"""The command line: bootstrap, everyday verbs, and `audit verify` with its exit code."""

from __future__ import annotations

import re

from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from callwarden.adapters.cli.main import app

runner = CliRunner()


def run(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_an_installation_is_bootstrapped_and_managed_from_the_cli(sqlite_url: str) -> None:
    db = ["--database-url", sqlite_url]
    out = run("operator", "create", "noc@provider.example", *db)
    assert re.search(r"API key \(shown once\): cw_\w+", out)
    out = run("demo", "--no-serve", "--data-dir", sqlite_url.removeprefix("sqlite:///") + ".d")
    assert "operator API key" in out and "/openapi.json" in out


def test_tenant_user_and_number_verbs(sqlite_url: str) -> None:
    from callwarden.core.model import Billing, Channel, PlanLimits
    from callwarden.platform import Platform
    from callwarden.services.governance import SYSTEM
    from callwarden.settings import Settings

    platform = Platform.build(Settings(database_url=sqlite_url))
    plan = platform.governance.create_plan(
        SYSTEM,
        name="P",
        billing=Billing.METERED,
        channels=[Channel.VOICE],
        currency="EUR",
        limits=PlanLimits(),
    )
    platform.close()
    db = ["--database-url", sqlite_url]
    out = run(
        "tenant",
        "create",
        "Acme",
        "--country",
        "GB",
        "--timezone",
        "Europe/London",
        "--plan-id",
        plan.id,
        *db,
    )
    tenant_id = re.search(r"tenant (tn_\w+) created", out).group(1)  # type: ignore[union-attr]
    refused = runner.invoke(
        app, ["user", "create", tenant_id, "a@acme.example", "--name", "A", "--activate", *db]
    )
    assert refused.exit_code == 2 and "ACC-3" in refused.output
    run("number", "add", tenant_id, "+442079460000", *db)
    assert "+442079460000" in run("number", "list", tenant_id, *db)
    run("tenant", "suspend", tenant_id, "--reason", "fraud", "--clause", "FRD-3", *db)
    assert "FRD-3" in run("tenant", "list", *db)
    bad = runner.invoke(
        app, ["tenant", "suspend", tenant_id, "--reason", "x", "--clause", "NO-1", *db]
    )
    assert bad.exit_code == 2 and "clause_ids" in bad.output
    consent = ["tenant", "sim-box-consent", tenant_id]
    assert "on record (Annex 4)" in run(*consent, "--reference", "Annex 4", *db)
    assert "withdrawn" in run(*consent, "--withdraw", "contract ended", *db)
    again = runner.invoke(app, [*consent, "--withdraw", "twice", *db])
    assert again.exit_code == 2 and "no SIM-box consent" in again.output
    neither = runner.invoke(app, [*consent, *db])
    assert neither.exit_code == 2 and "--reference or --withdraw" in neither.output


def test_audit_verify_exits_1_and_names_the_altered_entry(sqlite_url: str) -> None:
    db = ["--database-url", sqlite_url]
    run("operator", "create", "noc@provider.example", *db)
    run("operator", "create", "noc2@provider.example", *db)
    assert "audit log intact" in run("audit", "verify", *db)
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("UPDATE audit_log SET actor = 'someone' WHERE seq = 2"))
    engine.dispose()
    result = runner.invoke(app, ["audit", "verify", *db])
    assert result.exit_code == 1
    assert "entry 2" in result.output
