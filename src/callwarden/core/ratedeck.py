"""Rate deck files: the common carrier CSV layout, parsed fast and exactly, every bad row named.

A carrier's rate deck (clause LIM-1 rates every call against it) is a CSV file with one row per
destination prefix and effective date::

    prefix,description,rate,connection fee,increments,effective date,currency
    44,United Kingdom - Fixed,0.0120,0,60/60,2024-01-01,USD
    447,United Kingdom - Mobile,0.0850,0.01,30/6,2024-01-01,USD

:func:`parse_rate_deck` reads it from any iterable of text lines (an open file, a list, a
stream of lines from an upload) without holding the text in memory, and returns a
:class:`~callwarden.core.rating.RateDeck` plus the rows it refused, each with its line number
and the reason. The caller chooses what bad rows do: ``on_error="refuse"`` accepts nothing if
any row is bad and raises :class:`BadRowsError` carrying *all* of them (so one round of fixes
is enough); ``on_error="skip"`` keeps the good rows and returns the bad ones.

Columns
-------
With a header row, columns are found by name, in any order; names are compared ignoring case,
anything in parentheses or brackets (``Rate (USD/min)``), and every character that is not a
letter or digit (so ``Dial Code``, ``dial_code`` and ``DIAL-CODE`` are one name). The names
understood are in :data:`HEADER_NAMES`. Other columns (a "change" or "notes" column) are
ignored. Needed: a prefix and a rate column, and billing increments either as one column
(``60/60``, or one number ``N`` meaning ``N/N``) or as an initial and a subsequent column. A
column named just "increment" beside an initial-increment column is the subsequent one. Missing
optional columns take defaults: no connection fee column means a fee of 0; no effective date
column means every rate is in force from ``default_effective``; no currency column needs the
``currency`` argument; no increments column needs ``default_increments``.

Without a header (the first row's first cell is a prefix), the layout is positional, in the
order above: 7 columns (increments as ``60/60``) or 8 (initial and subsequent apart).

Values
------
- prefix: E.164 digits, 1 to 15, a leading '+' and blanks tolerated; a leading 0 is refused
  (no E.164 number starts with 0: the deck is probably in a national or '00' dialling format);
- rate per minute and connection fee: decimal numbers in the currency's major unit with a
  '.' and at most 9 decimals (:func:`~callwarden.core.rating.parse_price`). A decimal comma is
  refused, never guessed at: in an unquoted field it splits the row (the row then has a field
  too many and is refused with that reason); in a quoted field it is named as such. An empty
  connection fee is 0; an empty rate is an error;
- increments: whole seconds, 1 to 3600;
- effective date: ISO 8601 (``2024-01-15``, ``2024-01-15 00:00:00``, ``2024-01-15T00:00Z``,
  with or without an offset); without an offset it is UTC. Other layouts (``15/01/2024``) are
  ambiguous, so they are refused unless the caller passes ``date_format`` (``strptime`` codes);
- currency: an ISO 4217 code. A deck has one currency: the ``currency`` argument, or else that
  of the first accepted row; a row in another currency is refused.

A BOM at the start is dropped; blank rows and rows whose first cell starts with '#' are
skipped. Two rows for one prefix and effective date are a duplicate: the first is kept and
the later one refused.

Speed: a million-row deck parses in a few seconds on one core. The csv module does the
splitting; each cell is checked with string methods rather than regular expressions, and the
values that repeat in a deck (prices, increments, dates, descriptions) are converted once and
then looked up.

This module is part of the pure core: it does no I/O of its own. Opening the file (with
``newline=""`` and ``encoding="utf-8-sig"`` ideally) is the caller's business.
"""

from __future__ import annotations

import csv
import gc
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Final, Literal, cast

from callwarden.core.errors import InvalidInput
from callwarden.core.rating import (
    MAX_INCREMENT_S,
    MAX_PREFIX_LENGTH,
    Rate,
    RateDeck,
    check_currency,
    parse_price,
)

__all__ = [
    "HEADER_NAMES",
    "BadRow",
    "BadRowsError",
    "OnError",
    "ParsedDeck",
    "RateDeckError",
    "parse_rate_deck",
]

OnError = Literal["refuse", "skip"]

