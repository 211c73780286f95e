"""Rate deck CSV parsing: header variants, layouts, BOM, bad rows by line, refuse and skip."""

from __future__ import annotations

import csv
import gc
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callwarden.core.ratedeck import (
    BadRowsError,
    ParsedDeck,
    RateDeckError,
    parse_rate_deck,
)
from callwarden.core.rating import Rate, format_price

DATA = Path(__file__).parent / "data"
JAN = 1_704_067_200  # 2024-01-01T00:00:00Z
JUL = 1_719_792_000  # 2024-07-01T00:00:00Z
HEADER = "prefix,description,rate,connection fee,increment,effective date,currency"


def parse(text: str, **kwargs: object) -> ParsedDeck:
    return parse_rate_deck(text.splitlines(keepends=True), **kwargs)  # type: ignore[arg-type]


def bad_lines(error: BadRowsError | ParsedDeck) -> list[tuple[int, str]]:
    return [(row.line, row.reason) for row in error.bad_rows]


# --- layouts --------------------------------------------------------------------------------


def test_header_row_maps_columns_and_rows_become_rates() -> None:
    parsed = parse(f"{HEADER}\n447,UK Mobile,0.085,0.01,30/6,2024-01-01,USD\n")
    assert list(parsed.deck) == [
        Rate("447", 85_000_000, 10_000_000, 30, 6, JAN, "USD", "UK Mobile")
    ]
    assert parsed.header is True
    assert parsed.rows == 1
    assert parsed.bad_rows == ()


@pytest.mark.parametrize(
    "header",
    [
        "Prefix,Description,Rate,Connection Fee,Billing Increment,Effective Date,Currency",
        "Dial Code,Destination,Rate (USD/min),Setup Fee,Increments,Valid From,CCY",
        "CODE,COUNTRY,PRICE PER MINUTE,CONNECT_FEE,BILLING-INTERVAL,EFFECTIVE_FROM,CURR",
        "dialing_code,destination name,rate/min,connection charge,pulse,start date,currency code",
        "e164 prefix,zone,cost per minute,flagfall,interval,date,cur",
    ],
)
def test_common_header_name_variants_are_understood(header: str) -> None:
    parsed = parse(f"{header}\n44,UK,0.01,0.5,60/60,2024-01-01,USD\n")
    assert list(parsed.deck) == [Rate("44", 10_000_000, 500_000_000, 60, 60, JAN, "USD", "UK")]


def test_columns_are_found_in_any_order_and_unknown_ones_are_ignored() -> None:
    text = "currency,notes,rate,prefix,increment\nUSD,cheap,0.01,44,1/1\n"
    parsed = parse(text)
    assert list(parsed.deck) == [Rate("44", 10_000_000, 0, 1, 1, 0, "USD", "")]
    assert parsed.columns == {"currency": 0, "rate": 2, "prefix": 3, "increments": 4}


def test_initial_and_subsequent_increments_may_be_two_columns() -> None:
    text = "prefix,rate,initial increment,subsequent increment,currency\n44,0.01,30,6,USD\n"
    assert next(iter(parse(text).deck)).initial_s == 30
    assert next(iter(parse(text).deck)).subsequent_s == 6


def test_increment_column_beside_an_initial_column_is_the_subsequent_one() -> None:
    text = "prefix,rate,minimum,increment,currency\n44,0.01,60,6,USD\n"
    rate = next(iter(parse(text).deck))
    assert (rate.initial_s, rate.subsequent_s) == (60, 6)


def test_single_number_increment_means_the_same_initial_and_subsequent() -> None:
    rate = next(iter(parse("prefix,rate,increment,currency\n44,0.01,6,USD\n").deck))
    assert (rate.initial_s, rate.subsequent_s) == (6, 6)


def test_deck_without_header_is_read_positionally_with_seven_columns() -> None:
    parsed = parse('44,"UK, fixed",0.01,0,60/60,2024-01-01,USD\n')
    assert parsed.header is False
    assert list(parsed.deck) == [Rate("44", 10_000_000, 0, 60, 60, JAN, "USD", "UK, fixed")]


