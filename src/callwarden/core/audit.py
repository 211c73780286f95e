"""The audit chain (GOV-1): each entry commits to the one before it.

An entry's hash is SHA-256 over a canonical JSON form of its fields and the previous entry's
hash, so changing, removing or reordering any stored entry breaks every link after it. This module
only computes and checks; the store appends entries in the same transaction as the change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

GENESIS_HASH = "0" * 64

JSONScalar = str | int | bool | None
JSONValue = JSONScalar | list["JSONValue"] | dict[str, "JSONValue"]


@dataclass(frozen=True, slots=True)
class AuditFact:
    """What happened, before it is placed in the chain."""

    actor: str
    action: str
    subject_type: str
    subject_id: str
    tenant_id: str | None
    reason: str | None = None
    clause_ids: tuple[str, ...] = ()
    details: Mapping[str, JSONValue] | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One link of the chain as stored."""

    seq: int
    at: datetime
    actor: str
    action: str
    subject_type: str
    subject_id: str
    tenant_id: str | None
    reason: str | None
    clause_ids: tuple[str, ...]
    details: Mapping[str, JSONValue]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first place where the stored chain does not hold."""

    seq: int
    problem: str


def entry_hash(
    seq: int, at: datetime, fact: AuditFact, details: Mapping[str, JSONValue], prev_hash: str
) -> str:
    """The hash an entry with these fields must carry."""
    body = {
        "seq": seq,
        "at": at.isoformat(timespec="microseconds"),
        "actor": fact.actor,
        "action": fact.action,
        "subject_type": fact.subject_type,
        "subject_id": fact.subject_id,
        "tenant_id": fact.tenant_id,
        "reason": fact.reason,
        "clause_ids": list(fact.clause_ids),
        "details": details,
        "prev_hash": prev_hash,
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def seal(seq: int, at: datetime, fact: AuditFact, prev_hash: str) -> AuditEntry:
    """Place `fact` in the chain after the entry whose hash is `prev_hash`."""
    details = dict(fact.details or {})
    return AuditEntry(
        seq=seq,
        at=at,
        actor=fact.actor,
        action=fact.action,
        subject_type=fact.subject_type,
        subject_id=fact.subject_id,
        tenant_id=fact.tenant_id,
        reason=fact.reason,
        clause_ids=fact.clause_ids,
        details=details,
        prev_hash=prev_hash,
        hash=entry_hash(seq, at, fact, details, prev_hash),
    )


def _fact_of(entry: AuditEntry) -> AuditFact:
    return AuditFact(
        actor=entry.actor,
        action=entry.action,
        subject_type=entry.subject_type,
        subject_id=entry.subject_id,
        tenant_id=entry.tenant_id,
        reason=entry.reason,
        clause_ids=entry.clause_ids,
        details=entry.details,
    )


def verify_chain(
    entries: Iterable[AuditEntry], head: tuple[int, str] | None = None
) -> ChainBreak | None:
    """Check entries in sequence order; return the first broken link, or None if all hold.

    `head` is the (seq, hash) the store recorded for its last append; it catches a chain whose
    newest entries were removed, which no link alone can show.
    """
    expected_prev = GENESIS_HASH
    expected_seq = 1
    for entry in entries:
        if entry.seq != expected_seq:
            return ChainBreak(entry.seq, f"entry {expected_seq} is missing")
        if entry.prev_hash != expected_prev:
            return ChainBreak(entry.seq, "does not point at the previous entry's hash")
        recomputed = entry_hash(
            entry.seq, entry.at, _fact_of(entry), entry.details, entry.prev_hash
        )
        if recomputed != entry.hash:
            return ChainBreak(entry.seq, "its content no longer matches its hash")
        expected_prev = entry.hash
        expected_seq += 1
    if head is not None:
        head_seq, head_hash = head
        last_seq = expected_seq - 1
        if head_seq != last_seq or (last_seq > 0 and head_hash != expected_prev):
            return ChainBreak(
                last_seq + 1, f"the chain ends at entry {last_seq} but the head records {head_seq}"
            )
    return None
