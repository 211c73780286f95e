"""Rating: what a call costs under a tenant's rate deck, and how long a budget lets it last.

Clauses LIM-1 (a monthly charge limit enforced by rating every call in real time) and LIM-3
(admission returns the longest duration the remaining budget allows, so the SIP server can cut
the call) rest on three pieces, all here:

- :class:`RateDeck`: the rates of a deck, versioned by effective date, with longest-prefix
  lookup on E.164 digits, fast enough to run on every call attempt;
- :func:`cost`: the price of a call of a given duration under one :class:`Rate`;
- :func:`affordable_duration`: the inverse, the longest billable duration a budget pays for.

Money, exactly
--------------
No float ever holds money. Two integer units are used, each named in the field that holds it:

- **Charged amounts** (a call's cost, a budget, a spend total) are :class:`Money`: an integer
  number of the currency's *minor unit* (cents for USD, yen for JPY, fils for BHD), which is how
  the plan's ``monthly_charge_limit_minor`` and the spend counters already count, and what an
  atomic Redis ``INCRBY`` can add.
- **Prices** (a rate per minute, a connection fee) routinely need finer steps than a minor unit
  (0.0123 USD a minute), so they are integers of *nano units*: 10**-9 of the currency's major
  unit (:data:`PRICE_DECIMALS` decimal places). Decks quote prices in major units with up to
  9 decimals; :func:`parse_price` converts the text exactly, with no intermediate Decimal.

Integers rather than ``Decimal`` because integer arithmetic is exact without a context (no
precision limit to configure or silently hit), faster, and maps one-to-one onto the integers
the stores and counters hold.

Rounding
--------
A call's cost is computed exactly as a rational number of minor units and rounded **once, at
the end, half up** to a whole minor unit (costs are never negative, so half up and half away
from zero agree). Month-to-date spend is the sum of these per-call amounts, as an invoice lists
them.

Billing increments
------------------
A rate bills ``initial_s`` seconds for the first block and ``subsequent_s`` seconds for each
further block ("60/60" per minute, "30/6", "1/1" per second). A call of ``d > 0`` seconds is
billed ``max(d, initial_s)`` rounded up so that what exceeds ``initial_s`` is a multiple of
``subsequent_s``. A call of 0 seconds (unanswered) is billed 0 seconds and costs nothing, not
even the connection fee: the fee is charged on answer.

This module is part of the pure core: no I/O, no clock. Times are epoch seconds (UTC) passed in.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple, cast

__all__ = [
    "MAX_INCREMENT_S",
    "MAX_PREFIX_LENGTH",
    "MINOR_UNIT_EXPONENTS",
    "PRICE_DECIMALS",
    "PRICE_SCALE",
    "Money",
    "Rate",
    "RateDeck",
    "affordable_duration",
    "billed_duration",
    "check_currency",
    "cost",
    "format_price",
    "make_rate",
    "minor_unit_exponent",
    "parse_price",
]

#: Decimal places a price may have: prices are integers of 10**-PRICE_DECIMALS major units.
PRICE_DECIMALS: Final[int] = 9
#: Nano units per major unit of a currency (1 USD = PRICE_SCALE nano-USD).
PRICE_SCALE: Final[int] = 10**PRICE_DECIMALS

#: The longest prefix accepted: a whole E.164 number has at most 15 digits.
MAX_PREFIX_LENGTH: Final[int] = 15

#: The longest billing increment accepted, initial or subsequent (one hour). Anything longer in
#: a deck is far more likely a typo (milliseconds, a misplaced column) than a real tariff.
MAX_INCREMENT_S: Final[int] = 3600

#: ISO 4217 currencies whose minor unit is not 1/100 of the major unit. Every other valid code
#: has two decimals. (The list is ISO 4217's, amendment 176; funds codes with no minor unit,
#: like XAU, are treated as having two.)
MINOR_UNIT_EXPONENTS: Final[Mapping[str, int]] = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"),
        0,
    ),
    **dict.fromkeys(("RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}

#: Powers of ten, as ints (``10 ** n`` with a variable ``n`` is not an int to a type checker).
_POW10: Final[tuple[int, ...]] = tuple(int(10**n) for n in range(PRICE_DECIMALS + 1))

_DIGITS: Final[frozenset[str]] = frozenset("0123456789")

#: The zeros that scale a price with n decimals to nano units: _ZEROS[n] has 9 - n of them.
_ZEROS: Final[tuple[str, ...]] = tuple(
    "0" * (PRICE_DECIMALS - n) for n in range(PRICE_DECIMALS + 1)
)


def check_currency(code: str) -> str:
    """Return ``code`` if it has the shape of an ISO 4217 code (three letters A-Z).

    Raises ``ValueError`` otherwise. The shape is checked, not the register: a deck in a
    currency ISO added last month must still load.
    """
    if not (len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()):
        raise ValueError(f"currency {code!r} is not an ISO 4217 code (three capital letters)")
    return code


def minor_unit_exponent(currency: str) -> int:
    """Decimal places of ``currency``'s minor unit: 2 for USD and EUR, 0 for JPY, 3 for BHD."""
    return MINOR_UNIT_EXPONENTS.get(currency, 2)