def test_deck_without_header_is_read_positionally_with_eight_columns() -> None:
    parsed = parse("44,UK,0.01,0,30,6,2024-01-01,USD\n45,DK,0.02,0,30,6,2024-01-01,USD\n")
    assert len(parsed.deck) == 2
    assert next(iter(parsed.deck)).subsequent_s == 6


def test_deck_without_header_and_an_unknown_column_count_is_refused() -> None:
    with pytest.raises(RateDeckError, match="line 1: a deck without a header needs 7 or 8"):
        parse("44,UK,0.01,60/60\n")


def test_first_row_that_is_neither_header_nor_data_is_refused() -> None:
    with pytest.raises(RateDeckError, match="line 1: the first row is neither a header"):
        parse("Destination,Rate,Increment\nUK,0.01,60/60\n")


def test_header_without_a_rate_column_is_refused() -> None:
    with pytest.raises(RateDeckError, match="the header has no rate column"):
        parse("prefix,description,increment,currency\n44,UK,60/60,USD\n")


def test_header_naming_one_field_twice_is_refused() -> None:
    with pytest.raises(RateDeckError, match=r"columns 2 \('rate'\) and 3 \('price'\) both"):
        parse("prefix,rate,price,increment,currency\n44,0.01,0.02,60/60,USD\n")


def test_deck_without_increments_needs_default_increments() -> None:
    with pytest.raises(RateDeckError, match="no billing increment column"):
        parse("prefix,rate,currency\n44,0.01,USD\n")
    parsed = parse("prefix,rate,currency\n44,0.01,USD\n", default_increments=(1, 1))
    assert next(iter(parsed.deck)).initial_s == 1


def test_deck_without_currency_column_needs_the_currency_argument() -> None:
    with pytest.raises(RateDeckError, match="no currency column: pass the deck's currency"):
        parse("prefix,rate,increment\n44,0.01,60/60\n")
    assert parse("prefix,rate,increment\n44,0.01,60/60\n", currency="GBP").deck.currency == "GBP"


def test_deck_without_effective_dates_is_in_force_from_default_effective() -> None:
    text = "prefix,rate,increment,currency\n44,0.01,60/60,USD\n"
    assert next(iter(parse(text).deck)).effective_from == 0
    assert next(iter(parse(text, default_effective=JUL).deck)).effective_from == JUL


def test_missing_connection_fee_column_or_empty_fee_means_no_fee() -> None:
    text = "prefix,rate,increment,currency,fee\n44,0.01,60/60,USD,\n"
    assert next(iter(parse(text).deck)).connection_fee_nano == 0
    text = "prefix,rate,increment,currency,connection fee\n44,0.01,60/60,USD,\n"
    assert next(iter(parse(text).deck)).connection_fee_nano == 0


# --- text details ---------------------------------------------------------------------------


def test_byte_order_mark_before_the_header_is_ignored() -> None:
    parsed = parse(f"\ufeff{HEADER}\n44,UK,0.01,0,60/60,2024-01-01,USD\n")
    assert parsed.header is True
    assert len(parsed.deck) == 1


def test_byte_order_mark_before_a_headerless_deck_is_ignored() -> None:
    assert len(parse("\ufeff44,UK,0.01,0,60/60,2024-01-01,USD\n").deck) == 1


def test_quoted_fields_may_hold_the_delimiter_and_line_breaks() -> None:
    text = f'{HEADER}\n44,"UK, fixed\n(geographic)",0.01,0,60/60,2024-01-01,USD\n'
    assert next(iter(parse(text).deck)).description == "UK, fixed\n(geographic)"


def test_blank_rows_comment_rows_and_trailing_delimiters_are_tolerated() -> None:
    text = f"# carrier X\n\n{HEADER}\n\n,,,,,,\n# note\n44,UK,0.01,0,60/60,2024-01-01,USD,,\n"
    parsed = parse(text)
    assert len(parsed.deck) == 1
    assert parsed.rows == 1


def test_other_delimiters_are_accepted_on_request() -> None:
    text = "prefix;rate;increment;currency\n44;0.01;60/60;USD\n"
    assert len(parse(text, delimiter=";").deck) == 1


