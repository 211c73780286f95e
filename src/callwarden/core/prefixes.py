"""High-risk destination prefixes imported by the operator (clause FRD-1).

Operators keep lists of number ranges known for revenue-share fraud (IRSF), traffic pumping or
premium services that the numbering metadata does not flag. :class:`PrefixList` holds such a
list and answers, per call attempt, which listed prefix (if any) a destination falls under:
the longest one, so a specific range can carry a different label than its country.

This module is part of the pure core: it does no I/O. Reading a file is the caller's business;
:meth:`PrefixList.from_lines` takes its lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_PREFIX_LENGTH", "PrefixEntry", "PrefixList"]

#: The longest prefix accepted: a whole E.164 number has at most 15 digits.
MAX_PREFIX_LENGTH: Final[int] = 15

_DIGITS: Final[frozenset[str]] = frozenset("0123456789")


@dataclass(frozen=True, slots=True)
class PrefixEntry:
    """One listed prefix: E.164 digits without '+', and an optional label for people."""

    prefix: str
    label: str | None = None


def _normalise_prefix(prefix: object, where: str) -> str:
    """Check one prefix and return it without surrounding blanks or a leading '+'."""
    if not isinstance(prefix, str):
        raise ValueError(f"{where}: prefix must be a string of digits, got {prefix!r}")
    text = prefix.strip()
    if text.startswith("+"):
        text = text[1:]
    if not text:
        raise ValueError(f"{where}: prefix is empty")
    if not _DIGITS.issuperset(text):
        raise ValueError(f"{where}: prefix {prefix!r} must contain only the digits 0-9")
    if len(text) > MAX_PREFIX_LENGTH:
        raise ValueError(
            f"{where}: prefix {prefix!r} has {len(text)} digits, at most {MAX_PREFIX_LENGTH}"
        )
    return text


class PrefixList:
    """An immutable set of destination prefixes with longest-prefix lookup.

    Built from entries given as a bare prefix string, a ``(prefix, label)`` pair, or a
    :class:`PrefixEntry`. Prefixes are E.164 digits without '+' (a leading '+' and surrounding
    blanks are tolerated and removed), 1 to 15 digits long. A bad or duplicated prefix raises
    ``ValueError`` naming the entry (or line) and the prefix, so an import fails as a whole
    rather than half-applied.

    Lookups index prefixes by length and try the lengths present, longest first: at most one
    dictionary probe per distinct prefix length (15 at worst), whatever the list's size.
    Safe to share between threads.
    """

    __slots__ = ("_by_length", "_entries", "_lengths")

    def __init__(self, entries: Iterable[str | tuple[str, str | None] | PrefixEntry] = ()) -> None:
        self._build((f"entry {number}", item) for number, item in enumerate(entries, start=1))

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> PrefixList:
        """Build a list from text lines of the form ``prefix[,label]``.

        Blank lines and lines starting with '#' are skipped; the label is everything after the
        first comma, stripped (an empty label counts as none). Errors name the line number.
        """
        parsed: list[tuple[str, tuple[str, str | None]]] = []
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            prefix, _, label = text.partition(",")
            parsed.append((f"line {number}", (prefix, label.strip() or None)))
        result = cls.__new__(cls)
        result._build(parsed)
        return result

    def _build(
        self, items: Iterable[tuple[str, str | tuple[str, str | None] | PrefixEntry]]
    ) -> None:
        by_length: dict[int, dict[str, PrefixEntry]] = {}
        seen: dict[str, str] = {}
        entries: list[PrefixEntry] = []
        for where, item in items:
            if isinstance(item, PrefixEntry):
                raw_prefix: object = item.prefix
                label = item.label
            elif isinstance(item, tuple) and len(item) == 2:
                raw_prefix, label = item
            else:
                raw_prefix, label = item, None
            prefix = _normalise_prefix(raw_prefix, where)
            if label is not None and not isinstance(label, str):
                raise ValueError(f"{where}: label of prefix {prefix!r} must be text")
            if prefix in seen:
                raise ValueError(f"{where}: prefix {prefix!r} is already listed ({seen[prefix]})")
            seen[prefix] = where
            entry = PrefixEntry(prefix, label)
            entries.append(entry)
            by_length.setdefault(len(prefix), {})[prefix] = entry
        self._by_length = by_length
        self._lengths = tuple(sorted(by_length, reverse=True))
        self._entries = tuple(entries)

    def longest_match(self, e164_digits: str) -> PrefixEntry | None:
        """The longest listed prefix that ``e164_digits`` starts with, or ``None``.

        ``e164_digits`` is a number's E.164 digits; a leading '+' is ignored, so a
        ``Destination.e164`` can be passed as it is.
        """
        digits = e164_digits[1:] if e164_digits.startswith("+") else e164_digits
        size = len(digits)
        by_length = self._by_length
        for length in self._lengths:
            if length <= size:
                entry = by_length[length].get(digits[:length])
                if entry is not None:
                    return entry
        return None

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[PrefixEntry]:
        return iter(self._entries)

    def __contains__(self, prefix: object) -> bool:
        if not isinstance(prefix, str):
            return False
        return prefix in self._by_length.get(len(prefix), {})

    def __repr__(self) -> str:
        return f"PrefixList({len(self._entries)} prefixes)"
