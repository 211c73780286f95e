"""`callwarden deck`: create, import (refused or skipped, merged or replaced), assign, rate; and
a generated million-row deck imported through the command on SQLite."""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

from bench.rating import write_deck
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from callwarden.adapters.cli.main import app
from callwarden.core.model import Billing, Channel, PlanLimits
from callwarden.core.rating import parse_price
from callwarden.platform import Platform
from callwarden.services.governance import SYSTEM
from callwarden.settings import Settings

runner = CliRunner()
HEADER = "prefix,description,rate,connection fee,increments,effective date,currency\n"


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def _file(tmp_path: Path, name: str, *rows: str) -> str:
    path = tmp_path / name
    path.write_text(HEADER + "".join(row + "\n" for row in rows), encoding="utf-8")
    return str(path)


def test_a_deck_is_created_imported_and_rated_from_the_cli(sqlite_url: str, tmp_path: Path) -> None:
    db = ["--database-url", sqlite_url]
    assert "created (USD)" in run("deck", "create", "Carrier A", "--currency", "usd", *db)
    deck = _file(
        tmp_path,
        "a.csv",
        "44,United Kingdom,0.012,0,60/60,2024-01-01,USD",
        "447,United Kingdom - Mobile,0.085,0.01,30/6,2024-01-01,USD",
    )
    out = run("deck", "import", "Carrier A", deck, *db)
    assert "imported 2 rates" in out and "0 bad rows" in out
    assert re.search(r"in \d+\.\d s", out)
    rated = run("deck", "rate", "Carrier A", "+447700900123", "--at", "2024-06-01", *db)
    assert "447" in rated and "0.085 USD" in rated and "30/6" in rated
    listed = run("deck", "list", *db)
    assert "Carrier A" in listed and "2024-01-01" in listed


def test_a_refused_import_lists_its_bad_lines_and_exits_2(sqlite_url: str, tmp_path: Path) -> None:
    db = ["--database-url", sqlite_url]
    run("deck", "create", "Carrier A", "--currency", "USD", *db)
    deck = _file(
        tmp_path,
        "bad.csv",
        "44,United Kingdom,0.012,0,60/60,2024-01-01,USD",
        "0044,Again,0.012,0,60/60,2024-01-01,USD",
        "33,France,lots,0,60/60,2024-01-01,USD",
    )
    report = tmp_path / "bad-rows.csv"
    out = run("deck", "import", "Carrier A", deck, "--bad-rows", str(report), *db, code=2)
    assert "2 bad rows" in out and "2 of 3 rows are bad" in out
    with report.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert [r[0] for r in rows] == ["line", "3", "4"]
    assert "0044" in rows[1][1] and "'lots'" in rows[2][1]
    listed = run("deck", "list", *db)
    assert re.search(r"Carrier A\s*│\s*USD\s*│\s*0\s", listed)


def test_skip_imports_the_good_rows_and_replace_drops_the_rest(
    sqlite_url: str, tmp_path: Path
) -> None:
    db = ["--database-url", sqlite_url]
    run("deck", "create", "Carrier A", "--currency", "USD", *db)
    first = _file(tmp_path, "1.csv", "44,UK,0.01,0,60/60,2024-01-01,USD")
    run("deck", "import", "Carrier A", first, *db)
    second = _file(
        tmp_path, "2.csv", "33,France,0.02,0,1/1,2024-01-01,USD", "3x,Bad,0.02,0,1/1,2024-01-01,USD"
    )
    out = run("deck", "import", "Carrier A", second, "--on-error", "skip", "--replace", *db)
    assert "imported 1 rates" in out and "1 bad rows skipped" in out and "holds 1 rates" in out
    assert "has no rate" in run("deck", "rate", "Carrier A", "+4420", *db, code=2)


def test_decks_are_assigned_to_a_plan_or_a_tenant(sqlite_url: str, tmp_path: Path) -> None:
    platform = Platform.build(Settings(database_url=sqlite_url))
    plan = platform.governance.create_plan(
        SYSTEM,
        name="P",
        billing=Billing.METERED,
        channels=[Channel.VOICE],
        currency="USD",
        limits=PlanLimits(),
    )
    tenant = platform.governance.create_tenant(
        SYSTEM, name="Acme", country="GB", timezone="Europe/London", plan_id=plan.id
    )
    platform.close()
    db = ["--database-url", sqlite_url]
    run("deck", "create", "Carrier A", "--currency", "USD", *db)
    assert f"rates plan {plan.id}" in run("deck", "assign", "Carrier A", "--plan", plan.id, *db)
    assert f"rates tenant {tenant.id}" in run(
        "deck", "assign", "Carrier A", "--tenant", tenant.id, *db
    )
    assert "either --plan or --tenant" in run("deck", "assign", "Carrier A", *db, code=2)
    run("deck", "unassign", "--tenant", tenant.id, *db)
    assert "no rate deck assigned" in run("deck", "unassign", "--tenant", tenant.id, *db, code=2)


def test_a_million_row_deck_imports_through_the_cli(sqlite_url: str, tmp_path: Path) -> None:
    rows = 1_000_000
    path = tmp_path / "million.csv"
    write_deck(path, rows, distinct_prices=False, rng=random.Random(5))
    with path.open(newline="", encoding="utf-8") as handle:
        sample = {
            i: row for i, row in enumerate(csv.reader(handle), -1) if i in (0, 499_999, 999_999)
        }
    db = ["--database-url", sqlite_url]
    run("deck", "create", "Million", "--currency", "USD", *db)
    out = run("deck", "import", "Million", str(path), *db)
    assert "imported 1,000,000 rates" in out and "0 bad rows" in out
    engine = create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM rate_deck_rates")).scalar_one() == rows
    engine.dispose()
    platform = Platform.build(Settings(database_url=sqlite_url))
    try:
        deck = platform.rating.find_deck(SYSTEM, "Million")
        assert deck.rate_count == rows and deck.effective_date_count == 3
        for prefix, description, price, fee, increments, _, _ in sample.values():
            rate = platform.rating.lookup(SYSTEM, deck.id, f"+{prefix}42", 1_750_000_000)
            assert (rate.prefix, rate.description) == (prefix, description)
            assert rate.rate_per_minute_nano == parse_price(price)
            assert rate.connection_fee_nano == parse_price(fee)
            assert f"{rate.initial_s}/{rate.subsequent_s}" == increments
    finally:
        platform.close()