def test_effective_dates_may_carry_a_time_and_an_offset() -> None:
    text = (
        "prefix,rate,increment,effective,currency\n"
        "44,0.01,60/60,2024-01-01 06:30:00,USD\n"
        "45,0.01,60/60,2024-01-01T01:00:00+01:00,USD\n"
        "46,0.01,60/60,2024-01-01T00:00:00Z,USD\n"
    )
    by_prefix = {rate.prefix: rate.effective_from for rate in parse(text).deck}
    assert by_prefix == {"44": JAN + 6 * 3600 + 1800, "45": JAN, "46": JAN}


def test_other_date_layouts_are_read_with_date_format() -> None:
    text = "prefix,rate,increment,effective,currency\n44,0.01,60/60,01/07/2024,USD\n"
    parsed = parse(text, date_format="%d/%m/%Y")
    assert next(iter(parsed.deck)).effective_from == JUL


def test_prefix_may_carry_a_leading_plus_and_blanks() -> None:
    text = "prefix,rate,increment,currency\n +44 ,0.01,60/60,USD\n"
    assert next(iter(parse(text).deck)).prefix == "44"


def test_currency_code_case_and_blanks_are_normalised() -> None:
    text = "prefix,rate,increment,currency\n44,0.01,60/60, usd \n45,0.01,60/60,USD\n"
    assert parse(text).deck.currency == "USD"
    assert len(parse(text).deck) == 2


def test_a_file_read_from_disk_with_bom_crlf_semicolons_and_bad_rows() -> None:
    with (DATA / "sample_deck.csv").open(newline="", encoding="utf-8") as handle:
        parsed = parse_rate_deck(handle, delimiter=";", on_error="skip")
    assert parsed.deck.currency == "EUR"
    assert bad_lines(parsed) == [
        (6, "rate '0,95' has a comma: decimal commas and thousands separators are not accepted")
    ]
    assert parsed.deck.lookup("+33612345678", JUL).rate_per_minute_nano == 19_000_000  # type: ignore[union-attr]
    assert parsed.deck.lookup("+33612345678", JAN).rate_per_minute_nano == 21_000_000  # type: ignore[union-attr]
    assert parsed.deck.lookup("+33142685300", JAN).description == "France; Fixed"  # type: ignore[union-attr]
    uk = parsed.deck.lookup("+442079460018", JAN)
    assert uk is not None
    assert uk.effective_from == JAN - 3600
    assert uk.connection_fee_nano == 0


def test_binary_lines_are_refused_with_a_hint() -> None:
    with pytest.raises(RateDeckError, match="open the file in text mode"):
        parse_rate_deck([b"prefix,rate\n"])  # type: ignore[list-item]


def test_empty_deck_is_refused() -> None:
    with pytest.raises(RateDeckError, match="the deck has no rows"):
        parse("")
    with pytest.raises(RateDeckError, match="the deck has no rows"):
        parse("\n\n# nothing\n")


def test_broken_csv_is_refused_with_its_line() -> None:
    huge = "x" * (csv.field_size_limit() + 1)
    with pytest.raises(RateDeckError, match="line 2: not valid CSV: field larger than"):
        parse(f'{HEADER}\n44,"{huge}",0.01,0,60/60,2024-01-01,USD\n')


