"""Server transactions: which requests are retransmissions of one another (RFC 3261 17.2.3),
and a table that keeps each INVITE's final answer long enough to repeat it.

A retransmitted INVITE must get the identical final response without a second admission
decision (which would count the attempt twice). The table keeps every INVITE transaction for
`lifetime_s` after it was opened (64*T1 = 32 s, Timer H: how long a client may retransmit), or
`confirmed_lifetime_s` after its ACK came (T4 = 5 s, Timer I: absorbing ACK retransmissions).
It holds at most `capacity` transactions; when full, the one closest to expiry goes first.
Pure bookkeeping: the caller passes the time.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import Enum

from callwarden.adapters.sip.fields import MAGIC_COOKIE
from callwarden.adapters.sip.incoming import IncomingRequest

T1 = 0.5
"""RFC 3261 T1: the round-trip estimate, in seconds."""
T2 = 4.0
"""RFC 3261 T2: the longest retransmission interval of a response, in seconds."""
T4 = 5.0
"""RFC 3261 T4: how long a message may stay in the network, in seconds."""

TransactionKey = tuple[str | int | tuple[str, int | None] | None, ...]


def transaction_key(incoming: IncomingRequest, method: str | None = None) -> TransactionKey:
    """The server transaction a request belongs to (RFC 3261 section 17.2.3).

    With an RFC 3261 branch (magic cookie z9hG4bK): branch, sent-by and method. Otherwise the
    RFC 2543 fallback: Request-URI, From tag, Call-ID, CSeq number and the top Via. An ACK
    belongs to its INVITE's transaction; `method` overrides the method (a CANCEL looks up the
    INVITE it cancels with method "INVITE").
    """
    wanted = method or incoming.method
    if wanted == "ACK":
        wanted = "INVITE"
    via = incoming.top_via
    branch = via.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        return ("3261", branch, via.sent_by, wanted)
    return (
        "2543",
        incoming.request.uri,
        incoming.from_tag,
        incoming.call_id,
        incoming.cseq.number,
        incoming.vias[0],
        wanted,
    )


class Phase(Enum):
    """Where an INVITE server transaction stands."""

    DECIDING = "deciding"
    """The admission decision is under way; retransmissions get 100 Trying."""
    COMPLETED = "completed"
    """The final response was sent; retransmissions get it again."""
    CONFIRMED = "confirmed"
    """The ACK came; retransmissions of the ACK are absorbed."""


@dataclass(eq=False, slots=True)
class ServerTransaction:
    """One INVITE server transaction: its phase, final response and when it expires."""

    key: TransactionKey
    opened_at: float
    expires_at: float
    phase: Phase = Phase.DECIDING
    response: bytes | None = None
    cancelled: bool = False

    def complete(self, response: bytes) -> None:
        """Record the final response (the first one wins)."""
        if self.response is None:
            self.response = response
            self.phase = Phase.COMPLETED


@dataclass
class TransactionTable:
    """The open INVITE server transactions by key, each removed when it expires."""

    lifetime_s: float = 64 * T1
    confirmed_lifetime_s: float = T4
    capacity: int = 200_000
    evicted: int = 0
    _entries: dict[TransactionKey, ServerTransaction] = field(default_factory=dict)
    _expiry: list[tuple[float, int, TransactionKey]] = field(default_factory=list)
    _seq: int = 0

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, key: TransactionKey, now: float) -> ServerTransaction | None:
        """The live transaction with this key, or None."""
        txn = self._entries.get(key)
        if txn is None or txn.expires_at <= now:
            return None
        return txn

    def open(self, key: TransactionKey, now: float) -> ServerTransaction:
        """A new transaction, replacing any expired one with the same key."""
        self.purge(now)
        while len(self._entries) >= self.capacity and self._expiry:
            if self._drop_next():
                self.evicted += 1
        txn = ServerTransaction(key, now, now + self.lifetime_s)
        self._entries[key] = txn
        self._schedule(txn)
        return txn

    def confirm(self, txn: ServerTransaction, now: float) -> None:
        """The ACK came: keep the transaction only to absorb ACK retransmissions."""
        if txn.phase is Phase.CONFIRMED:
            return
        txn.phase = Phase.CONFIRMED
        txn.expires_at = min(txn.expires_at, now + self.confirmed_lifetime_s)
        self._schedule(txn)

    def purge(self, now: float) -> None:
        """Forget every transaction that has expired."""
        while self._expiry and self._expiry[0][0] <= now:
            self._drop_next()

    def live(self) -> list[ServerTransaction]:
        """Every transaction still held."""
        return list(self._entries.values())

    def _schedule(self, txn: ServerTransaction) -> None:
        self._seq += 1
        heapq.heappush(self._expiry, (txn.expires_at, self._seq, txn.key))

    def _drop_next(self) -> bool:
        """Pop the earliest expiry; True when it removed a transaction (not a stale record
        left behind by `confirm`)."""
        expires_at, _, key = heapq.heappop(self._expiry)
        txn = self._entries.get(key)
        if txn is None or txn.expires_at != expires_at:
            return False
        del self._entries[key]
        return True
