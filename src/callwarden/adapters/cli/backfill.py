"""`callwarden backfill FILE`: every detector over a usage file, findings as JSON lines.

A backfill answers "what would surveillance have found in this month?": to try detector
policies in observe mode on past traffic, or to look again at a month ingested before a detector
existed. It opens no cases and triggers no action (a month-old finding is for review, and an
automatic suspension for last month's traffic would be a surprise); the findings go to a file
or standard output as JSON lines, and a summary per detector is printed.

Tenants' facts (country, time zone, plan, billing, rate deck, SIM-box consent), the high-risk
list and the detector policies come from the store, as surveillance reads them. Exit codes: 0
when the file was read (findings or not), 2 for a refusal (a file polars cannot read as CSV, a
bad option).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Annotated

import orjson
import polars as pl
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from callwarden.adapters.backfill_reader import read_usage_table, unknown_columns
from callwarden.adapters.cli.common import DatabaseUrl, acting
from callwarden.core.detectors import DetectorFinding, TenantFacts
from callwarden.core.errors import InvalidInput
from callwarden.core.prefixes import PrefixList
from callwarden.core.usage.normalise import normalise, split
from callwarden.core.usage.record import UsageError, UsageFormat, UsageRecord
from callwarden.platform import Platform
from callwarden.services.backfill import (
    BackfillResult,
    BackfillSetup,
    backfill_records,
    backfill_table,
)
from callwarden.services.surveillance import overlay, tenant_facts

__all__ = ["backfill", "finding_to_json", "setup_from_store"]

err = Console(stderr=True, soft_wrap=True)


def finding_to_json(finding: DetectorFinding) -> dict[str, object]:
    """A finding as a JSON-ready object (times in ISO 8601 UTC, enums by value)."""
    return {
        "detector": finding.detector,
        "clause_ids": list(finding.clause_ids),
        "tenant_id": finding.tenant_id,
        "key_kind": finding.key_kind.value,
        "key": finding.key,
        "severity": finding.severity.value,
        "score": finding.score,
        "window": finding.window,
        "statistic": finding.statistic,
        "value": finding.value,
        "threshold": finding.threshold,
        "baseline": finding.baseline,
        "at": finding.at.isoformat().replace("+00:00", "Z"),
        "summary": finding.summary,
        "evidence": list(finding.evidence),
        "action": finding.action.value,
        "mode": finding.mode.value,
    }


def setup_from_store(platform: Platform, tenant_ids: Iterable[str]) -> BackfillSetup:
    """The facts surveillance would use for these tenants, the high-risk list and the detector
    policies in force (the code's, overlaid by those operators stored)."""
    facts: dict[str, TenantFacts] = {}
    with platform.governance.store.transaction() as tx:
        high_risk = PrefixList(tx.list_high_risk_prefixes())
        found = []
        for tenant_id in tenant_ids:
            tenant = tx.get_tenant(tenant_id)
            plan = tx.get_plan(tenant.plan_id) if tenant is not None else None
            if tenant is not None and plan is not None:
                found.append((tenant, plan))
    for tenant, plan in found:
        facts[tenant.id] = tenant_facts(tenant, plan, platform.rating.deck_for(tenant.id, plan.id))
    surveillance = platform.surveillance
    stored, _ = surveillance.config.load()
    return BackfillSetup(
        tenants=facts,
        high_risk=high_risk,
        config=overlay(surveillance.detectors.config, stored),
    )


@contextmanager
def _output(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    with open(path, "wb") as out:
        yield out


def _streamed(file: Path, fmt: UsageFormat, setup: BackfillSetup) -> BackfillResult:
    """Formats without a column reader: every record, normalised, through the detectors."""
    records: list[UsageRecord] = []
    rejected = 0
    with file.open(encoding="utf-8") as lines:
        for item in split(fmt, lines):
            try:
                records.extend(normalise(fmt, item))
            except UsageError:
                rejected += 1
    return backfill_records(records, setup, rejected=rejected)


def backfill(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    fmt: Annotated[
        UsageFormat, typer.Option("--format", "-f", help="How the file is written")
    ] = UsageFormat.CALLWARDEN_CSV,
    output: Annotated[
        str,
        typer.Option("--output", "-o", help="Where the findings go, as JSON lines ('-': stdout)"),
    ] = "-",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Processes judging the records, tenants split between them "
            "(default: one per core, at most 4)",
            show_default=False,
        ),
    ] = None,
    prescreen: Annotated[
        bool,
        typer.Option(
            "--prescreen/--no-prescreen",
            help="Spare each detector the rows that cannot change its findings (same findings)",
        ),
    ] = True,
    database_url: DatabaseUrl = None,
) -> None:
    """Run every detector over a usage file and write the findings (JSON lines), with a
    summary per detector. Opens no cases and takes no action."""
    begun = time.perf_counter()
    processes = workers if workers is not None else max(1, min(os.cpu_count() or 1, 4))
    with acting(database_url) as platform:
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err, transient=False) as progress:
            if fmt is not UsageFormat.CALLWARDEN_CSV:
                task = progress.add_task(f"{file.name}: normalising and judging", total=None)
                tenants = _tenants_of(file, fmt)
                result = _streamed(file, fmt, setup_from_store(platform, tenants))
                progress.update(task, total=result.rows, completed=result.rows)
            else:
                task = progress.add_task(f"{file.name}: reading", total=None)
                try:
                    table = read_usage_table(file)
                except pl.exceptions.PolarsError as exc:
                    raise InvalidInput(f"{file.name} is not a readable CSV file: {exc}") from exc
                strange = unknown_columns(table)
                if strange:
                    raise InvalidInput(
                        f"{file.name}: unknown columns {', '.join(strange)}", field="header"
                    )
                setup = setup_from_store(platform, table.get_column("_tenant").unique())
                progress.update(
                    task, description=f"{file.name}: judging", total=table.height, completed=0
                )
                result = backfill_table(
                    table,
                    setup,
                    workers=processes,
                    prescreen=prescreen,
                    progress=lambda rows: progress.advance(task, rows),
                    started=begun,
                )
                progress.update(task, completed=table.height)
    with _output(output) as out:
        for finding in result.findings:
            out.write(orjson.dumps(finding_to_json(finding)) + b"\n")
    _report(result, time.perf_counter() - begun)