# --- bad rows -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("4a4,X,0.01,0,60/60,2024-01-01,USD", "bad prefix '4a4': only the digits 0-9"),
        (",X,0.01,0,60/60,2024-01-01,USD", "prefix is empty"),
        ("0044,X,0.01,0,60/60,2024-01-01,USD", "bad prefix '0044': E.164 numbers never start"),
        ("4412345678901234,X,0.01,0,60/60,2024-01-01,USD", "16 digits, at most 15"),
        ("44,X,-0.01,0,60/60,2024-01-01,USD", "rate '-0.01' is negative"),
        ("44,X,,0,60/60,2024-01-01,USD", "rate is empty"),
        ("44,X,0.01,-1,60/60,2024-01-01,USD", "connection fee '-1' is negative"),
        ("44,X,0.01,0,0/60,2024-01-01,USD", "bad increments '0/60'"),
        ("44,X,0.01,0,60-60,2024-01-01,USD", "bad increments '60-60'"),
        ("44,X,0.01,0,60/7200,2024-01-01,USD", "bad increments '60/7200'"),
        ("44,X,0.01,0,60/60,15/01/2024,USD", "bad effective date '15/01/2024': expected ISO"),
        ("44,X,0.01,0,60/60,,USD", "bad effective date: empty"),
        ("44,X,0.01,0,60/60,2024-01-01,EUR", "wrong currency EUR: the deck is in USD"),
        ("44,X,0.01,0,60/60,2024-01-01,US$", "bad currency 'US$'"),
        ('44,X,"0,01",0,60/60,2024-01-01,USD', "rate '0,01' has a comma"),
        ("44,X,0,01,0,60/60,2024-01-01,USD", "8 fields, the header has 7 (a decimal comma"),
        ("44,X,0.01,0,60/60", "5 fields, the header has 7"),
    ],
)
def test_bad_row_is_reported_with_its_line_and_reason(row: str, reason: str) -> None:
    text = f"{HEADER}\n1,US,0.01,0,60/60,2024-01-01,USD\n\n{row}\n"
    with pytest.raises(BadRowsError) as caught:
        parse(text)
    [(line, message)] = bad_lines(caught.value)
    assert line == 4
    assert reason in message


def test_every_problem_of_a_row_is_named_in_its_reason() -> None:
    text = f"{HEADER}\n1,US,0.01,0,60/60,2024-01-01,USD\n4x,X,-1,0,0/0,bad,EUR\n"
    [(line, reason)] = bad_lines(parse(text, on_error="skip"))
    assert line == 3
    for part in ("bad prefix", "rate '-1' is negative", "bad increments", "bad effective date"):
        assert part in reason
    assert "wrong currency EUR" in reason


def test_second_row_for_a_prefix_and_effective_date_is_a_duplicate() -> None:
    text = (
        f"{HEADER}\n"
        "44,UK,0.01,0,60/60,2024-01-01,USD\n"
        "44,UK,0.01,0,60/60,2024-07-01,USD\n"
        "44,UK again,0.02,0,60/60,2024-01-01T00:00:00Z,USD\n"
    )
    parsed = parse(text, on_error="skip")
    assert bad_lines(parsed) == [
        (4, "duplicate: prefix 44 already has a rate effective 2024-01-01 on an earlier line (UK)")
    ]
    assert [rate.rate_per_minute_nano for rate in parsed.deck.versions("44")] == [10**7, 10**7]


def test_line_numbers_count_the_header_blank_comment_and_multiline_rows() -> None:
    text = (
        f"# deck\n{HEADER}\n\n"
        '44,"UK\nfixed",0.01,0,60/60,2024-01-01,USD\n'  # lines 4-5
        "45,DK,bad,0,60/60,2024-01-01,USD\n"  # line 6
        '46,"DE\n\nfixed",bad,0,60/60,2024-01-01,USD\n'  # lines 7-9
        "47,DK,bad,0,60/60,2024-01-01,USD\n"  # line 10
    )
    assert [line for line, _ in bad_lines(parse(text, on_error="skip"))] == [6, 7, 10]


def test_line_numbers_of_a_headerless_deck_start_at_its_first_row() -> None:
    text = "\n# deck\n44,UK,bad,0,60/60,2024-01-01,USD\n4x,UK,0.01,0,60/60,2024-01-01,USD\n"
    with pytest.raises(BadRowsError) as caught:
        parse(text)
    assert [row.line for row in caught.value.bad_rows] == [3, 4]


def test_refuse_accepts_nothing_and_raises_with_every_bad_row() -> None:
    rows = [f"{prefix},X,0.01,0,60/60,2024-01-01,USD" for prefix in ("44", "4a", "45", "0", "46")]
    with pytest.raises(BadRowsError) as caught:
        parse("\n".join([HEADER, *rows]) + "\n")
    assert [row.line for row in caught.value.bad_rows] == [3, 5]
    assert caught.value.bad_rows[0].cells == ("4a", "X", "0.01", "0", "60/60", "2024-01-01", "USD")
    assert "2 of 5 rows are bad: line 3: bad prefix '4a'" in str(caught.value)