# ---------------------------------------------------------------------------------------------
# Prices (nano units)


def parse_price(text: str, what: str = "price") -> int:
    """Exact nano units of a price written in major units: ``"0.0123"`` -> ``12_300_000``.

    Accepts ASCII digits with at most one '.' and at most :data:`PRICE_DECIMALS` decimals
    (``"1"``, ``"0.5"``, ``".5"``, ``"2."``), surrounding blanks ignored. Refuses, with a
    ``ValueError`` saying why: a sign (prices are never negative, and '-' is named as such),
    a decimal comma, exponents, thousands separators, currency symbols and too many decimals.
    Never goes through float. ``what`` names the value in the error ("rate", "fee").
    """
    whole, _, frac = text.partition(".")
    digits = whole + frac
    if digits.isdigit() and digits.isascii() and len(frac) <= PRICE_DECIMALS:
        return int(digits + _ZEROS[len(frac)])
    stripped = text.strip()
    if stripped != text:
        return parse_price(stripped, what)
    raise ValueError(f"{what} {_price_problem(text, stripped)}")


def _price_problem(text: str, stripped: str) -> str:
    """Say why ``text`` is not a price (the slow path of :func:`parse_price`)."""
    if not stripped:
        return "is empty"
    if stripped.startswith("-"):
        return f"{text!r} is negative"
    if "," in stripped:
        return f"{text!r} has a comma: decimal commas and thousands separators are not accepted"
    _, _, frac = stripped.partition(".")
    if frac.isdigit() and frac.isascii() and len(frac) > PRICE_DECIMALS:
        return f"{text!r} has {len(frac)} decimals, at most {PRICE_DECIMALS}"
    return f"{text!r} is not a decimal number like 0.0123"


