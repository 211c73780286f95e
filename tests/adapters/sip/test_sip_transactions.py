"""Server transaction matching (RFC 3261 section 17.2.3) and the table that expires them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from tests.adapters.sip.sipkit import ack_for, cancel_for, request, response_of

from callwarden.adapters.sip.incoming import IncomingRequest, check_request
from callwarden.adapters.sip.message import Request, parse_message
from callwarden.adapters.sip.transactions import Phase, TransactionTable, transaction_key

OK_302 = response_of(
    b"SIP/2.0 302 Moved Temporarily\r\nTo: <sip:+442079460123@gw.example>;tag=cw1\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def checked(data: bytes) -> IncomingRequest:
    message = parse_message(data)
    assert isinstance(message, Request)
    return check_request(message)


def test_a_retransmitted_invite_has_the_same_key() -> None:
    invite = request("INVITE")
    assert transaction_key(checked(invite)) == transaction_key(checked(invite))


def test_the_ack_of_a_final_response_matches_its_invite() -> None:
    invite = request("INVITE")
    assert transaction_key(checked(ack_for(invite, OK_302))) == transaction_key(checked(invite))


def test_a_cancel_finds_its_invite_but_is_a_transaction_of_its_own() -> None:
    invite = request("INVITE")
    cancel = checked(cancel_for(invite))
    assert transaction_key(cancel, "INVITE") == transaction_key(checked(invite))
    assert transaction_key(cancel) != transaction_key(checked(invite))


def test_a_new_branch_is_a_new_transaction_even_in_the_same_call() -> None:
    first = request("INVITE", branch="z9hG4bK-a", call_id="same@test")
    second = request("INVITE", branch="z9hG4bK-b", call_id="same@test")
    assert transaction_key(checked(first)) != transaction_key(checked(second))


def test_the_same_branch_from_another_sent_by_is_another_transaction() -> None:
    one = request("INVITE", branch="z9hG4bK-a", port=5060)
    other = request("INVITE", branch="z9hG4bK-a", port=5070)
    assert transaction_key(checked(one)) != transaction_key(checked(other))


def test_without_the_magic_cookie_rfc_2543_matching_applies() -> None:
    invite = request("INVITE", branch="old-style-1", call_id="legacy@test")
    key = transaction_key(checked(invite))
    assert key[0] == "2543"
    assert transaction_key(checked(ack_for(invite, OK_302))) == key
    other_cseq = request("INVITE", branch="old-style-1", call_id="legacy@test", cseq=2)
    assert transaction_key(checked(other_cseq)) != key


def test_an_open_transaction_is_found_until_it_expires() -> None:
    table = TransactionTable(lifetime_s=32.0)
    txn = table.open(("k",), now=100.0)
    assert table.find(("k",), 131.9) is txn
    assert table.find(("k",), 132.0) is None


def test_a_confirmed_transaction_lives_only_to_absorb_ack_retransmissions() -> None:
    table = TransactionTable(lifetime_s=32.0, confirmed_lifetime_s=5.0)
    txn = table.open(("k",), now=0.0)
    txn.complete(b"302")
    table.confirm(txn, now=1.0)
    assert txn.phase is Phase.CONFIRMED
    assert table.find(("k",), 5.9) is txn and table.find(("k",), 6.0) is None
    table.purge(6.0)
    assert len(table) == 0


def test_the_first_final_response_is_the_one_kept() -> None:
    txn = TransactionTable().open(("k",), now=0.0)
    txn.complete(b"487")
    txn.complete(b"302")
    assert txn.response == b"487" and txn.phase is Phase.COMPLETED


def test_a_full_table_evicts_the_transaction_closest_to_expiry() -> None:
    table = TransactionTable(lifetime_s=32.0, capacity=2)
    table.open(("a",), now=0.0)
    table.open(("b",), now=1.0)
    table.open(("c",), now=2.0)
    assert table.find(("a",), 2.0) is None
    assert table.find(("b",), 2.0) is not None and table.find(("c",), 2.0) is not None
    assert table.evicted == 1


def test_a_key_reopened_after_expiry_is_a_fresh_transaction() -> None:
    table = TransactionTable(lifetime_s=1.0)
    old = table.open(("k",), now=0.0)
    old.complete(b"302")
    new = table.open(("k",), now=5.0)
    assert new is not old and new.response is None
    table.purge(5.5)
    assert table.find(("k",), 5.5) is new


@given(st.lists(st.tuples(st.integers(0, 20), st.floats(0, 100), st.booleans()), max_size=60))
def test_the_table_never_holds_an_expired_transaction_after_a_purge(
    steps: list[tuple[int, float, bool]],
) -> None:
    table = TransactionTable(lifetime_s=10.0, confirmed_lifetime_s=2.0, capacity=8)
    now = 0.0
    for key, advance, confirm in steps:
        now += advance / 10
        txn = table.find((key,), now) or table.open((key,), now)
        if confirm:
            table.confirm(txn, now)
        table.purge(now)
        assert len(table) <= 8
        assert all(t.expires_at > now for t in table.live())
