"""The operator's high-risk prefix list: validation on import and longest-prefix lookup."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callwarden.core.prefixes import MAX_PREFIX_LENGTH, PrefixEntry, PrefixList


def test_longest_listed_prefix_wins() -> None:
    prefixes = PrefixList([("882", "international networks"), ("88216", "Thuraya"), "8821"])
    assert prefixes.longest_match("882161234567") == PrefixEntry("88216", "Thuraya")
    assert prefixes.longest_match("882131234567") == PrefixEntry("8821", None)
    assert prefixes.longest_match("883510012345") is None


def test_number_shorter_than_a_prefix_does_not_match_it() -> None:
    assert PrefixList(["88216"]).longest_match("8821") is None


def test_leading_plus_of_the_number_is_ignored() -> None:
    assert PrefixList(["44"]).longest_match("+442079460018") == PrefixEntry("44")


def test_entries_may_be_strings_pairs_or_prefix_entries() -> None:
    prefixes = PrefixList(["1", ("2", "two"), PrefixEntry("3", "three")])
    assert list(prefixes) == [PrefixEntry("1"), PrefixEntry("2", "two"), PrefixEntry("3", "three")]
    assert len(prefixes) == 3
    assert "2" in prefixes
    assert "4" not in prefixes


def test_leading_plus_and_blanks_of_a_prefix_are_removed() -> None:
    assert list(PrefixList([" +882 "])) == [PrefixEntry("882")]


def test_lines_give_prefixes_and_labels_skipping_blanks_and_comments() -> None:
    prefixes = PrefixList.from_lines(
        ["# operator IRSF list", "", "88216, Thuraya", "252", "882,  ", "  "]
    )
    assert list(prefixes) == [
        PrefixEntry("88216", "Thuraya"),
        PrefixEntry("252"),
        PrefixEntry("882"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("88a2,bad", r"line 2: prefix '88a2' must contain only the digits 0-9"),
        (",no prefix", r"line 2: prefix is empty"),
        ("1234567890123456", r"line 2: prefix '1234567890123456' has 16 digits, at most 15"),
        ("8\u0668", r"line 2: prefix '8\u0668' must contain only the digits 0-9"),
        ("882,again", r"line 2: prefix '882' is already listed \(line 1\)"),
    ],
)
def test_bad_line_is_refused_naming_the_line_and_prefix(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PrefixList.from_lines(["882", line])


def test_bad_entry_is_refused_naming_the_entry() -> None:
    with pytest.raises(ValueError, match=r"entry 2: prefix '12-3' must contain only the digits"):
        PrefixList(["1", "12-3"])


def test_non_text_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="entry 1: prefix must be a string of digits"):
        PrefixList([123])  # type: ignore[list-item]


def test_fifteen_digit_prefix_is_accepted() -> None:
    prefix = "1" * MAX_PREFIX_LENGTH
    assert PrefixList([prefix]).longest_match(prefix) == PrefixEntry(prefix)


_PREFIXES = st.text(alphabet="0123", min_size=1, max_size=6)


@given(
    st.lists(_PREFIXES, unique=True, max_size=30),
    st.text(alphabet="0123", max_size=10),
)
@settings(max_examples=300, deadline=None)
def test_longest_match_is_the_longest_listed_prefix_of_the_number(
    prefixes: list[str], number: str
) -> None:
    listed = PrefixList(prefixes)
    candidates = [p for p in prefixes if number.startswith(p)]
    expected = max(candidates, key=len) if candidates else None
    found = listed.longest_match(number)
    assert (found.prefix if found is not None else None) == expected
