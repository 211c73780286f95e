"""Backfill: every detector over a month of usage at once, with the findings streaming would give.

The streaming detectors (:class:`~callwarden.core.detectors.DetectorSet`) judge one record at a
time. Run over a file, they find what the live stream would have found, but at the speed of
normalising and judging every record. A backfill does three things to go faster without
finding anything else:

1. **Column-wise reading.** The file is read once by polars
   (:mod:`callwarden.adapters.backfill_reader`); records are built (by the streaming
   normaliser, so they are the same records) only for the rows some detector must see.
2. **A conservative pre-screen** (:func:`screen`). For each detector, a row is dropped only when
   the detector provably cannot use it: a record kind or direction the detector returns on at
   once without touching its state, or a key (a caller, a user, a trunk) whose volume in every
   window the rule reads stays below the lowest threshold of any of the rule's levels (early
   ones included) that any policy sets, so that the key can never raise a finding and its state
   affects no other key. What each screen assumes is written
   beside it; a detector without a screen sees every record of its kinds.
3. **Partitions by tenant** across worker processes. Detector state is keyed by tenant, so each
   tenant's records go, in file order, to one worker.

Exactness: the findings equal those of one :class:`DetectorSet` fed every record of the file in
order (tests/services/test_backfill.py holds a generated file with injected abuse to that,
tests/services/test_backfill_simulated.py the simulator's traffic, early rules alone included),
as long as no bounded per-key map overflows (``max_keys``, 50,000 keys per map by default).
When one does, which key is forgotten depends on what else shares the map, as it does between
the workers of a scaled-out stream; the result counts the keys dropped so that it can be seen.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import polars as pl

from callwarden.core.detectors import (
    DetectorConfig,
    DetectorContext,
    DetectorFinding,
    DetectorSet,
    TenantFacts,
    default_detectors,
)
from callwarden.core.detectors.base import Detector
from callwarden.core.detectors.windows import LruMap
from callwarden.core.model import Billing
from callwarden.core.numbering import default_numbering_plan
from callwarden.core.prefixes import PrefixList
from callwarden.core.usage.record import (
    CallRecord,
    Direction,
    Disposition,
    UsageError,
    UsageFormat,
    UsageRecord,
)
from callwarden.core.usage.schema import from_text_fields

__all__ = [
    "PLAIN",
    "ROW_COLUMNS",
    "BackfillResult",
    "BackfillSetup",
    "DetectorSummary",
    "backfill_records",
    "backfill_table",
    "judge",
    "records_from_rows",
    "screen",
]

AnyDetector = Detector[Any]
Progress = Callable[[int], None]
"""Told how many more rows were judged (or screened out) since the last call."""

_CHUNK: Final[int] = 20_000
#: The columns the pre-screen reads (absent ones are read as empty).
_SCREENED: Final[tuple[str, ...]] = (
    "user_id",
    "trunk_id",
    "source_ip",
    "direction",
    "caller",
    "callee",
    "answered_at",
    "disposition",
    "sender",
    "recipient",
)


@dataclass(frozen=True)
class BackfillSetup:
    """What the detectors need besides the records: the tenants' facts, the operator's
    high-risk list, the policies in force, and which detectors (a picklable factory, since
    each worker process builds its own).
    """

    tenants: Mapping[str, TenantFacts] = field(default_factory=dict)
    high_risk: PrefixList = field(default_factory=PrefixList)
    config: DetectorConfig = field(default_factory=DetectorConfig)
    default_country: str = "US"
    detectors: Callable[[], Sequence[AnyDetector]] = default_detectors

    def context(self) -> DetectorContext:
        """A fresh detector context with these facts."""
        return DetectorContext(
            default_numbering_plan(),
            high_risk=self.high_risk,
            tenants=self.tenants,
            default_country=self.default_country,
        )


@dataclass
class DetectorSummary:
    """What one detector saw and found over the file."""

    detector: str
    rows_seen: int = 0
    findings: int = 0
    by_severity: Counter[str] = field(default_factory=Counter)


@dataclass
class BackfillResult:
    """The findings of a backfill in stream order, with what it cost."""

    findings: list[DetectorFinding]
    rows: int
    rows_judged: int
    rejected: int
    evicted_keys: int
    seconds: float
    summaries: dict[str, DetectorSummary]
    processes: int = 0
    """Worker processes that judged the rows (0: this process did)."""

    @property
    def rate(self) -> float:
        """Rows per second, reading included."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