def _tenants_of(file: Path, fmt: UsageFormat) -> set[str]:
    """The tenant ids a file names (for the formats read record by record)."""
    tenants: set[str] = set()
    with file.open(encoding="utf-8") as lines:
        for item in split(fmt, lines):
            try:
                tenants.update(r.tenant_id for r in normalise(fmt, item) if r.tenant_id)
            except UsageError:
                continue
    return tenants


def _report(result: BackfillResult, seconds: float) -> None:
    """The summary per detector, and the totals, on standard error."""
    table = Table(title="Backfill findings per detector")
    for name in ("detector", "records judged", "findings", "critical", "high", "medium", "low"):
        table.add_column(name, justify="left" if name == "detector" else "right")
    for summary in result.summaries.values():
        severity = summary.by_severity
        table.add_row(
            summary.detector,
            f"{summary.rows_seen:,}",
            f"{summary.findings:,}",
            *(f"{severity.get(level, 0):,}" for level in ("critical", "high", "medium", "low")),
        )
    err.print(table)
    rate = result.rows / seconds if seconds > 0 else 0.0
    err.print(
        f"{result.rows:,} rows ({result.rejected:,} refused by the normaliser), "
        f"{result.rows_judged:,} judged after the pre-screen, {len(result.findings):,} findings, "
        f"{seconds:.1f} s ({rate:,.0f} rows/s)"
        + (
            f"; {result.evicted_keys:,} keys dropped by the detectors' memory bounds"
            if result.evicted_keys
            else ""
        ),
        highlight=False,
    )
