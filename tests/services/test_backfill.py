"""Backfill: its findings over a file equal the streaming detectors' over the same file.

A small generator writes a callwarden CSV file of ordinary traffic for three tenants with abuse
injected for most detectors (a robocaller, caller-ID rotation, a SIM box, short emergency calls,
fair-use abuse, an IRSF burst, a wangiri call-back, a number scan, pumping). The reference is one
:class:`DetectorSet` fed every record of the file, as ingestion normalises them, in file order.
"""

from __future__ import annotations

import csv
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from callwarden.adapters.backfill_reader import read_usage_table
from callwarden.core.detectors import DetectorSet, TenantFacts
from callwarden.core.model import Billing
from callwarden.core.prefixes import PrefixList
from callwarden.core.rating import Rate, RateDeck
from callwarden.core.usage.normalise import normalise, split
from callwarden.core.usage.record import UsageError, UsageFormat, UsageRecord
from callwarden.core.usage.schema import CALL_FIELDS
from callwarden.services.backfill import (
    ROW_COLUMNS,
    BackfillSetup,
    backfill_table,
    records_from_rows,
)

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
DECK = RateDeck(
    Rate(prefix, nano, 0, 60, 60, 0, "USD")
    for prefix, nano in (
        ("1", 5_000_000),
        ("1900", 1_500_000_000),
        ("44", 8_000_000),
        ("371", 120_000_000),
        ("8816", 6_000_000_000),
    )
)


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S") + "Z"


class Traffic:
    """Call rows in callwarden's CSV schema, written in the order they are added."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def call(
        self,
        tenant: str,
        ended: datetime,
        *,
        caller: str | None,
        callee: str,
        direction: str = "outbound",
        talk_s: int = 0,
        ring_s: int = 8,
        user: str | None = None,
        trunk: str | None = None,
        campaign: str | None = None,
    ) -> None:
        """One call leg that ended at ``ended``; answered when ``talk_s`` > 0."""
        started = ended - timedelta(seconds=ring_s + talk_s)
        answered = started + timedelta(seconds=ring_s) if talk_s else None
        self.rows.append(
            {
                "call_id": f"c{len(self.rows)}",
                "tenant_id": tenant,
                "user_id": user,
                "trunk_id": trunk,
                "direction": direction,
                "caller": caller,
                "callee": callee,
                "started_at": _time(started),
                "answered_at": _time(answered) if answered else None,
                "ended_at": _time(ended),
                "duration_s": talk_s,
                "disposition": "answered" if talk_s else "no_answer",
                "campaign": campaign,
            }
        )

    def write(self, path: Path) -> Path:
        """The rows as a callwarden CSV file."""
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(CALL_FIELDS)
            for row in self.rows:
                writer.writerow(
                    ["" if row.get(name) is None else row[name] for name in CALL_FIELDS]
                )
        return path


def abusive_month(seed: int = 3) -> Traffic:
    """Three days of ordinary traffic for t1 (metered), t2 (unlimited) and t3 (GB trunk), with
    abuse injected for nine detectors, rows in time order as a switch writes them."""
    rng = random.Random(seed)
    events: list[tuple[datetime, dict[str, Any]]] = []

    def add(tenant: str, ended: datetime, **kwargs: Any) -> None:
        events.append((ended, {"tenant": tenant, "ended": ended, **kwargs}))

    for minute in range(0, 3 * 24 * 60, 2):
        for tenant in ("t1", "t2", "t3"):
            at = T0 + timedelta(minutes=minute, seconds=rng.randrange(60))
            user = f"{tenant}-u{rng.randrange(10)}"
            own = f"+1332{tenant[1]}55{user[-1]}000"
            remote = f"+1646{rng.randint(2_000_000, 9_999_999)}"
            talk = int(rng.expovariate(1 / 120)) + 1 if rng.random() < 0.4 else 0
            if rng.random() < 0.7:
                add(tenant, at, caller=own, callee=remote, user=user, talk_s=talk, trunk="tr")
            else:
                add(tenant, at, caller=remote, callee=own, direction="inbound", talk_s=talk)
    day1 = T0 + timedelta(hours=2)
    for i in range(260):  # robocall: one caller, short calls, distinct numbers
        add(
            "t1",
            day1 + timedelta(seconds=11 * i),
            caller="+13325550001",
            callee=f"+1718{3_000_000 + 37 * i}",
            talk_s=3 if i % 10 == 0 else 0,
            ring_s=3,
        )
    for i in range(40):  # rotating caller IDs for one user
        add(
            "t1",
            day1 + timedelta(minutes=i),
            caller=f"+1332777{1000 + i}",
            callee=f"+1646{5_000_000 + 91 * i}",
            user="t1-rot",
        )
    for i in range(45):  # SIM box: a trunk of many mobile caller IDs, short uniform calls
        add(
            "t3",
            day1 + timedelta(minutes=i),
            caller=f"+1917{4_000_000 + 17 * (i % 20)}",
            callee=f"+1646{6_000_000 + 53 * i}",
            trunk="gw-1",
            talk_s=30,
        )
    for i in range(6):  # short emergency calls, one from a campaign
        add(
            "t2",
            day1 + timedelta(minutes=5 * i),
            caller="+13322550000",
            callee="911",
            user="t2-e",
            campaign="spring" if i == 5 else None,
        )
    for i in range(12):  # fair use: twelve hours of talk without a break
        add(
            "t2",
            T0 + timedelta(days=1, hours=i + 1),
            caller="+13322559000",
            callee="+16465550123",
            user="t2-long",
            talk_s=3_590,
        )
    for i in range(12):  # IRSF burst to premium-rate numbers
        add(
            "t1",
            day1 + timedelta(hours=5, seconds=20 * i),
            caller="+13321550000",
            callee=f"+1900555{1000 + i}",
            user="t1-u0",
            talk_s=60,
        )
    ring = T0 + timedelta(days=2, hours=1)  # wangiri: a foreign one-ring call, called back
    add("t3", ring, caller="+37167123456", callee="+13323550000", direction="inbound", ring_s=2)
    add("t3", ring + timedelta(minutes=10), caller="+13323550000", callee="+37167123456")
    for i in range(35):  # sequential scan
        add(
            "t1",
            day1 + timedelta(hours=8, seconds=30 * i),
            caller="+13321551000",
            callee=f"+1212555{1000 + i}",
            user="t1-scan",
        )
    for i in range(12):  # pumping: a new number taking long calls from one caller
        add(
            "t3",
            day1 + timedelta(hours=10, minutes=12 * i),
            caller="+13323557000",
            callee="+12125559999",
            user="t3-u7",
            talk_s=600,
        )
    traffic = Traffic()
    for _, kwargs in sorted(events, key=lambda item: item[0]):
        traffic.call(**kwargs)
    return traffic


def setup() -> BackfillSetup:
    """The three tenants' facts, and one high-risk range."""
    return BackfillSetup(
        tenants={
            "t1": TenantFacts("t1", rate_deck=DECK),
            "t2": TenantFacts("t2", plan_id="unlimited", billing=Billing.UNLIMITED, rate_deck=DECK),
            "t3": TenantFacts("t3", rate_deck=DECK),
        },
        high_risk=PrefixList(["37167"]),
    )