#: Column names understood in a header row, per field, in their compared form: lower case,
#: letters and digits only, parenthesised parts removed ("Rate (USD/min)" compares as "rate").
HEADER_NAMES: Final[Mapping[str, tuple[str, ...]]] = {
    "prefix": (
        "prefix",
        "code",
        "dialcode",
        "dialingcode",
        "diallingcode",
        "dialprefix",
        "destinationcode",
        "destcode",
        "prefixcode",
        "e164prefix",
        "numberprefix",
        "digits",
    ),
    "description": (
        "description",
        "desc",
        "destination",
        "destinationname",
        "dest",
        "name",
        "country",
        "countryname",
        "zone",
        "area",
    ),
    "rate": (
        "rate",
        "rateperminute",
        "ratepermin",
        "ratemin",
        "minuterate",
        "price",
        "priceperminute",
        "pricepermin",
        "pricemin",
        "perminute",
        "permin",
        "cost",
        "costperminute",
        "costpermin",
        "tariff",
        "ppm",
        "voicerate",
    ),
    "connection_fee": (
        "connectionfee",
        "connectfee",
        "connection",
        "connectioncharge",
        "connectcharge",
        "connectioncost",
        "connectcost",
        "setupfee",
        "setup",
        "setupcharge",
        "setupcost",
        "flagfall",
    ),
    "increments": (
        "increments",
        "increment",
        "billingincrement",
        "billingincrements",
        "billing",
        "billinginterval",
        "interval",
        "billingunit",
        "pulse",
        "billingpulse",
    ),
    "initial": (
        "initialincrement",
        "initialinterval",
        "initial",
        "firstincrement",
        "firstinterval",
        "minimumduration",
        "minduration",
        "minimum",
        "mininterval",
        "minimumincrement",
        "initialpulse",
        "firstpulse",
    ),
    "subsequent": (
        "subsequentincrement",
        "subsequentinterval",
        "subsequent",
        "nextincrement",
        "nextinterval",
        "additionalincrement",
        "additionalinterval",
        "followingincrement",
        "subsequentpulse",
        "nextpulse",
    ),
    "effective": (
        "effectivedate",
        "effective",
        "effectivefrom",
        "effectivedatetime",
        "effectivetime",
        "effdate",
        "validfrom",
        "startdate",
        "start",
        "date",
        "activationdate",
        "from",
    ),
    "currency": ("currency", "curr", "ccy", "currencycode", "cur"),
}

_NAME_TO_FIELD: Final[dict[str, str]] = {
    name: fld for fld, names in HEADER_NAMES.items() for name in names
}

#: The positional layouts of a deck without a header, by column count.
_POSITIONAL: Final[Mapping[int, tuple[str, ...]]] = {
    7: ("prefix", "description", "rate", "connection_fee", "increments", "effective", "currency"),
    8: (
        "prefix",
        "description",
        "rate",
        "connection_fee",
        "initial",
        "subsequent",
        "effective",
        "currency",
    ),
}

_PAREN: Final[re.Pattern[str]] = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_NOT_ALNUM: Final[re.Pattern[str]] = re.compile(r"[^a-z0-9]+")
_EPOCH: Final[datetime] = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_SECOND: Final[timedelta] = timedelta(seconds=1)
#: Converted cell values kept per deck for reuse; beyond this many distinct texts, values are
#: converted every time (a deck of all-distinct prices must not grow an unbounded cache).
_CACHE_LIMIT: Final[int] = 1 << 16
#: Bad rows quoted in the message of a BadRowsError (all of them are in ``bad_rows``).
_QUOTED_BAD_ROWS: Final[int] = 10


@dataclass(frozen=True, slots=True)
class BadRow:
    """A deck row that was refused: the line it starts on (1-based, counting the header, blank
    and comment lines), why, and its cells as read, so an operator can find and fix it."""

    line: int
    reason: str
    cells: tuple[str, ...]

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