def format_price(nano: int) -> str:
    """The text of a nano-unit price in major units, without trailing zeros: ``"0.0123"``."""
    sign = "-" if nano < 0 else ""
    whole, frac = divmod(abs(nano), PRICE_SCALE)
    digits = f"{frac:0{PRICE_DECIMALS}d}".rstrip("0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


# ---------------------------------------------------------------------------------------------
# Money (minor units)


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount charged: an integer of ``currency``'s minor unit (cents, pence, yen).

    Arithmetic and ordering between different currencies raise ``ValueError`` rather than
    compare numbers that mean different things. ``minor`` may be negative (a remaining budget
    after an overrun).
    """

    minor: int
    currency: str

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        """Exact amount from text in major units (``"12.34"`` USD -> 1234 cents).

        Refuses more decimals than the currency's minor unit has, so nothing is rounded away
        silently; a leading '-' is allowed.
        """
        check_currency(currency)
        exponent = minor_unit_exponent(currency)
        stripped = text.strip()
        negative = stripped.startswith("-")
        body = stripped[1:] if negative else stripped
        whole, _, frac = body.partition(".")
        if (
            not (whole or frac)
            or (whole and not (whole.isdigit() and whole.isascii()))
            or (frac and not (frac.isdigit() and frac.isascii()))
        ):
            raise ValueError(f"amount {text!r} is not a decimal number like 12.34")
        if len(frac) > exponent:
            raise ValueError(f"amount {text!r} has {len(frac)} decimals; {currency} has {exponent}")
        minor = int(whole or "0") * _POW10[exponent] + int(frac.ljust(exponent, "0") or "0")
        return cls(-minor if negative else minor, currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.minor >= other.minor

    def __str__(self) -> str:
        exponent = minor_unit_exponent(self.currency)
        sign = "-" if self.minor < 0 else ""
        if exponent == 0:
            return f"{sign}{abs(self.minor)} {self.currency}"
        whole, frac = divmod(abs(self.minor), _POW10[exponent])
        return f"{sign}{whole}.{frac:0{exponent}d} {self.currency}"


# ---------------------------------------------------------------------------------------------
# Rates


class Rate(NamedTuple):
    """One row of a rate deck: the price of calls to ``prefix`` from ``effective_from`` on.

    A named tuple rather than a frozen dataclass because a deck can hold a million of them and
    a tuple is built about eight times faster; it is just as immutable. Build checked rates
    with :func:`make_rate` (or let :class:`RateDeck` check them).

    - ``prefix``: E.164 digits without '+', 1 to 15 of them;
    - ``rate_per_minute_nano``, ``connection_fee_nano``: prices in nano units (10**-9 of the
      major unit), never negative;
    - ``initial_s``, ``subsequent_s``: billing increments in seconds, 1 to
      :data:`MAX_INCREMENT_S`;
    - ``effective_from``: epoch seconds (UTC) from which this version is in force;
    - ``currency``: ISO 4217 code;
    - ``description``: the destination's name, for people.
    """

    prefix: str
    rate_per_minute_nano: int
    connection_fee_nano: int
    initial_s: int
    subsequent_s: int
    effective_from: int
    currency: str
    description: str = ""


def _rate_problems(rate: Rate) -> list[str]:
    """Everything wrong with ``rate``'s fields, in words (empty if it is sound)."""
    problems: list[str] = []
    prefix = rate.prefix
    if not (isinstance(prefix, str) and prefix and _DIGITS.issuperset(prefix)):
        problems.append(f"prefix {prefix!r} must be the digits 0-9")
    elif len(prefix) > MAX_PREFIX_LENGTH:
        problems.append(f"prefix {prefix!r} has {len(prefix)} digits, at most 15")
    for name in ("rate_per_minute_nano", "connection_fee_nano"):
        value = getattr(rate, name)
        if type(value) is not int or value < 0:
            problems.append(f"{name} must be a non-negative integer, got {value!r}")
    for name in ("initial_s", "subsequent_s"):
        value = getattr(rate, name)
        if type(value) is not int or not 1 <= value <= MAX_INCREMENT_S:
            problems.append(f"{name} must be an integer from 1 to {MAX_INCREMENT_S}, got {value!r}")
    if type(rate.effective_from) is not int:
        problems.append(
            f"effective_from must be integer epoch seconds, got {rate.effective_from!r}"
        )
    try:
        check_currency(rate.currency)
    except (ValueError, TypeError):
        problems.append(f"currency {rate.currency!r} is not an ISO 4217 code")
    if not isinstance(rate.description, str):
        problems.append("description must be text")
    return problems


def make_rate(
    prefix: str,
    rate_per_minute: str | int,
    *,
    connection_fee: str | int = 0,
    increments: tuple[int, int] = (60, 60),
    effective_from: int = 0,
    currency: str,
    description: str = "",
) -> Rate:
    """A checked :class:`Rate`. Prices given as text are major units (``"0.0123"``), as int
    nano units; a leading '+' of the prefix is dropped. Raises ``ValueError`` naming every
    problem."""
    rate = Rate(
        prefix[1:] if prefix.startswith("+") else prefix,
        parse_price(rate_per_minute) if isinstance(rate_per_minute, str) else rate_per_minute,
        parse_price(connection_fee) if isinstance(connection_fee, str) else connection_fee,
        increments[0],
        increments[1],
        effective_from,
        currency,
        description,
    )
    problems = _rate_problems(rate)
    if problems:
        raise ValueError(f"rate for prefix {prefix!r}: " + "; ".join(problems))
    return rate


# ---------------------------------------------------------------------------------------------
# Billing arithmetic


def billed_duration(duration_s: int, initial_s: int, subsequent_s: int) -> int:
    """The seconds billed for a call of ``duration_s`` seconds under ``initial/subsequent``.

    0 for an unanswered call (0 s); otherwise the smallest ``b >= duration_s`` with
    ``b >= initial_s`` and ``b - initial_s`` a multiple of ``subsequent_s``. E.g. under
    30/6 a 31 s call bills 36 s; under 60/60 a 61 s call bills 120 s. Durations are whole
    seconds: round a CDR's fractional duration up first, as carriers do.
    """
    if type(duration_s) is not int:
        raise TypeError(f"duration must be whole seconds (int), got {duration_s!r}")
    if duration_s <= 0:
        if duration_s < 0:
            raise ValueError(f"duration must not be negative, got {duration_s}")
        return 0
    if duration_s <= initial_s:
        return initial_s
    return initial_s + -(-(duration_s - initial_s) // subsequent_s) * subsequent_s


def _divisor(currency: str) -> int:
    """Nano-unit-seconds per minor unit: cost in minor units = numerator / this."""
    return 60 * _POW10[PRICE_DECIMALS - minor_unit_exponent(currency)]


def cost(rate: Rate, duration_s: int) -> Money:
    """What a call of ``duration_s`` seconds costs under ``rate``.

    connection fee + rate per minute x billed seconds / 60, computed exactly and rounded half
    up to the currency's minor unit at the end (see the module notes). An unanswered call
    (0 s) costs nothing, not even the connection fee.
    """
    billed = billed_duration(duration_s, rate.initial_s, rate.subsequent_s)
    if billed == 0:
        return Money(0, rate.currency)
    numerator = rate.connection_fee_nano * 60 + rate.rate_per_minute_nano * billed
    divisor = _divisor(rate.currency)
    return Money((2 * numerator + divisor) // (2 * divisor), rate.currency)


def affordable_duration(rate: Rate, budget: Money) -> int | None:
    """The longest billable duration, in seconds, whose :func:`cost` fits ``budget``.

    Exact and consistent with :func:`cost`: the result ``d`` is 0 or a billable step
    (``initial_s + k * subsequent_s``), ``cost(rate, d) <= budget``, and the next billable step
    costs more than ``budget``. 0 means not even the first block is affordable, so an
    admission should refuse the call (a negative budget, an overrun, always gives 0).
    ``None`` means the budget sets no limit: the rate per minute is 0 and the fee fits.

    Computed in closed form (no search): the cost of ``d`` seconds rounds half up, so it fits
    a budget of ``B`` minor units exactly when ``2 * numerator(d) <= divisor * (2B + 1) - 1``.
    """
    if budget.currency != rate.currency:
        raise ValueError(f"budget is in {budget.currency}, the rate in {rate.currency}")
    if budget.minor < 0:
        return 0
    divisor = _divisor(rate.currency)
    # The largest exact numerator (nano-unit-seconds) whose rounded cost is <= budget.
    limit = (divisor * (2 * budget.minor + 1) - 1) // 2
    room = limit - rate.connection_fee_nano * 60
    per_minute = rate.rate_per_minute_nano
    initial, step = rate.initial_s, rate.subsequent_s
    if room < 0:
        return 0
    if per_minute == 0:
        return None
    # numerator(d) = fee * 60 + per_minute * d, so d fits while per_minute * d <= room.
    longest = room // per_minute
    if longest < initial:
        return 0
    return initial + (longest - initial) // step * step


# ---------------------------------------------------------------------------------------------
# The deck


_Entry = Rate | tuple[tuple[int, ...], tuple[Rate, ...]]


class RateDeck:
    """A tenant's rate deck: rates per destination prefix, versioned by effective date.

    :meth:`lookup` answers which rate applies to a number at a time: among the prefixes the
    number starts with, the longest one that has a version in force then, and of that prefix
    the version with the latest ``effective_from <= at``. A prefix whose every version starts
    later is not in the deck yet, so a shorter prefix rates the call meanwhile (a deck can
    announce a new, more specific range ahead of time).

    Built for the admission hot path: prefixes are held in one dictionary per prefix length,
    and a lookup probes only the lengths present, longest first (at most 15 probes; a typical
    deck has under 10 lengths). A prefix with one version stores the rate itself; several
    versions are kept sorted and bisected. Immutable after construction; safe to share between
    threads. A new deck version replaces the whole object.
    """

    __slots__ = ("_count", "_currency", "_probes")

    def __init__(self, rates: Iterable[Rate], *, currency: str | None = None) -> None:
        """Check every rate and index them.

        All rates must be in one currency (``currency``, or else the first rate's), and no
        prefix may have two rates with the same ``effective_from``. Raises ``ValueError``
        naming the first offending rate; a deck is built whole or not at all.
        """
        tables: dict[int, dict[str, Rate | list[Rate]]] = {}
        several: list[str] = []
        count = 0
        for rate in rates:
            if not isinstance(rate, Rate):
                raise ValueError(f"not a Rate: {rate!r}")
            problems = _rate_problems(rate)
            if problems:
                raise ValueError(f"rate for prefix {rate.prefix!r}: " + "; ".join(problems))
            if currency is None:
                currency = rate.currency
            elif rate.currency != currency:
                raise ValueError(
                    f"rate for prefix {rate.prefix!r} is in {rate.currency}, the deck in {currency}"
                )
            table = tables.setdefault(len(rate.prefix), {})
            held = table.get(rate.prefix)
            if held is None:
                table[rate.prefix] = rate
            else:
                if isinstance(held, Rate):
                    held = table[rate.prefix] = [held]
                    several.append(rate.prefix)
                if any(v.effective_from == rate.effective_from for v in held):
                    raise ValueError(
                        f"prefix {rate.prefix!r} has two rates effective from {rate.effective_from}"
                    )
                held.append(rate)
            count += 1
        if currency is None:
            raise ValueError("an empty deck needs its currency")
        self._init(tables, several, check_currency(currency), count)

    @classmethod
    def _from_checked(
        cls,
        tables: dict[int, dict[str, Rate | list[Rate]]],
        several: Iterable[str],
        currency: str,
        count: int,
    ) -> RateDeck:
        """A deck from rates already checked and grouped (by the deck parser).

        ``tables`` maps prefix length to prefix to its rate, or to the list of its versions
        for the prefixes named in ``several``; it is taken over, not copied.
        """
        deck = cls.__new__(cls)
        deck._init(tables, several, currency, count)
        return deck

    def _init(
        self,
        tables: dict[int, dict[str, Rate | list[Rate]]],
        several: Iterable[str],
        currency: str,
        count: int,
    ) -> None:
        for prefix in several:
            table = tables[len(prefix)]
            versions = table[prefix]
            assert isinstance(versions, list)
            versions.sort(key=_effective)
            entry: _Entry = (tuple(map(_effective, versions)), tuple(versions))
            cast(dict[str, _Entry], table)[prefix] = entry
        self._probes = tuple(
            (length, cast(dict[str, _Entry], tables[length]))
            for length in sorted(tables, reverse=True)
            if tables[length]
        )
        self._currency = currency
        self._count = count

    @property
    def currency(self) -> str:
        """The ISO 4217 code every rate of the deck is in."""
        return self._currency

    @property
    def prefix_count(self) -> int:
        """How many distinct prefixes the deck rates."""
        return sum(len(table) for _, table in self._probes)

    def lookup(self, number: str, at: float) -> Rate | None:
        """The rate for a call to ``number`` starting at ``at`` (epoch seconds), or ``None``.

        ``number`` is E.164 digits; a leading '+' is ignored, so a ``Destination.e164`` can be
        passed as it is. ``None`` means no prefix of the number is in force at ``at``: the deck
        cannot rate the call.
        """
        if number[:1] == "+":
            number = number[1:]
        # A slice longer than the number is the number itself, whose length differs from the
        # table's keys: a miss, so no length check is needed.
        for length, table in self._probes:
            held = table.get(number[:length])
            if held is None:
                continue
            if isinstance(held, Rate):
                if held.effective_from <= at:
                    return held
                continue
            starts, versions = held
            index = bisect_right(starts, at)
            if index:
                return versions[index - 1]
        return None

    def versions(self, prefix: str) -> tuple[Rate, ...]:
        """Every rate of ``prefix`` (exact prefix, not a match), oldest first; empty if none."""
        for length, table in self._probes:
            if length == len(prefix):
                held = table.get(prefix)
                if held is None:
                    return ()
                return (held,) if isinstance(held, Rate) else held[1]
        return ()

    def __iter__(self) -> Iterator[Rate]:
        """Every rate, by prefix length (longest first), then prefix, then effective date."""
        for _, table in self._probes:
            for held in table.values():
                if isinstance(held, Rate):
                    yield held
                else:
                    yield from held[1]

    def __len__(self) -> int:
        """How many rates (prefix versions) the deck holds."""
        return self._count

    def __repr__(self) -> str:
        return f"RateDeck({self._count} rates, {self.prefix_count} prefixes, {self._currency})"


def _effective(rate: Rate) -> int:
    return rate.effective_from
