"""The audit chain: every change to a stored entry is caught at that entry."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from callwarden.core.audit import GENESIS_HASH, AuditEntry, AuditFact, seal, verify_chain

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def chain(n: int) -> list[AuditEntry]:
    entries: list[AuditEntry] = []
    prev = GENESIS_HASH
    for i in range(1, n + 1):
        fact = AuditFact(
            actor="us_op",
            action="tenant.suspended",
            subject_type="tenant",
            subject_id=f"tn_{i}",
            tenant_id=f"tn_{i}",
            reason=f"reason {i}",
            clause_ids=("GOV-2",),
            details={"n": i},
        )
        entry = seal(i, T0 + timedelta(seconds=i), fact, prev)
        entries.append(entry)
        prev = entry.hash
    return entries


def test_an_untouched_chain_verifies() -> None:
    entries = chain(20)
    assert verify_chain(entries, head=(20, entries[-1].hash)) is None


def test_an_empty_chain_verifies_against_an_empty_head() -> None:
    assert verify_chain([], head=(0, GENESIS_HASH)) is None


@given(
    n=st.integers(min_value=1, max_value=15),
    data=st.data(),
    field=st.sampled_from(["actor", "action", "subject_id", "reason", "tenant_id"]),
)
def test_changing_any_field_of_any_entry_breaks_the_chain_at_that_entry(
    n: int, data: st.DataObject, field: str
) -> None:
    entries = chain(n)
    victim = data.draw(st.integers(min_value=0, max_value=n - 1))
    entries[victim] = dataclasses.replace(entries[victim], **{field: "tampered"})
    broken = verify_chain(entries)
    assert broken is not None
    assert broken.seq == victim + 1


def test_changing_details_or_clauses_breaks_the_chain() -> None:
    for change in ({"details": {"n": 999}}, {"clause_ids": ("FRD-3",)}):
        entries = chain(5)
        entries[2] = dataclasses.replace(entries[2], **change)  # type: ignore[arg-type]
        broken = verify_chain(entries)
        assert broken is not None and broken.seq == 3


def test_a_removed_entry_is_reported_as_missing() -> None:
    entries = chain(6)
    del entries[3]
    broken = verify_chain(entries)
    assert broken is not None and broken.seq == 5 and "missing" in broken.problem


def test_removing_the_newest_entries_is_caught_by_the_head() -> None:
    entries = chain(6)
    head = (6, entries[-1].hash)
    broken = verify_chain(entries[:4], head=head)
    assert broken is not None and broken.seq == 5