def normalised(path: Path) -> list[UsageRecord]:
    """Every record of a callwarden CSV file as ingestion normalises it."""
    with path.open() as lines:
        return [
            record
            for item in split(UsageFormat.CALLWARDEN_CSV, lines)
            for record in normalise(UsageFormat.CALLWARDEN_CSV, item)
        ]


def streamed(path: Path, config: BackfillSetup) -> list[Any]:
    """The reference: every record as ingestion normalises it, through one detector set."""
    records = normalised(path)
    engine = DetectorSet(config.detectors(), config.context(), config.config)
    return engine.observe_all(records)


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated file (about 6,900 calls)."""
    return abusive_month().write(tmp_path_factory.mktemp("backfill") / "month.csv")


@pytest.fixture(scope="module")
def reference(month: Path) -> list[Any]:
    """The streaming detectors' findings over the file."""
    return streamed(month, setup())


def test_the_injected_abuse_is_found_by_the_streaming_detectors(reference: list[Any]) -> None:
    found = {finding.detector for finding in reference}
    assert found >= {
        "robocall",
        "caller_rotation",
        "simbox",
        "emergency",
        "fair_use",
        "irsf",
        "wangiri",
        "sequential",
        "pumping",
    }


def test_backfill_with_the_prescreen_finds_exactly_what_streaming_finds(
    month: Path, reference: list[Any]
) -> None:
    result = backfill_table(read_usage_table(month), setup())
    assert result.findings == reference
    assert result.rejected == 0
    assert result.evicted_keys == 0


