"""Reading a callwarden CSV usage file column-wise, for the backfill.

The streaming path cuts a file into rows and normalises each one into a record (about 22 µs a
row). A backfill first needs to know, for a whole month at once, which rows can matter to which
detector; that is a question about columns (who called, when, which way), which polars answers
for millions of rows in parallel, in native code. :func:`read_usage_table` reads every cell as
text, exactly as the file holds it, and adds the few derived columns the pre-screen reads.

The derived columns are conservative by construction: a time stamp the reader cannot parse with
certainty (a local time in a zone other than UTC, an unusual form) is left null, and the
pre-screen keeps every row of a key with a null time. Records themselves are always built later
by the same normaliser as the streaming path
(:func:`callwarden.core.usage.schema.from_text_fields`), so a record of the backfill is exactly
the record ingestion would have stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import polars as pl

from callwarden.core.usage.fields import MAX_TEXT
from callwarden.core.usage.schema import CALL_FIELDS, LOGIN_FIELDS, MESSAGE_FIELDS
from callwarden.services.backfill import PLAIN

__all__ = ["DERIVED", "plain_bytes", "read_usage_table", "unknown_columns"]

#: Epoch seconds written as a number: read as such (the normaliser does the same).
_EPOCH: Final[str] = r"^[0-9]+(\.[0-9]+)?$"
_COLUMNS: Final[frozenset[str]] = frozenset((*CALL_FIELDS, *MESSAGE_FIELDS, *LOGIN_FIELDS, "kind"))

DERIVED: Final[tuple[str, ...]] = (
    "_row",
    "_kind",
    "_tenant",
    "_at",
    "_started",
    "_ended",
    "_plain",
    "_started_us",
    "_answered_us",
    "_ended_us",
)
"""The columns :func:`read_usage_table` adds: the row's position in the file (0-based), its
record kind (``call``, ``message``, ``login`` or null when the row does not say), its tenant id
("" for none), and its event time, a call's start and end in epoch seconds (null when unknown
or not parsed).

``_plain`` marks a call row written in the plain form (every cell printable ASCII of at most
255 characters, times as ISO 8601 UTC with no fraction or 3 or 6 digits of one, whole numbers
as digits, an IPv4 address in canonical form or none, known direction and disposition words):
for such a row the record can be built straight from these columns (``_started_us``,
``_answered_us`` and ``_ended_us`` hold its times in epoch microseconds) and is the very
record the normaliser would build. Any other row is left to the normaliser."""

_PLAIN_TIME: Final[str] = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.(\d{3}|\d{6}))?(Z|[+-]00:00)$"
_PLAIN_LOCAL_TIME: Final[str] = (
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.(\d{3}|\d{6}))?(Z|[+-]00:00)?$"
)
_OCTET: Final[str] = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_PLAIN_IPV4: Final[str] = rf"^{_OCTET}(\.{_OCTET}){{3}}$"
_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "direction": ("inbound", "outbound"),
    "disposition": ("answered", "no_answer", "busy", "failed", "cancelled"),
}


def _text(frame: pl.DataFrame, name: str) -> pl.Expr:
    """A column's trimmed text, null when blank or absent from the file."""
    if name not in frame.columns:
        return pl.lit(None, dtype=pl.String)
    value = pl.col(name).str.strip_chars()
    return pl.when(value == "").then(None).otherwise(value)


_TIMES: Final[tuple[str, ...]] = ("started_at", "answered_at", "ended_at", "sent_at", "at")


def _time_columns(frame: pl.DataFrame, utc_default: bool) -> list[list[pl.Expr]]:
    """For each time column of the file, ``_us_<name>`` (epoch microseconds of the ISO 8601
    forms, exact; else null), ``_iso_<name>`` (the cell is empty or in a plain form) and
    ``_s_<name>`` (epoch seconds of the plain forms and of numbers; else null), in stages
    that each materialise what the next one reads (so nothing is parsed twice).

    A number is read as epoch seconds even in forms the normaliser refuses: such rows are
    never judged, and a screen counting them only counts more.
    """
    pattern = _PLAIN_LOCAL_TIME if utc_default else _PLAIN_TIME
    names = [name for name in _TIMES if name in frame.columns]
    first = [pl.col(name).str.strip_chars().alias(f"_t_{name}") for name in names]
    second: list[pl.Expr] = []
    third: list[pl.Expr] = []
    for name in names:
        text = pl.col(f"_t_{name}")
        seconds = (
            text.str.slice(0, 19)
            .str.replace(" ", "T", literal=True)
            .str.to_datetime("%Y-%m-%dT%H:%M:%S", time_unit="us", strict=False)
            .dt.epoch("us")
        )
        fraction = text.str.extract(r"\.(\d{1,6})", 1).str.pad_end(6, "0").cast(pl.Int64)
        iso = text.str.contains(pattern) & seconds.is_not_null()
        second += [
            pl.when(iso).then(seconds + fraction.fill_null(0)).otherwise(None).alias(f"_us_{name}"),
            (text.is_null() | (text == "") | iso).fill_null(False).alias(f"_iso_{name}"),
        ]
        third.append(
            pl.coalesce(
                pl.col(f"_us_{name}").cast(pl.Float64) / 1_000_000,
                text.cast(pl.Float64, strict=False),
            ).alias(f"_s_{name}")
        )
    return [first, second, third]


def _seconds(frame: pl.DataFrame, name: str) -> pl.Expr:
    """Epoch seconds of a time column (see :func:`_time_columns`)."""
    if name not in frame.columns:
        return pl.lit(None, dtype=pl.Float64)
    return pl.col(f"_s_{name}")