# -- the pre-screen ---------------------------------------------------------------------------


def _params(detector: AnyDetector, config: DetectorConfig) -> list[Any]:
    """The detector's own parameters and every policy's for it: whatever any tenant runs."""
    found: list[Any] = [detector.params]
    for _, detector_id, policy in config.all_policies():
        if detector_id == detector.id and policy.params is not None:
            found.append(policy.params)
    return found


def _least(detector: AnyDetector, config: DetectorConfig, family: str) -> float:
    """The lowest count threshold of one of the detector's rules: the least value, over the
    detector's own parameters and every policy's, of every parameter named ``family`` or
    ending in ``_family`` (``clis`` takes ``early_clis``, ``warn_clis`` and ``high_clis``).

    Taking the whole family rather than one named field keeps a screen conservative when a rule
    gains an earlier, lower threshold named in the same way. Raises ``ValueError`` when the
    detector has no such parameter: the screen was written for parameters it no longer has.
    """
    names = [
        item.name
        for item in fields(detector.params)
        if item.name == family or item.name.endswith(f"_{family}")
    ]
    if not names:
        raise ValueError(f"{detector.id}: no parameter of the family {family!r} to screen by")
    return float(
        min(getattr(params, name) for params in _params(detector, config) for name in names)
    )


def _most(detector: AnyDetector, config: DetectorConfig, name: str) -> float:
    """The highest value of parameter ``name`` over the detector's and every policy's."""
    return float(max(getattr(params, name) for params in _params(detector, config)))


def _text(name: str) -> pl.Expr:
    value = pl.col(name).str.strip_chars()
    return pl.when(value == "").then(None).otherwise(value)


def _key(*parts: pl.Expr) -> pl.Expr:
    """One 64-bit hash of several columns: the screens' grouping key. Two keys that collide
    are counted together, which can only count more, never less."""
    return pl.struct(*parts).hash(0x5EED)


def _first_set(
    frame: pl.DataFrame, names: Sequence[str], tenant: pl.Expr, *, tagged: bool = False
) -> pl.Expr:
    """The state key a detector's ``key_for`` picks: (tenant, the first non-empty field, else
    the tenant). ``tagged`` adds which field it was, for the detectors whose state keys carry
    the key's kind (a trunk and an address of the same name stay apart); without it, equal
    values of different fields share a key, as they share the detector's state."""
    key = pl.concat_str([pl.lit("t:"), tenant]) if tagged else tenant
    for position in range(len(names) - 1, -1, -1):
        if names[position] not in frame.columns:
            continue
        value = _text(names[position])
        if names[position] == "source_ip":
            # The normaliser writes IPv6 addresses canonically; one key for all of a tenant's
            # IPv6 addresses can only count more, never less.
            value = pl.when(value.str.contains(r"[:\[]")).then(pl.lit("ipv6")).otherwise(value)
        if tagged:
            value = pl.lit(f"{position}:") + value
        key = pl.when(value.is_not_null()).then(value).otherwise(key)
    return _key(tenant, key)