class RateDeckError(InvalidInput):
    """A rate deck cannot be read at all: no rows, no recognisable header, a missing column,
    a CSV syntax error. ``line`` is where, when one line is to blame."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


class BadRowsError(RateDeckError):
    """``on_error="refuse"`` and some rows are bad: nothing was accepted. ``bad_rows`` holds
    every bad row of the deck, not just the first."""

    def __init__(self, message: str, bad_rows: tuple[BadRow, ...]) -> None:
        super().__init__(message)
        self.bad_rows = bad_rows


@dataclass(frozen=True, slots=True)
class ParsedDeck:
    """What :func:`parse_rate_deck` read.

    ``deck`` holds the accepted rates; ``bad_rows`` the refused ones (empty unless
    ``on_error="skip"``); ``rows`` counts the data rows read (not the header, blank or comment
    rows); ``columns`` says how the columns were understood (field name to 0-based column),
    so a caller can show it, and ``header`` whether the first row was a header.
    """

    deck: RateDeck
    bad_rows: tuple[BadRow, ...]
    rows: int
    columns: Mapping[str, int] = field(default_factory=dict)
    header: bool = True


class _Bad(Exception):
    """A cell is wrong; the row is then diagnosed in full on the slow path."""


def parse_rate_deck(
    lines: Iterable[str],
    *,
    on_error: OnError = "refuse",
    currency: str | None = None,
    delimiter: str = ",",
    default_increments: tuple[int, int] | None = None,
    default_effective: int = 0,
    date_format: str | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 10_000,
) -> ParsedDeck:
    """Parse a rate deck from text lines (see the module notes for the layout and values).

    ``on_error``: ``"refuse"`` raises :class:`BadRowsError` with every bad row if there is any;
    ``"skip"`` keeps the good rows and returns the bad ones in :attr:`ParsedDeck.bad_rows`.
    ``currency``: the deck's ISO 4217 code, if known (recommended: a deck in another currency
    is then refused row by row rather than accepted). ``delimiter``: the field separator.
    ``default_increments`` and ``default_effective`` (epoch seconds) fill in for a missing
    increments or effective-date column. ``date_format``: ``strptime`` codes for effective
    dates that are not ISO 8601. ``progress`` is called with the number of data rows read
    every ``progress_every`` rows and once at the end, so a CLI can draw a progress bar.

    Raises :class:`RateDeckError` when the deck cannot be read at all (empty, no recognisable
    header or positional layout, a needed column missing, broken CSV quoting).

    Python's cyclic garbage collector is paused while the index is built, and its previous
    state restored after: its full passes over a growing index cost about a quarter of the
    time on a million rows, and the index makes no reference cycles to collect.
    """
    if on_error not in ("refuse", "skip"):
        raise ValueError(f"on_error must be 'refuse' or 'skip', got {on_error!r}")
    if progress_every < 1:
        raise ValueError("progress_every must be at least 1")
    deck_currency = check_currency(currency) if currency is not None else None
    if default_increments is not None and not all(
        type(value) is int and 1 <= value <= MAX_INCREMENT_S for value in default_increments
    ):
        raise ValueError(f"default_increments {default_increments!r} out of 1..3600 s")

    reader = csv.reader(_without_bom(lines), delimiter=delimiter)
    first: list[str] | None = None
    ended = 0  # the line the last record read ended on (a quoted field can span lines)
    try:
        for row in reader:
            if not _skippable(row):
                first = row
                break
            ended = reader.line_num
    except csv.Error as exc:
        raise RateDeckError(f"not valid CSV: {exc}", line=reader.line_num) from exc
    if first is None:
        raise RateDeckError("the deck has no rows")
    columns, header = _layout(first, ended + 1)
    if header:
        ended = reader.line_num
    if "increments" not in columns and "initial" not in columns and default_increments is None:
        raise RateDeckError(
            "no billing increment column (e.g. 'increment' with 60/60, or 'initial increment'"
            " and 'subsequent increment'); pass default_increments to assume one"
        )
    if "currency" not in columns and deck_currency is None:
        raise RateDeckError("no currency column: pass the deck's currency")

    width = len(first)
    p_col = columns["prefix"]
    r_col = columns["rate"]
    d_col = columns.get("description", -1)
    f_col = columns.get("connection_fee", -1)
    inc_col = columns.get("increments", -1)
    i_col = columns.get("initial", -1)
    s_col = columns.get("subsequent", -1)
    e_col = columns.get("effective", -1)
    c_col = columns.get("currency", -1)

    fixed_code = deck_currency or ""  # the currency when the deck has no currency column
    fixed_increments = default_increments or (0, 0)
    limit = _CACHE_LIMIT
    # Converted values by cell text: a deck repeats its prices, increments and dates.
    rates: dict[str, int] = {}
    fees: dict[str, int] = {"": 0}  # an empty connection fee is no fee
    pairs: dict[str, tuple[int, int]] = {}
    seconds: dict[str, int] = {}
    dates: dict[str, int] = {}
    descriptions: dict[str, str] = {}
    rates_get, fees_get, pairs_get = rates.get, fees.get, pairs.get
    seconds_get, dates_get, descriptions_get = seconds.get, dates.get, descriptions.get
    # Accepted rates, one table per prefix length; a list where a prefix has several versions.
    tables: list[dict[str, Rate | list[Rate]]] = [{} for _ in range(MAX_PREFIX_LENGTH + 1)]
    several: list[str] = []
    bad: list[BadRow] = []
    initial: int | None
    subsequent: int | None
    accepted = 0
    rows = 0
    next_report = progress_every if progress is not None else -1
    new = tuple.__new__

    with _collector_paused():
        try:
            for row in reader if header else chain([first], reader):
                start = ended + 1  # a bad row is named by the line it starts on
                ended = reader.line_num
                rows += 1
                if rows == next_report:
                    cast(Callable[[int], None], progress)(rows)
                    next_report += progress_every
                # Each value: the cheap check or the cache first; the converter on a miss, which
                # raises ValueError for a bad cell. The whole row is then diagnosed below.
                try:
                    if len(row) != width and not _fits(row, width):
                        raise _Bad
                    prefix = row[p_col]
                    if not (
                        prefix.isdigit()
                        and prefix.isascii()
                        and len(prefix) <= MAX_PREFIX_LENGTH
                        and prefix[0] != "0"
                    ):
                        prefix = _check_prefix(prefix)
                    cell = row[r_col]
                    rate = rates_get(cell)
                    if rate is None:
                        rate = parse_price(cell, "rate")
                        if len(rates) < limit:
                            rates[cell] = rate
                    if f_col >= 0:
                        cell = row[f_col]
                        fee = fees_get(cell)
                        if fee is None:
                            fee = _fee(cell)
                            if len(fees) < limit:
                                fees[cell] = fee
                    else:
                        fee = 0
                    if inc_col >= 0:
                        cell = row[inc_col]
                        pair = pairs_get(cell)
                        if pair is None:
                            pair = _increments(cell)
                            if len(pairs) < limit:
                                pairs[cell] = pair
                        initial, subsequent = pair
                    elif i_col >= 0:
                        cell = row[i_col]
                        initial = seconds_get(cell)
                        if initial is None:
                            initial = _initial(cell)
                            if len(seconds) < limit:
                                seconds[cell] = initial
                        cell = row[s_col]
                        subsequent = seconds_get(cell)
                        if subsequent is None:
                            subsequent = _subsequent(cell)
                            if len(seconds) < limit:
                                seconds[cell] = subsequent
                    else:
                        initial, subsequent = fixed_increments
                    if e_col >= 0:
                        cell = row[e_col]
                        effective = dates_get(cell)
                        if effective is None:
                            effective = _date(cell, date_format)
                            if len(dates) < limit:
                                dates[cell] = effective
                    else:
                        effective = default_effective
                    if c_col >= 0:
                        code = row[c_col]
                        if code != deck_currency:
                            code = deck_currency = _currency(code, deck_currency)
                    else:
                        code = fixed_code
                    if d_col >= 0:
                        cell = row[d_col]
                        description = descriptions_get(cell)
                        if description is None:
                            description = cell.strip()
                            if len(descriptions) < limit:
                                descriptions[cell] = description
                    else:
                        description = ""
                except (_Bad, ValueError):
                    if _skippable(row):  # a blank or comment row
                        rows -= 1
                        continue
                    reasons = _diagnose(row, width, columns, deck_currency, date_format, header)
                    bad.append(BadRow(start, "; ".join(reasons), tuple(row)))
                    continue
                rate_row = new(
                    Rate, (prefix, rate, fee, initial, subsequent, effective, code, description)
                )
                table = tables[len(prefix)]
                held = table.setdefault(prefix, rate_row)
                if held is not rate_row:  # the prefix had a rate already
                    if isinstance(held, Rate):
                        held = table[prefix] = [held]
                        several.append(prefix)
                    earlier = next((v for v in held if v.effective_from == effective), None)
                    if earlier is not None:
                        reason = (
                            f"duplicate: prefix {prefix} already has a rate effective "
                            f"{_show_time(effective)} on an earlier line "
                            f"({earlier.description or 'no description'})"
                        )
                        bad.append(BadRow(start, reason, tuple(row)))
                        continue
                    held.append(rate_row)
                accepted += 1
        except csv.Error as exc:
            raise RateDeckError(f"not valid CSV: {exc}", line=reader.line_num) from exc

    if progress is not None:
        progress(rows)
    if bad and on_error == "refuse":
        raise BadRowsError(_summary(bad, rows), tuple(bad))
    if deck_currency is None:
        raise BadRowsError(
            "no row was accepted, so the deck's currency is unknown: " + _summary(bad, rows),
            tuple(bad),
        )
    return ParsedDeck(
        deck=RateDeck._from_checked(
            {length: table for length, table in enumerate(tables) if table},
            several,
            deck_currency,
            accepted,
        ),
        bad_rows=tuple(bad),
        rows=rows,
        columns=columns,
        header=header,
    )


# ---------------------------------------------------------------------------------------------
# Layout


def _without_bom(lines: Iterable[str]) -> Iterator[str]:
    """The lines, with a byte-order mark removed from the start of the first."""
    iterator = iter(lines)
    first = next(iterator, None)
    if first is None:
        return iterator
    if not isinstance(first, str):
        raise RateDeckError("a rate deck is read as text lines: open the file in text mode")
    return chain([first.removeprefix("\ufeff")], iterator)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a deck is indexed, then restore it.

    The index holds no reference cycles, but each full collection walks every entry of the
    growing million-entry tables; pausing saves about a quarter of the parse time. Only the
    collector's timing changes (cycles made meanwhile by other threads are collected later),
    and the previous state is restored, so a caller that had disabled it keeps it disabled.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _skippable(row: list[str]) -> bool:
    """Blank rows (no cells, or only blank cells) and comment rows ('#' first) are skipped."""
    if not row:
        return True
    if row[0].lstrip().startswith("#"):
        return True
    return not any(cell.strip() for cell in row)


def _fits(row: list[str], width: int) -> bool:
    """A row longer than the header only by empty trailing cells (a trailing delimiter)."""
    return len(row) > width and not any(cell.strip() for cell in row[width:])


def _normalise_name(name: str) -> str:
    return _NOT_ALNUM.sub("", _PAREN.sub("", name.lower()))


def _layout(first: list[str], line: int) -> tuple[dict[str, int], bool]:
    """How the columns are laid out: from a header row, or positionally from a data row."""
    names = [_normalise_name(cell) for cell in first]
    fields = [_NAME_TO_FIELD.get(name) for name in names]
    if "prefix" in fields:
        columns: dict[str, int] = {}
        for index, fld in enumerate(fields):
            if fld is None:
                continue
            if fld in columns:
                if fld == "description":
                    continue  # "destination" and "country": the first one names the row
                raise RateDeckError(
                    f"columns {columns[fld] + 1} ({first[columns[fld]]!r}) and {index + 1} "
                    f"({first[index]!r}) both name the {fld.replace('_', ' ')}",
                    line=line,
                )
            columns[fld] = index
        if "increments" in columns and "initial" in columns and "subsequent" not in columns:
            columns["subsequent"] = columns.pop("increments")
        if "rate" not in columns:
            raise RateDeckError(
                "the header has no rate column (e.g. 'rate', 'price', 'rate per minute')",
                line=line,
            )
        if ("initial" in columns) != ("subsequent" in columns):
            has, lacks = (
                ("initial", "subsequent") if "initial" in columns else ("subsequent", "initial")
            )
            raise RateDeckError(
                f"the header has a {has} increment column but no {lacks} one", line=line
            )
        if "increments" in columns and "initial" in columns:
            raise RateDeckError(
                "the header has both an increments column and initial/subsequent columns",
                line=line,
            )
        return columns, True
    try:
        _check_prefix(first[0])
    except ValueError:
        raise RateDeckError(
            "the first row is neither a header with a prefix column (e.g. 'prefix', 'code', "
            f"'dial code') nor a data row starting with a prefix: {first!r}",
            line=line,
        ) from None
    layout = _POSITIONAL.get(len(first))
    if layout is None:
        raise RateDeckError(
            f"a deck without a header needs 7 or 8 columns (prefix, description, rate, "
            f"connection fee, increments as 60/60 or initial and subsequent apart, effective "
            f"date, currency), the first row has {len(first)}; add a header row",
            line=line,
        )
    return {fld: index for index, fld in enumerate(layout)}, False


# ---------------------------------------------------------------------------------------------
# Cells (the slow path: each raises _Bad, or ValueError with the reason in words)


def _check_prefix(text: str) -> str:
    digits = text.strip().removeprefix("+")
    if not digits:
        raise ValueError("prefix is empty")
    if not (digits.isdigit() and digits.isascii()):
        raise ValueError(f"bad prefix {text!r}: only the digits 0-9 (and a leading '+')")
    if len(digits) > MAX_PREFIX_LENGTH:
        raise ValueError(f"bad prefix {text!r}: {len(digits)} digits, at most {MAX_PREFIX_LENGTH}")
    if digits[0] == "0":
        raise ValueError(
            f"bad prefix {text!r}: E.164 numbers never start with 0 "
            "(is the deck in a national or '00' dialling format?)"
        )
    return digits


def _rate(text: str) -> int:
    return parse_price(text, "rate")


def _fee(text: str) -> int:
    return parse_price(text, "connection fee") if text.strip() else 0


def _seconds(text: str, what: str) -> int:
    stripped = text.strip()
    if not (stripped.isdigit() and stripped.isascii()):
        raise ValueError(f"bad {what} {text!r}: not a whole number of seconds")
    value = int(stripped)
    if not 1 <= value <= MAX_INCREMENT_S:
        raise ValueError(f"bad {what} {text!r}: out of 1..{MAX_INCREMENT_S} s")
    return value


def _initial(text: str) -> int:
    return _seconds(text, "initial increment")


def _subsequent(text: str) -> int:
    return _seconds(text, "subsequent increment")


def _increments(text: str) -> tuple[int, int]:
    initial, slash, subsequent = text.partition("/")
    try:
        if not slash:
            value = _seconds(text, "increment")
            return value, value
        return _seconds(initial, "increment"), _seconds(subsequent, "increment")
    except ValueError:
        raise ValueError(
            f"bad increments {text!r}: expected initial/subsequent whole seconds from 1 to "
            f"{MAX_INCREMENT_S}, like 60/60, 30/6 or 1/1"
        ) from None


def _date(text: str, date_format: str | None) -> int:
    stripped = text.strip()
    if not stripped:
        raise ValueError("bad effective date: empty")
    try:
        when = (
            datetime.strptime(stripped, date_format)
            if date_format
            else datetime.fromisoformat(stripped)
        )
    except ValueError:
        expected = f"the format {date_format!r}" if date_format else "ISO 8601, like 2024-01-15"
        raise ValueError(f"bad effective date {text!r}: expected {expected}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _ONE_SECOND


def _currency(text: str, deck_currency: str | None) -> str:
    """The row's currency code; ValueError if it is not a code, or not the deck's."""
    code = check_currency(text.strip().upper())
    if deck_currency is not None and code != deck_currency:
        raise ValueError(f"wrong currency {code}: the deck is in {deck_currency}")
    return code


def _show_time(epoch_s: int) -> str:
    when = _EPOCH + timedelta(seconds=epoch_s)
    return when.date().isoformat() if when.time() == datetime.min.time() else when.isoformat()


def _diagnose(
    row: list[str],
    width: int,
    columns: Mapping[str, int],
    deck_currency: str | None,
    date_format: str | None,
    has_header: bool,
) -> list[str]:
    """Every reason ``row`` is bad, in words (never empty: a row refused says why)."""
    if len(row) != width and not _fits(row, width):
        where = "the header has" if has_header else "the first row has"
        hint = (
            " (a decimal comma in an unquoted number splits it in two: use a '.')"
            if len(row) > width
            else ""
        )
        return [f"{len(row)} fields, {where} {width}{hint}"]
    checks: tuple[tuple[str, Callable[[str], object]], ...] = (
        ("prefix", _check_prefix),
        ("rate", _rate),
        ("connection_fee", _fee),
        ("increments", _increments),
        ("initial", _initial),
        ("subsequent", _subsequent),
        ("effective", lambda text: _date(text, date_format)),
    )
    reasons: list[str] = []
    for column, check in checks:
        index = columns.get(column, -1)
        if index >= 0:
            try:
                check(row[index])
            except ValueError as exc:
                reasons.append(str(exc))
    index = columns.get("currency", -1)
    if index >= 0:
        code = row[index].strip().upper()
        try:
            check_currency(code)
        except ValueError:
            reasons.append(f"bad currency {row[index]!r}: expected an ISO 4217 code like USD")
        else:
            if deck_currency is not None and code != deck_currency:
                reasons.append(f"wrong currency {code}: the deck is in {deck_currency}")
    return reasons or ["unreadable row"]


def _summary(bad: list[BadRow], rows: int) -> str:
    shown = "; ".join(str(row) for row in bad[:_QUOTED_BAD_ROWS])
    more = f"; and {len(bad) - _QUOTED_BAD_ROWS} more" if len(bad) > _QUOTED_BAD_ROWS else ""
    return f"{len(bad)} of {rows} rows are bad: {shown}{more}"