def test_the_prescreen_spares_detectors_rows_they_cannot_use(month: Path) -> None:
    screened = backfill_table(read_usage_table(month), setup())
    everything = backfill_table(read_usage_table(month), setup(), prescreen=False)
    assert screened.findings == everything.findings
    seen = {d: s.rows_seen for d, s in screened.summaries.items()}
    all_rows = {d: s.rows_seen for d, s in everything.summaries.items()}
    for detector in (
        "wangiri",
        "pumping",
        "robocall",
        "sequential",
        "fair_use",
        "emergency",
        "caller_rotation",
    ):
        assert seen[detector] < all_rows[detector] / 2, detector
    assert seen["baseline"] == all_rows["baseline"]  # no screen: every call


def test_backfill_in_two_processes_finds_exactly_what_streaming_finds(
    month: Path, reference: list[Any]
) -> None:
    result = backfill_table(read_usage_table(month), setup(), workers=2, min_rows_per_worker=1)
    assert result.processes == 2
    assert result.findings == reference
    assert result.summaries["robocall"].findings == sum(
        1 for finding in reference if finding.detector == "robocall"
    )


def test_rows_the_normaliser_refuses_are_counted_and_judged_by_nobody(tmp_path: Path) -> None:
    traffic = Traffic()
    traffic.call("t1", T0, caller="+13321550000", callee="+16465550100", talk_s=5)
    traffic.call("t1", T0 + timedelta(seconds=5), caller="+13321550000", callee="")
    path = traffic.write(tmp_path / "bad.csv")
    result = backfill_table(read_usage_table(path), setup())
    assert (result.rows, result.rejected, result.findings) == (2, 1, [])


def test_records_built_from_columns_are_the_normalisers_records(
    month: Path, tmp_path: Path
) -> None:
    odd = tmp_path / "odd.csv"
    text = month.read_text().splitlines()
    header = text[0].split(",")
    variants = []
    for n, line in enumerate(text[1:40]):
        cells = line.split(",")
        column = header.index(["started_at", "direction", "duration_s", "source_ip"][n % 4])
        cells[column] = [
            cells[column].replace("Z", ".5+00:00").replace("T", " "),  # fraction, offset
            " " + cells[column].upper() + " ",  # spaces, capitals
            "",  # duration left to the normaliser
            "::FFFF:10.0.0.1" if n % 8 == 3 else "[2001:DB8::1]",  # not canonical
        ][n % 4]
        variants.append(",".join(cells))
    odd.write_text("\n".join([text[0], *text[1:200], *variants]) + "\n")
    for path in (month, odd):
        table = read_usage_table(path)
        cells = [c for c in table.columns if not c.startswith("_")]
        rows = table.with_columns(_mask=1).select(*ROW_COLUMNS, *cells).iter_rows()
        rejected = [0]
        built = [record for _, _, record in records_from_rows(cells, rows, rejected)]
        assert built == normalised(path)
        assert rejected == [0]
    plain = read_usage_table(odd).get_column("_plain")
    assert plain.sum() >= 199  # the generated rows are plain, most variants are not
    assert not plain.all()


def test_a_new_trunk_is_judged_against_the_tenants_first_call_fed(tmp_path: Path) -> None:
    # The tenant's first row is refused as a record, so its first call is the second row, on an
    # office trunk with one caller ID that no screen would keep for itself. Two days later a
    # new trunk presents a different mobile number on each of six outbound calls: a new trunk
    # on a tenant known for more than a day, which the SIM-box detector's early rule flags.
    traffic = Traffic()
    office = "+13323550000"
    traffic.call("t3", T0, caller=office, callee="+16465550100", trunk="office")
    traffic.rows[-1]["duration_s"] = 5  # unanswered with a billable duration: refused
    traffic.call(
        "t3", T0 + timedelta(minutes=1), caller=office, callee="+16465550101", trunk="office"
    )
    for i in range(6):
        traffic.call(
            "t3",
            T0 + timedelta(days=2, minutes=i),
            caller=f"+1917{4_100_000 + 311 * i}",
            callee=f"+1646{6_100_000 + 53 * i}",
            trunk="gw-new",
            talk_s=30,
        )
    path = traffic.write(tmp_path / "new-trunk.csv")
    records: list[UsageRecord] = []
    with path.open() as lines:
        for item in split(UsageFormat.CALLWARDEN_CSV, lines):
            try:
                records += normalise(UsageFormat.CALLWARDEN_CSV, item)
            except UsageError:
                continue  # dead-lettered by ingestion
    config = setup()
    reference = DetectorSet(config.detectors(), config.context(), config.config).observe_all(
        records
    )
    simbox = [(f.key, f.severity.value, f.threshold) for f in reference if f.detector == "simbox"]
    assert simbox == [("gw-new", "low", 5)]
    result = backfill_table(read_usage_table(path), config)
    assert result.rejected == 1
    assert result.findings == reference