def _last_digits(number: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(the last 7 digits as a number, clean) of a dialled number as written.

    For a number written as digits only (an optional '+', 7 to 15 digits), reading it as
    E.164 only strips or rewrites leading digits (international and trunk prefixes, a country
    code), so its E.164 form ends with the same 7 digits. Other numbers are not clean: a screen
    treats them as matching anything.
    """
    clean = number.str.contains(r"^\+?[0-9]{7,15}$").fill_null(False)
    last = number.str.slice(-7).cast(pl.Int64, strict=False)
    return pl.when(clean).then(last).otherwise(None), clean


def _near_keys(
    frame: pl.DataFrame, rows: pl.Expr, key: pl.Expr, number: pl.Expr, step: int
) -> pl.Expr:
    """True for rows whose key dialled two numbers whose last 7 digits differ by 1 to
    ``step`` (modulo 10**7, so 9999999 and 0000001 are neighbours), or any number that is not
    clean (:func:`_last_digits`)."""
    last, clean = _last_digits(number)
    sub = frame.filter(rows).select(_key=key, _v=last, _clean=clean)
    unclean = sub.filter(~pl.col("_clean")).get_column("_key").unique()
    values = sub.filter(pl.col("_clean")).select("_key", "_v").unique()
    near = [unclean]
    for offset in range(1, step + 1):
        moved = values.with_columns(_v=(pl.col("_v") + offset) % 10_000_000)
        near.append(values.join(moved, on=["_key", "_v"], how="inner").get_column("_key"))
    return key.is_in(pl.concat(near).unique().implode())


def _hot_keys(
    frame: pl.DataFrame,
    rows: pl.Expr,
    key: pl.Expr,
    threshold: float,
    distinct: pl.Expr | None,
    *,
    total: pl.Expr | None = None,
) -> pl.Expr:
    """True for rows whose key can reach ``threshold`` in some window of 60 minutes or less.

    A 60-minute window (60 one-minute buckets, however late events arrive), like a 15-minute
    one (30 buckets of 30 seconds) or a 5-minute one, lies within two consecutive clock hours,
    so the count of rows (or, with ``distinct``, the sum of per-hour
    distinct values, at least the distinct values of the two hours together; or, with
    ``total``, the sum of that value) over hours H-1 and H bounds every window whose newest
    bucket is in H. A key with a row of unknown time (or value) is hot.
    """
    if distinct is not None:
        value, measure = distinct, pl.col("_v").n_unique()
    elif total is not None:
        value, measure = total, pl.col("_v").sum()
    else:
        value, measure = pl.lit(1), pl.len()
    sub = frame.filter(rows).select(_key=key, _hour=(pl.col("_at") // 3600), _v=value)
    unknown = sub.filter(
        pl.col("_hour").is_null() | (pl.col("_v").is_null() if total is not None else False)
    ).get_column("_key")
    per_hour = (
        sub.filter(pl.col("_hour").is_not_null())
        .group_by("_key", "_hour")
        .agg(_n=measure.cast(pl.Float64))
    )
    before = per_hour.select("_key", _hour=pl.col("_hour") + 1, _prev=pl.col("_n"))
    pairs = per_hour.join(before, on=["_key", "_hour"], how="full", coalesce=True).select(
        "_key", _pair=pl.col("_n").fill_null(0) + pl.col("_prev").fill_null(0)
    )
    hot = pairs.filter(pl.col("_pair") >= threshold).get_column("_key").unique()
    return key.is_in(pl.concat([hot, unknown]).unique().implode())


def screen(
    frame: pl.DataFrame, detectors: Sequence[AnyDetector], setup: BackfillSetup
) -> pl.Series:
    """For each row, a bit per detector (bit i for ``detectors[i]``) set when that detector
    must see the row for its findings to be exact; 0 when no detector needs it.

    Rows of no known kind are given to every detector (they will be refused as records).
    """
    config = setup.config
    missing = [name for name in _SCREENED if name not in frame.columns]
    if missing:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(name) for name in missing)
    tenant = pl.col("_tenant")
    kind = pl.col("_kind")
    call = kind == "call"
    direction = _text("direction").str.to_lowercase()
    outbound = (direction == "outbound").fill_null(False)
    inbound = (direction == "inbound").fill_null(False)
    unknown_kind = kind.is_null() | ~kind.is_in(["call", "message", "login"])
    consent = [t for t, f in setup.tenants.items() if f.sim_box_consent]
    unlimited = [t for t, f in setup.tenants.items() if f.billing is Billing.UNLIMITED]
    caller = _text("caller")
    callee = _text("callee")
    masks: list[pl.Expr] = []
    for bit, detector in enumerate(detectors):
        kinds = pl.lit(False)
        for name in detector.kinds:
            kinds = kinds | (kind == name.value)
        need = _needs(frame, detector, config, call, outbound, inbound, tenant, caller, callee)
        if detector.id == "simbox" and consent:
            need = need & ~tenant.is_in(consent)
        if detector.id == "fair_use":
            need = need & tenant.is_in(unlimited)
        wanted = (kinds & need) | unknown_kind
        masks.append(pl.when(wanted).then(pl.lit(1 << bit, dtype=pl.UInt32)).otherwise(0))
    total = pl.sum_horizontal(masks) if masks else pl.lit(0, dtype=pl.UInt32)
    return frame.select(_mask=total.cast(pl.UInt32)).get_column("_mask")


def _needs(
    frame: pl.DataFrame,
    detector: AnyDetector,
    config: DetectorConfig,
    call: pl.Expr,
    outbound: pl.Expr,
    inbound: pl.Expr,
    tenant: pl.Expr,
    caller: pl.Expr,
    callee: pl.Expr,
) -> pl.Expr:
    """The rows ``detector`` must see, by the rule it implements (see each branch)."""
    which = detector.id
    if which == "irsf":
        # observe() returns at once for anything but an outbound call.
        return call & outbound
    if which == "wangiri":
        # Inbound calls matter only when one-ring (not answered, rang under ring_s: they are
        # remembered for call-backs). An outbound call matters when its caller (else user, else
        # tenant) can reach origin_attempts attempts in 60 minutes, or when it may be a
        # call-back: its number ends like a one-ring caller's of the same tenant (or either
        # number is not clean, see _last_digits).
        ring = pl.col("_ended") - pl.col("_started")
        answered = _text("disposition").str.to_lowercase() == "answered"
        one_ring = (
            call
            & inbound
            & ~answered.fill_null(False)
            & (ring.is_null() | (ring < _most(detector, config, "ring_s"))).fill_null(True)
        )
        # (The call-back count of a tenant only sets a call-back finding's severity: every
        # call-back candidate is kept.)
        rows = call & outbound
        key = _first_set(frame, ["caller", "user_id"], tenant)
        origin = _hot_keys(frame, rows, key, _least(detector, config, "attempts"), None)
        return one_ring | (rows & (origin | _callback_candidates(frame, one_ring, rows)))
    if which == "robocall":
        # Outbound calls only; a finding needs min_attempts (the least of the *_attempts
        # parameters) attempts of one caller (else user, else tenant) within 60 minutes.
        key = _first_set(frame, ["caller", "user_id"], tenant)
        rows = call & outbound
        hot = _hot_keys(frame, rows, key, _least(detector, config, "attempts"), None)
        return rows & hot
    if which == "caller_rotation":
        # Outbound calls with a caller ID; a finding needs early_clis distinct caller IDs of
        # one user (else trunk, else address, else tenant) within 15 minutes, or warn_clis
        # within 60 minutes: the least of the *_clis parameters within 60 minutes or less.
        key = _first_set(frame, ["user_id", "trunk_id", "source_ip"], tenant)
        rows = call & outbound & caller.is_not_null()
        hot = _hot_keys(frame, rows, key, _least(detector, config, "clis"), caller)
        return rows & hot
    if which == "simbox":
        # Every call of a trunk (else address, else tenant) counts; a finding needs
        # early_mobile_clis (new trunk) or min_mobile_clis distinct mobile caller IDs on its
        # outbound calls within 60 minutes: the least of the *_mobile_clis parameters. The
        # new-trunk rule also reads when the tenant's first call was fed to the detector, which
        # any call of the tenant may be (the calls before it may be refused as records, or
        # allowlisted): so every call of a tenant with such a trunk is kept, and only the
        # tenants with none are screened out.
        key = _first_set(frame, ["trunk_id", "source_ip"], tenant, tagged=True)
        outgoing = call & outbound & caller.is_not_null()
        hot = _hot_keys(frame, outgoing, key, _least(detector, config, "mobile_clis"), caller)
        tenants = frame.filter(outgoing & hot).get_column("_tenant").unique()
        return call & tenant.is_in(tenants.implode())
    if which == "emergency":
        # Outbound calls to an emergency number only. A number written with '+' is never an
        # emergency number to the numbering plan; the admission test's other forms are tried
        # only up to 12 characters, and with a '+' only as "+<country code>" and 2 to 6 digits
        # (at most 10 characters once separators are removed). So a '+' number longer than
        # 12 characters, or of 11 or more with nothing but digits after the '+', is never one.
        never = (callee.str.starts_with("+") & (callee.str.len_chars() > 12)) | (
            callee.str.contains(r"^\+[0-9]{10,}$")
        )
        return call & outbound & ~never.fill_null(False)
    if which == "fair_use":
        # Answered calls (of unlimited plans: applied by the caller of this function).
        return call & _text("answered_at").is_not_null()
    if which == "pumping":
        return _pumping(frame, detector, config, call, outbound, tenant, callee)
    if which == "sequential":
        # Outbound calls and messages; a run of two or more needs two numbers within max_step
        # of each other dialled by one user (else caller, else tenant). A source that never
        # dialled such a pair only ever starts runs of one, which raise nothing whatever the
        # run thresholds (early_run, warn_run, block_run): the detector returns on a run of
        # one before reading them.
        key = _first_set(frame, ["user_id", "caller", "sender"], tenant)
        number = pl.coalesce(callee, _text("recipient"))
        step = int(_most(detector, config, "max_step"))
        return outbound & _near_keys(frame, outbound, key, number, step)
    # baseline and any other detector: every record of its kinds.
    return pl.lit(True)


def _pumping(
    frame: pl.DataFrame,
    detector: AnyDetector,
    config: DetectorConfig,
    call: pl.Expr,
    outbound: pl.Expr,
    tenant: pl.Expr,
    callee: pl.Expr,
) -> pl.Expr:
    """The calls the pumping detector must see.

    Sudden volume: a number's finding needs early_number_calls (medium) or new_number_calls
    (high) answered calls, the least of the *_number_calls parameters, and new_number_minutes
    minutes on it; the detector keeps one state per (tenant, number) for both directions, so
    every call to a number that can reach both, counted over the whole file on the last 7
    digits (several numbers may share them: that only counts more), is kept.
    Concentration: a finding needs early_range_minutes (medium) or min_range_minutes answered
    minutes, the least of the *_range_minutes parameters, on one range (the first
    range_digits E.164 digits) within 60 minutes, measured against all the tenant's minutes;
    for a tenant where one range can reach that (or whose numbers are not all written in
    E.164), every outbound answered call is kept. Ranges are cut at the fewest range_digits any
    policy sets: a shorter range holds every longer one within it, so it only counts more.
    """
    duration = _text("duration_s").cast(pl.Float64, strict=False)
    minutes = duration / 60
    answered = _text("answered_at").is_not_null()
    last, clean = _last_digits(callee)
    number = _key(tenant, last)
    talk = (
        frame.filter(call & answered)
        .group_by(number.alias("_k"))
        .agg(_calls=pl.len(), _minutes=minutes.sum(), _unknown=minutes.is_null().any())
    )
    busy = talk.filter(
        (
            (pl.col("_calls") >= _least(detector, config, "number_calls"))
            & (pl.col("_minutes") >= _least(detector, config, "number_minutes"))
        )
        | pl.col("_unknown")
    ).get_column("_k")
    sudden = ~clean | number.is_in(busy.implode()).fill_null(False)
    digits = int(_least(detector, config, "range_digits"))
    e164 = callee.str.contains(r"^\+[0-9]{7,15}$").fill_null(False)
    spoken = call & outbound & answered
    prefix = _key(tenant, callee.str.slice(1, digits))
    hot_range = _hot_keys(
        frame,
        spoken & e164,
        prefix,
        _least(detector, config, "range_minutes"),
        None,
        total=minutes,
    )
    unwritten = frame.filter(spoken & ~e164).get_column("_tenant").unique()
    ranged = frame.filter(spoken & e164 & hot_range).get_column("_tenant").unique()
    concentrated = tenant.is_in(pl.concat([unwritten, ranged]).unique().implode())
    return call & (sudden | (spoken & concentrated))


def _callback_candidates(frame: pl.DataFrame, one_ring: pl.Expr, outgoing: pl.Expr) -> pl.Expr:
    """Outbound calls that may call back a one-ring caller of the same tenant: the last 7
    digits match (or a number is not clean, and then every outbound call of the tenant may)."""
    caller_last, caller_clean = _last_digits(_text("caller"))
    callee_last, callee_clean = _last_digits(_text("callee"))
    rang = frame.filter(one_ring).select(
        "_tenant", _v=caller_last, _clean=caller_clean & _text("caller").is_not_null()
    )
    unclean = rang.filter(~pl.col("_clean")).get_column("_tenant").unique()
    numbers = rang.filter(pl.col("_clean")).select(_k=_key(pl.col("_tenant"), pl.col("_v")))
    dialled = _key(pl.col("_tenant"), callee_last)
    return (
        pl.col("_tenant").is_in(unclean.implode())
        | ~callee_clean
        | dialled.is_in(numbers.get_column("_k").unique().implode()).fill_null(False)
    )


# -- running the detectors ---------------------------------------------------------------------


PLAIN: Final[tuple[str, ...]] = ("_plain", "_started_us", "_answered_us", "_ended_us")
"""The columns a table reader adds for the record builder: whether the row is in the plain
form, and its start, answer and end in epoch microseconds (see
:mod:`callwarden.adapters.backfill_reader`)."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DIRECTIONS: Final = {member.value: member for member in Direction}
_DISPOSITIONS: Final = {member.value: member for member in Disposition}
_SOURCE_FORMAT: Final = UsageFormat.CALLWARDEN_CSV.value
ROW_COLUMNS: Final[tuple[str, ...]] = ("_row", "_mask", *PLAIN)
"""The columns before the cells in the rows :func:`records_from_rows` reads."""


def _plain_call(
    cells: Sequence[str | None],
    index: Mapping[str, int],
    started_us: int,
    answered_us: int | None,
    ended_us: int | None,
) -> CallRecord:
    """The record of a row in the plain form (``_plain``), built from its cells and times as
    the normaliser builds it (same trimming, defaults and checks), without parsing text."""

    def text(name: str) -> str | None:
        position = index.get(name)
        value = cells[position] if position is not None else None
        return (value.strip() or None) if value else None

    cost = text("cost_minor")
    currency = text("currency")
    attestation = text("attestation")
    return CallRecord(
        call_id=text("call_id") or "",
        leg=text("leg") or "a",
        tenant_id=text("tenant_id"),
        user_id=text("user_id"),
        trunk_id=text("trunk_id"),
        source_ip=text("source_ip"),
        direction=_DIRECTIONS[(text("direction") or "").lower()],
        caller=text("caller"),
        callee=text("callee") or "",
        started_at=_EPOCH + timedelta(microseconds=started_us),
        answered_at=None if answered_us is None else _EPOCH + timedelta(microseconds=answered_us),
        ended_at=None if ended_us is None else _EPOCH + timedelta(microseconds=ended_us),
        duration_s=int(text("duration_s") or ""),
        disposition=_DISPOSITIONS[(text("disposition") or "").lower()],
        cost_minor=None if cost is None else int(cost),
        currency=None if currency is None else currency.upper(),
        campaign=text("campaign"),
        attestation=None if attestation is None else attestation.upper(),
        source_format=text("source_format") or _SOURCE_FORMAT,
    )


def records_from_rows(
    header: Sequence[str], rows: Iterable[tuple[Any, ...]], rejected: list[int]
) -> Iterator[tuple[int, int, UsageRecord]]:
    """(row, mask, record) for each row a record can be made of; ``rejected[0]`` counts the
    rest (the rows ingestion would have dead-lettered).

    Each row holds the :data:`ROW_COLUMNS`, then the cells of ``header``. A row in the plain
    form becomes its record straight from its cells; any other row goes through the streaming
    normaliser, so every record is the one ingestion would have stored.
    """
    index = {name: position for position, name in enumerate(header)}
    skip = len(ROW_COLUMNS)
    for values in rows:
        row, mask, plain, started_us, answered_us, ended_us = values[:skip]
        cells = values[skip:]
        try:
            if plain:
                record: UsageRecord = _plain_call(cells, index, started_us, answered_us, ended_us)
            else:
                record = from_text_fields(header, ["" if v is None else v for v in cells])
        except UsageError:
            rejected[0] += 1
            continue
        yield row, mask, record


def _evicted(detectors: Sequence[AnyDetector]) -> int:
    """Keys dropped from the detectors' bounded maps (and their dedup maps)."""
    total = 0
    for detector in detectors:
        for value in vars(detector).values():
            maps = value.values() if isinstance(value, dict) else (value,)
            total += sum(m.evicted for m in maps if isinstance(m, LruMap))
    return total


def judge(
    setup: BackfillSetup,
    records: Iterable[tuple[int, int, UsageRecord]],
    progress: Progress | None = None,
) -> tuple[list[tuple[int, int, DetectorFinding]], int, dict[str, int]]:
    """Feed (row, mask, record) in order to a fresh detector set: each record only to the
    detectors its mask names (bit i for detector i).

    Returns the findings tagged with (row, detector position), the keys evicted from the
    detectors' bounded maps, and the records each detector saw.
    """
    detectors = list(setup.detectors())
    engine = DetectorSet(detectors, setup.context(), setup.config)
    everyone = (1 << len(detectors)) - 1
    order = {detector.id: i for i, detector in enumerate(detectors)}
    found: list[tuple[int, int, DetectorFinding]] = []
    seen = [0] * len(detectors)
    done = 0
    for row, mask, record in records:
        if mask == everyone:
            findings = engine.observe(record)
            seen = [n + 1 for n in seen]
        else:
            findings = engine.observe(record, mask)
            for i in range(len(detectors)):
                if mask >> i & 1:
                    seen[i] += 1
        if findings:
            found.extend((row, order[f.detector], f) for f in findings)
        done += 1
        if progress is not None and done % _CHUNK == 0:
            progress(_CHUNK)
    if progress is not None:
        progress(done % _CHUNK)
    counts = {d.id: n for d, n in zip(detectors, seen, strict=True)}
    return found, _evicted(detectors), counts


_Judged = tuple[list[tuple[int, int, DetectorFinding]], int, int, dict[str, int]]
"""What one partition gives back: tagged findings, refused rows, evicted keys, rows seen."""


def _judge_rows(
    setup: BackfillSetup,
    header: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
    progress: Progress | None = None,
) -> _Judged:
    """Judge rows of (row, mask, the cells of ``header``), normalising each into a record."""
    rejected = [0]
    found, evicted, seen = judge(setup, records_from_rows(header, rows, rejected), progress)
    return found, rejected[0], evicted, seen


def _work(setup: BackfillSetup, path: str, header: Sequence[str]) -> _Judged:
    """One worker process: judge the rows of one partition (an Arrow IPC file).

    The process exists for this alone, so the cyclic garbage collector is switched off: the
    detectors' state holds no reference cycles, and collections would walk every window of
    every key again and again as the state grows (a quarter of the time).
    """
    gc.disable()
    part = pl.read_ipc(path)
    return _judge_rows(setup, header, part.iter_rows())


def _partition(tenants: pl.Series, workers: int) -> list[list[str]]:
    """Tenants in ``workers`` groups of about equal rows (largest first, to the lightest)."""
    counts = tenants.value_counts(sort=True)
    groups: list[list[str]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for tenant_id, count in counts.iter_rows():
        lightest = loads.index(min(loads))
        groups[lightest].append(tenant_id)
        loads[lightest] += count
    return [group for group in groups if group]


def backfill_table(
    frame: pl.DataFrame,
    setup: BackfillSetup,
    *,
    workers: int = 1,
    prescreen: bool = True,
    progress: Progress | None = None,
    started: float | None = None,
    min_rows_per_worker: int = _CHUNK,
) -> BackfillResult:
    """Run every detector over ``frame`` (read by ``read_usage_table``) and return the
    findings in the order a single stream would raise them: by row, then detector order.

    ``prescreen`` off gives every detector every record of its kinds (the reference the
    pre-screen is tested against). ``workers`` above 1 splits the tenants across that many
    processes (not for fewer than ``min_rows_per_worker`` rows each: starting a process costs
    about a second).
    """
    begun = time.perf_counter() if started is None else started
    detectors = list(setup.detectors())
    header = [c for c in frame.columns if not c.startswith("_")]
    if prescreen:
        mask = screen(frame, detectors, setup)
    else:
        mask = pl.Series("_mask", [(1 << len(detectors)) - 1] * frame.height, dtype=pl.UInt32)
    kept = frame.select("_row", "_tenant", *PLAIN, *header).with_columns(_mask=mask)
    kept = kept.filter(pl.col("_mask") != 0).select(*ROW_COLUMNS, "_tenant", *header)
    if progress is not None:
        progress(frame.height - kept.height)
    processes = 0
    if workers <= 1 or kept.height < workers * min_rows_per_worker:
        results = [_judge_rows(setup, header, kept.drop("_tenant").iter_rows(), progress)]
    else:
        results = _in_processes(kept, header, setup, workers, progress)
        processes = len(results)
    result = _result(detectors, results, frame.height, kept.height, begun)
    result.processes = processes
    return result


def _result(
    detectors: Sequence[AnyDetector],
    results: Sequence[_Judged],
    rows: int,
    judged: int,
    begun: float,
) -> BackfillResult:
    """The partitions' findings merged into stream order (row, then detector), summarised."""
    tagged = [item for result in results for item in result[0]]
    tagged.sort(key=lambda item: (item[0], item[1]))
    findings = [finding for _, _, finding in tagged]
    summaries = {d.id: DetectorSummary(d.id) for d in detectors}
    for result in results:
        for detector_id, count in result[3].items():
            summaries[detector_id].rows_seen += count
    for finding in findings:
        summary = summaries[finding.detector]
        summary.findings += 1
        summary.by_severity[finding.severity.value] += 1
    return BackfillResult(
        findings=findings,
        rows=rows,
        rows_judged=judged,
        rejected=sum(result[1] for result in results),
        evicted_keys=sum(result[2] for result in results),
        seconds=time.perf_counter() - begun,
        summaries=summaries,
    )


def backfill_records(
    records: Iterable[UsageRecord], setup: BackfillSetup, *, rejected: int = 0
) -> BackfillResult:
    """Every detector over records already normalised (the formats without a column
    reader), in order, in this process, with the same summary as :func:`backfill_table`."""
    begun = time.perf_counter()
    detectors = list(setup.detectors())
    everyone = (1 << len(detectors)) - 1
    listed = list(records)
    found, evicted, seen = judge(setup, ((i, everyone, r) for i, r in enumerate(listed)))
    results: list[_Judged] = [(found, rejected, evicted, seen)]
    return _result(detectors, results, len(listed) + rejected, len(listed), begun)


def _in_processes(
    kept: pl.DataFrame,
    header: Sequence[str],
    setup: BackfillSetup,
    workers: int,
    progress: Progress | None,
) -> list[_Judged]:
    """Judge each tenant group in its own process (spawned: polars' threads and fork do not
    mix), handing it its rows as an Arrow IPC file."""
    groups = _partition(kept.get_column("_tenant"), workers)
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="callwarden-backfill-") as folder:
        paths: list[tuple[str, int]] = []
        for index, group in enumerate(groups):
            part = kept.filter(pl.col("_tenant").is_in(group)).drop("_tenant")
            path = os.path.join(folder, f"part-{index}.arrow")
            part.write_ipc(path)
            paths.append((path, part.height))
        with spawn.Pool(len(paths)) as pool:
            pending = [
                (pool.apply_async(_work, (setup, path, list(header))), rows) for path, rows in paths
            ]
            results = []
            for handle, rows in pending:
                results.append(handle.get())
                if progress is not None:
                    progress(rows)
    return results
