"""Random but valid telephone numbers for simulated traffic.

Each (country, kind) has a few E.164 ranges written as a prefix and a count of free digits; a
number is a prefix plus random digits, kept only when the numbering plan reads it as a valid
number of the wanted type (so the detectors classify simulated numbers as they would real
ones). Draws come from the caller's seeded generator, so a seed gives the same numbers.

Pure core: no I/O.
"""

from __future__ import annotations

import random
from typing import Final, Literal

from callwarden.core.numbering import NumberingPlan, NumberType

__all__ = ["RANGES", "NumberKind", "NumberMaker"]

NumberKind = Literal["fixed", "mobile", "premium", "shared", "satellite"]

#: (prefix, free digits) per (country, kind). ``"001"`` is the non-geographic satellite code.
RANGES: Final[dict[tuple[str, NumberKind], tuple[tuple[str, int], ...]]] = {
    ("GB", "fixed"): (("+44207", 7), ("+44203", 7), ("+44161", 7), ("+44121", 7)),
    ("GB", "mobile"): (("+4474", 8), ("+4475", 8), ("+4477", 8), ("+4478", 8)),
    ("GB", "premium"): (("+4490", 8), ("+4491", 8)),
    ("PL", "fixed"): (("+4822", 7), ("+4812", 7), ("+4861", 7)),
    ("PL", "mobile"): (("+4850", 7), ("+4851", 7), ("+4860", 7), ("+4869", 7)),
    ("NL", "fixed"): (("+3120", 7), ("+3110", 7), ("+3130", 7)),
    ("NL", "mobile"): (("+316", 8),),
    ("FR", "fixed"): (("+331", 8), ("+334", 8), ("+335", 8)),
    ("FR", "mobile"): (("+336", 8), ("+337", 8)),
    ("FR", "premium"): (("+33891", 6), ("+33899", 6)),
    ("FR", "shared"): (("+33810", 6), ("+33820", 6)),
    ("US", "fixed"): (("+1212", 7), ("+1312", 7), ("+1415", 7), ("+1617", 7)),
    ("US", "mobile"): (("+1646", 7), ("+1917", 7)),
    ("DE", "fixed"): (("+4930", 8), ("+4989", 8)),
    ("DE", "mobile"): (("+49151", 8), ("+49170", 8)),
    ("IE", "fixed"): (("+3531", 7),),
    ("IE", "mobile"): (("+35385", 7), ("+35387", 7)),
    ("BE", "fixed"): (("+322", 7),),
    ("BE", "mobile"): (("+32470", 6), ("+32475", 6)),
    ("ES", "fixed"): (("+3491", 7),),
    ("ES", "mobile"): (("+346", 8),),
    ("CA", "fixed"): (("+1416", 7), ("+1604", 7)),
    ("CA", "mobile"): (("+1647", 7),),
    ("IT", "fixed"): (("+3906", 8),),
    ("IT", "mobile"): (("+393", 9),),
    ("PT", "mobile"): (("+3519", 8),),
    ("AT", "mobile"): (("+43664", 7),),
    ("CH", "mobile"): (("+4179", 7),),
    ("SE", "mobile"): (("+4670", 7),),
    ("LV", "premium"): (("+37190", 6),),
    ("LT", "premium"): (("+370900", 5),),
    ("TN", "premium"): (("+21688", 6),),
    ("TN", "mobile"): (("+21620", 6), ("+21622", 6)),
    ("CU", "mobile"): (("+535", 7),),
    ("SL", "mobile"): (("+23225", 6), ("+23276", 6)),
    ("001", "satellite"): (("+8816", 8),),
}

_TYPES: Final[dict[NumberKind, frozenset[NumberType]]] = {
    "fixed": frozenset({NumberType.FIXED_LINE, NumberType.FIXED_LINE_OR_MOBILE}),
    "mobile": frozenset({NumberType.MOBILE, NumberType.FIXED_LINE_OR_MOBILE}),
    "premium": frozenset({NumberType.PREMIUM_RATE}),
    "shared": frozenset({NumberType.SHARED_COST}),
    "satellite": frozenset({NumberType.SATELLITE}),
}
_TRIES: Final[int] = 50


class NumberMaker:
    """Draws valid numbers of a country and kind, checked against the numbering plan."""

    __slots__ = ("numbering",)

    def __init__(self, numbering: NumberingPlan) -> None:
        self.numbering = numbering

    def number(self, rng: random.Random, country: str, kind: NumberKind) -> str:
        """A valid E.164 number of ``kind`` in ``country`` drawn with ``rng``.

        Raises ``KeyError`` for a (country, kind) with no ranges and ``ValueError`` when no
        valid number came out of the ranges (a range table out of step with the metadata).
        """
        ranges = RANGES[(country, kind)]
        wanted = _TYPES[kind]
        region = "GB" if country == "001" else country
        for _ in range(_TRIES):
            prefix, free = rng.choice(ranges)
            candidate = prefix + "".join(rng.choices("0123456789", k=free))
            found = self.numbering.classify(candidate, region)
            if found.valid and found.number_type in wanted:
                return candidate
        raise ValueError(f"no valid {kind} number drawn for {country}")

    def block(self, rng: random.Random, country: str, kind: NumberKind, size: int) -> list[str]:
        """``size`` valid numbers in one block, consecutive from a random start (the numbers a
        range scan walks through); invalid ones in the block are skipped over."""
        start = self.number(rng, country, kind)
        region = "GB" if country == "001" else country
        digits = int(start[1:])
        found: list[str] = []
        step = 0
        while len(found) < size and step < size * 4:
            candidate = f"+{digits + step}"
            step += 1
            if self.numbering.classify(candidate, region).valid:
                found.append(candidate)
        return found