#: Bytes a file of plain cells may hold: printable ASCII except the double quote, and the
#: line feed (then every line is one row and no cell holds anything else).
_PLAIN_BYTES: Final[bytes] = bytes(b for b in range(0x20, 0x7F) if b != ord('"')) + b"\n"
_CHUNK: Final[int] = 1 << 23


def plain_bytes(path: Path) -> bool:
    """True when the file holds only printable ASCII (no double quote) and line feeds: one
    pass in native code (``bytes.translate``) that spares a check of every cell."""
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            if chunk.translate(None, _PLAIN_BYTES):
                return False
    return True


def _plain(frame: pl.DataFrame, kind: pl.Expr, ascii_file: bool) -> list[pl.Expr]:
    """The ``_plain`` flag and the times in microseconds (see :data:`DERIVED`)."""
    names = frame.columns
    if (
        set(names) - {*CALL_FIELDS, "kind"}
        or len(set(names)) != len(names)
        or not {"duration_s", "disposition", "started_at"} <= set(names)
    ):
        never = pl.lit(False)
        return [never.alias("_plain")] + [pl.lit(None, dtype=pl.Int64).alias(n) for n in PLAIN[1:]]
    cells = [pl.col(name).fill_null("") for name in names]
    plain = (kind == "call") & _text(frame, "call_id").is_not_null()
    plain = plain & _text(frame, "callee").is_not_null()
    if not ascii_file:
        plain = plain & ~pl.concat_str(cells, separator=" ").str.contains(r"[^\x20-\x7e]")
    plain = plain & (pl.max_horizontal([c.str.len_bytes() for c in cells]) <= MAX_TEXT)
    for name, words in _WORDS.items():
        word = _text(frame, name).str.to_lowercase()
        plain = plain & (word.is_null() | word.is_in(words))
    plain = plain & _text(frame, "disposition").is_not_null()
    plain = plain & _text(frame, "duration_s").str.contains(r"^[0-9]{1,15}$")
    if "cost_minor" in names:
        plain = plain & _text(frame, "cost_minor").fill_null("0").str.contains(r"^[0-9]{1,15}$")
    if "currency" in names:
        plain = plain & _text(frame, "currency").fill_null("USD").str.contains(r"^[A-Za-z]{3}$")
    if "attestation" in names:
        level = _text(frame, "attestation").str.to_uppercase()
        plain = plain & (level.is_null() | level.is_in(["A", "B", "C"]))
    if "source_ip" in names:
        plain = plain & _text(frame, "source_ip").fill_null("0.0.0.0").str.contains(_PLAIN_IPV4)
    plain = plain & pl.col("_us_started_at").is_not_null()
    micros: list[pl.Expr] = []
    for name in ("started_at", "answered_at", "ended_at"):
        if name in names:
            plain = plain & pl.col(f"_iso_{name}")
            micros.append(pl.col(f"_us_{name}").alias(PLAIN[1 + len(micros)]))
        else:
            micros.append(pl.lit(None, dtype=pl.Int64).alias(PLAIN[1 + len(micros)]))
    return [plain.fill_null(False).alias("_plain"), *micros]


def read_usage_table(path: Path, *, utc_default: bool = True) -> pl.DataFrame:
    """Every row of the callwarden CSV file at ``path``: its cells as text (column names as in
    the header, trimmed) plus the :data:`DERIVED` columns.

    ``utc_default`` says that times without an offset are UTC (the ingestion default); when
    false, such times are left unparsed (null) and every row of their keys is kept.
    """
    frame = pl.read_csv(path, infer_schema=False, has_header=True, raise_if_empty=False)
    frame = frame.rename({name: name.strip() for name in frame.columns})
    if "kind" in frame.columns:
        kind = pl.col("kind").str.strip_chars().str.to_lowercase()
    else:
        kind = pl.lit(None, dtype=pl.String)
    for name, value in (("call_id", "call"), ("message_id", "message"), ("event_id", "login")):
        if name in frame.columns:
            kind = (
                pl.when(kind.is_null() & (_text(frame, name).is_not_null()))
                .then(pl.lit(value))
                .otherwise(kind)
            )
    duration = _text(frame, "duration_s").cast(pl.Float64, strict=False)
    call_at = (
        pl.when(_text(frame, "ended_at").is_not_null())
        .then(_seconds(frame, "ended_at"))
        .when(_text(frame, "answered_at").is_not_null())
        .then(_seconds(frame, "answered_at") + duration.fill_null(0.0))
        .otherwise(_seconds(frame, "started_at"))
    )
    at = (
        pl.when(pl.col("_kind") == "call")
        .then(call_at)
        .when(pl.col("_kind") == "message")
        .then(_seconds(frame, "sent_at"))
        .when(pl.col("_kind") == "login")
        .then(_seconds(frame, "at"))
        .otherwise(None)
    )
    temporary = [
        column
        for name in _TIMES
        if name in frame.columns
        for column in (f"_t_{name}", f"_us_{name}", f"_iso_{name}", f"_s_{name}")
    ]
    table = frame.with_row_index("_row")
    for stage in _time_columns(frame, utc_default):
        table = table.with_columns(stage)
    return (
        table.with_columns(_kind=kind, _tenant=_text(frame, "tenant_id").fill_null(""))
        .with_columns(
            _at=at, _started=_seconds(frame, "started_at"), _ended=_seconds(frame, "ended_at")
        )
        .with_columns(_plain(frame, pl.col("_kind"), plain_bytes(path)))
        .drop(temporary)
    )


def unknown_columns(frame: pl.DataFrame) -> list[str]:
    """Header names that are not callwarden fields (the normaliser refuses their rows)."""
    return sorted(set(frame.columns) - _COLUMNS - set(DERIVED))