def test_skip_accepts_the_good_rows_and_returns_the_bad_ones() -> None:
    rows = [f"{prefix},X,0.01,0,60/60,2024-01-01,USD" for prefix in ("44", "4a", "45", "0", "46")]
    parsed = parse("\n".join([HEADER, *rows]) + "\n", on_error="skip")
    assert sorted(rate.prefix for rate in parsed.deck) == ["44", "45", "46"]
    assert [row.line for row in parsed.bad_rows] == [3, 5]
    assert parsed.rows == 5


def test_currency_argument_refuses_rows_in_another_currency() -> None:
    text = f"{HEADER}\n44,UK,0.01,0,60/60,2024-01-01,USD\n"
    with pytest.raises(BadRowsError, match="wrong currency USD: the deck is in EUR"):
        parse(text, currency="EUR")


def test_skip_with_every_row_bad_and_no_currency_is_refused() -> None:
    with pytest.raises(BadRowsError, match="no row was accepted"):
        parse(f"{HEADER}\n4a,UK,0.01,0,60/60,2024-01-01,USD\n", on_error="skip")


def test_skip_with_every_row_bad_gives_an_empty_deck_in_the_known_currency() -> None:
    parsed = parse(
        f"{HEADER}\n4a,UK,0.01,0,60/60,2024-01-01,USD\n", on_error="skip", currency="USD"
    )
    assert len(parsed.deck) == 0
    assert len(parsed.bad_rows) == 1


def test_unknown_on_error_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="on_error must be 'refuse' or 'skip'"):
        parse(HEADER, on_error="ignore")


# --- streaming ------------------------------------------------------------------------------


def test_progress_is_reported_every_n_rows_and_at_the_end() -> None:
    rows = [f"{44 + n},X,0.01,0,60/60,2024-01-01,USD" for n in range(25)]
    seen: list[int] = []
    parse("\n".join([HEADER, *rows]), progress=seen.append, progress_every=10)
    assert seen == [10, 20, 25]


def test_lines_are_consumed_lazily_from_any_iterable() -> None:
    def lines() -> object:
        yield HEADER + "\n"
        for n in range(1000):
            yield f"{100 + n},X,0.01,0,60/60,2024-01-01,USD\n"

    parsed = parse_rate_deck(lines())  # type: ignore[arg-type]
    assert len(parsed.deck) == 1000


def test_text_file_objects_are_accepted() -> None:
    handle = io.StringIO(f"{HEADER}\r\n44,UK,0.01,0,60/60,2024-01-01,USD\r\n", newline="")
    assert len(parse_rate_deck(handle).deck) == 1


def test_garbage_collector_state_is_restored_after_parsing() -> None:
    assert gc.isenabled()
    parse(f"{HEADER}\n44,UK,0.01,0,60/60,2024-01-01,USD\n")
    assert gc.isenabled()
    gc.disable()
    try:
        parse(f"{HEADER}\n44,UK,0.01,0,60/60,2024-01-01,USD\n")
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- round trip -----------------------------------------------------------------------------

deck_rows = st.lists(
    st.tuples(
        st.from_regex(r"[1-9][0-9]{0,7}", fullmatch=True),
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
        st.integers(0, 10**12),
        st.integers(0, 10**10),
        st.sampled_from(((60, 60), (30, 6), (1, 1), (60, 1))),
        st.sampled_from((("2024-01-01", JAN), ("2024-07-01", JUL))),
    ),
    max_size=30,
    unique_by=lambda row: (row[0], row[5][0]),
)


@settings(max_examples=100)
@given(rows=deck_rows)
def test_deck_written_as_csv_parses_back_to_the_same_rates(
    rows: list[tuple[str, str, int, int, tuple[int, int], tuple[str, int]]],
) -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER.split(","))
    for prefix, name, per_minute, fee, (initial, subsequent), (date, _) in rows:
        price, fee_text = format_price(per_minute), format_price(fee)
        writer.writerow([prefix, name, price, fee_text, f"{initial}/{subsequent}", date, "USD"])
    out.seek(0)
    expected = sorted(
        Rate(prefix, per_minute, fee, i, s, epoch, "USD", name.strip())
        for prefix, name, per_minute, fee, (i, s), (_, epoch) in rows
    )
    assert sorted(parse_rate_deck(out, currency="USD").deck) == expected
