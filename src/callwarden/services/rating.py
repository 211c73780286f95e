"""Rating: rate decks created, imported, assigned to plans and tenants, and looked up (LIM-1).

Changes (creating a deck, importing rates, assigning a deck) are operator-only, audited in the
same transaction as the change (GOV-1), and drop what this process cached at once; other
processes drop theirs when they read the change feed (:meth:`RatingService.poll_changes`).

Lookups for admission (:meth:`RatingService.deck_for`, :meth:`RatingService.rate_for`) answer
from memory: the assignments are read once, and each assigned deck is loaded from the store
into a :class:`~callwarden.core.rating.RateDeck` the first time it is needed, then kept until
it changes. A tenant's own deck wins over its plan's.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from callwarden.core import validation as v
from callwarden.core.errors import InvalidInput, NotFound
from callwarden.core.model import Principal
from callwarden.core.permissions import Permission
from callwarden.core.ratedeck import BadRow, BadRowsError, OnError, RateDeckError, parse_rate_deck
from callwarden.core.rating import Rate, RateDeck, check_currency
from callwarden.services.governance import GovernanceService, authorize
from callwarden.services.ids import new_id
from callwarden.services.ports import (
    Page,
    PageRequest,
    RateDeckAssignment,
    RateDeckInfo,
    TenantQuery,
    Transaction,
)

ImportMode = Literal["merge", "replace"]
"""How an import meets the rates a deck already holds: ``merge`` adds them (a rate with the
prefix and effective date of a stored one replaces it), ``replace`` drops every stored rate."""

SCOPES: Final[tuple[str, ...]] = ("plan", "tenant")
CLAUSES: Final[tuple[str, ...]] = ("LIM-1",)
_DECK_ID: Final[re.Pattern[str]] = re.compile(r"rd_[0-9a-f]{16}")
_NUMBER: Final[re.Pattern[str]] = re.compile(r"\+?([1-9][0-9]{0,14})")


@dataclass(frozen=True, slots=True)
class ImportProgress:
    """How far an import is: ``stage`` "read" counts data rows read from the file (``total``
    unknown), then "store" counts rates written of ``total``."""

    stage: Literal["read", "store"]
    done: int
    total: int | None


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: the deck after it, the data rows read, the rates written, and the
    rows skipped as bad (``on_error="skip"``), each with its line number and reason."""

    deck: RateDeckInfo
    mode: ImportMode
    rows_read: int
    rates_imported: int
    bad_rows: tuple[BadRow, ...]


class RatingService:
    """Rate decks for the operator, and the deck and rate of a call for admission."""

    def __init__(self, governance: GovernanceService) -> None:
        self.governance = governance
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._generation = 0
        self._assignments: dict[tuple[str, str], str] | None = None
        self._decks: dict[str, RateDeck] = {}
        self._feed_seq: int | None = None

    # -- decks ---------------------------------------------------------------------------------
    def create_deck(
        self, by: Principal, *, name: str, currency: str, description: str = ""
    ) -> RateDeckInfo:
        """Add an empty deck in one currency; its rates come by :meth:`import_rates`."""
        authorize(by, Permission.RATE_DECKS_WRITE)
        gov = self.governance
        now = gov.clock()
        deck = RateDeckInfo(
            id=new_id("rd"),
            name=v.check_text(name, "name", max_length=100),
            currency=_currency(currency),
            description=v.check_text(description, "description", allow_empty=True),
            rate_count=0,
            effective_dates=(),
            effective_date_count=0,
            created_at=now,
            updated_at=now,
        )
        with gov.store.transaction() as tx:
            tx.add_rate_deck(deck)
            gov._audit(
                tx,
                by,
                "rate_deck.created",
                "rate_deck",
                deck.id,
                None,
                clause_ids=CLAUSES,
                details={"name": deck.name, "currency": deck.currency},
            )
        return deck

    def get_deck(self, by: Principal, deck_id: str) -> RateDeckInfo:
        """One deck, with its rate count and effective dates."""
        authorize(by, Permission.RATE_DECKS_READ)
        with self.governance.store.transaction() as tx:
            return _deck_info(tx, deck_id)

    def find_deck(self, by: Principal, ref: str) -> RateDeckInfo:
        """A deck by its id or its name (the CLI names decks)."""
        authorize(by, Permission.RATE_DECKS_READ)
        with self.governance.store.transaction() as tx:
            found = tx.get_rate_deck(ref) if _DECK_ID.fullmatch(ref) else None
            found = found or tx.get_rate_deck_by_name(ref.strip())
        if found is None:
            raise NotFound(f"no rate deck has the id or name {ref!r}", field="deck")
        return found

    def list_decks(self, by: Principal, page: PageRequest) -> Page[RateDeckInfo]:
        """The decks, by name."""
        authorize(by, Permission.RATE_DECKS_READ)
        with self.governance.store.transaction() as tx:
            return tx.list_rate_decks(page)

    # -- imports -------------------------------------------------------------------------------
    def import_rates(
        self,
        by: Principal,
        deck_id: str,
        lines: Iterable[str],
        *,
        on_error: OnError = "refuse",
        mode: ImportMode = "merge",
        currency: str | None = None,
        progress: Callable[[ImportProgress], None] | None = None,
    ) -> ImportResult:
        """Import a CSV deck (the layout of :mod:`callwarden.core.ratedeck`) into the deck.

        ``on_error="refuse"`` stores nothing if any row is bad and raises
        :class:`~callwarden.core.ratedeck.BadRowsError` carrying every bad row with its line
        number; ``"skip"`` stores the good rows and returns the bad ones. ``mode`` is
        :data:`ImportMode`. ``currency``, if given, must be the deck's (a check that the file
        is the one meant); rows in another currency are bad rows. An import that accepts no
        rate at all is refused, so ``replace`` never empties a deck by mistake. ``progress``
        is told of rows read, then of rates stored.
        """
        authorize(by, Permission.RATE_DECKS_WRITE)
        if on_error not in ("refuse", "skip"):
            raise InvalidInput("on_error must be 'refuse' or 'skip'", field="on_error")
        if mode not in ("merge", "replace"):
            raise InvalidInput("mode must be 'merge' or 'replace'", field="mode")
        gov = self.governance
        with gov.store.transaction() as tx:
            deck = _deck_info(tx, deck_id)
        if currency is not None and _currency(currency) != deck.currency:
            raise InvalidInput(
                f"rate deck {deck.name!r} is in {deck.currency}, not {currency.strip().upper()}",
                field="currency",
            )

        def rows_read(rows: int) -> None:
            if progress is not None:
                progress(ImportProgress("read", rows, None))

        try:
            parsed = parse_rate_deck(
                _text_lines(lines), on_error=on_error, currency=deck.currency, progress=rows_read
            )
        except UnicodeDecodeError as exc:
            byte = exc.object[exc.start : exc.start + 1].hex()
            raise RateDeckError(
                f"the deck is not UTF-8 text (byte 0x{byte} cannot be read as UTF-8): save the "
                "spreadsheet as CSV UTF-8"
            ) from exc
        if len(parsed.deck) == 0:
            if parsed.bad_rows:
                raise BadRowsError(
                    f"no row was accepted: all {parsed.rows} rows are bad", parsed.bad_rows
                )
            raise RateDeckError("the deck has no rates: nothing to import")
        total = len(parsed.deck)

        def stored(done: int) -> None:
            if progress is not None:
                progress(ImportProgress("store", done, total))

        with gov.store.transaction() as tx:
            _deck_info(tx, deck_id)
            after = tx.write_rates(
                deck_id, parsed.deck, replace=mode == "replace", at=gov.clock(), progress=stored
            )
            gov._audit(
                tx,
                by,
                "rate_deck.imported",
                "rate_deck",
                deck_id,
                None,
                clause_ids=CLAUSES,
                details={
                    "name": deck.name,
                    "mode": mode,
                    "on_error": on_error,
                    "rows_read": parsed.rows,
                    "rates_imported": total,
                    "bad_rows": len(parsed.bad_rows),
                    "rate_count": after.rate_count,
                },
            )
            affected = self._tenants_rated_by(tx, deck_id)
        self._forget(deck_id)
        for tenant_id in affected:
            gov._changed(tenant_id)
        return ImportResult(after, mode, parsed.rows, total, parsed.bad_rows)

    # -- assignments ---------------------------------------------------------------------------
    def assign(self, by: Principal, scope: str, scope_id: str, deck_id: str) -> RateDeckAssignment:
        """Rate the calls of a plan's tenants, or of one tenant, with the deck. A tenant's own
        deck wins over its plan's. The deck must be in the plan's currency (the tenant's
        plan's), so spend and limits are counted in one currency."""
        authorize(by, Permission.RATE_DECKS_WRITE, scope_id if scope == "tenant" else None)
        gov = self.governance
        with gov.store.transaction() as tx:
            plan_currency = _scope_currency(tx, scope, scope_id)
            deck = tx.get_rate_deck(deck_id)
            if deck is None:
                raise InvalidInput(f"deck_id {deck_id!r} names no rate deck", field="deck_id")
            if deck.currency != plan_currency:
                raise InvalidInput(
                    f"rate deck {deck.name!r} is in {deck.currency}, but the {scope}'s plan "
                    f"counts spend in {plan_currency}",
                    field="deck_id",
                )
            assignment = RateDeckAssignment(scope, scope_id, deck_id, gov.clock())
            tx.set_rate_deck_assignment(assignment)
            gov._audit(
                tx,
                by,
                "rate_deck.assigned",
                scope,
                scope_id,
                scope_id if scope == "tenant" else None,
                clause_ids=CLAUSES,
                details={"deck_id": deck.id, "name": deck.name, "currency": deck.currency},
            )
            affected = _tenants_of(tx, scope, scope_id)
        self._forget_assignments()
        for tenant_id in affected:
            gov._changed(tenant_id)
        return assignment

    def unassign(self, by: Principal, scope: str, scope_id: str) -> None:
        """Drop the plan's or tenant's deck (a tenant falls back to its plan's)."""
        authorize(by, Permission.RATE_DECKS_WRITE, scope_id if scope == "tenant" else None)
        gov = self.governance
        with gov.store.transaction() as tx:
            _scope_currency(tx, scope, scope_id)
            if not tx.delete_rate_deck_assignment(scope, scope_id):
                raise NotFound(f"{scope} {scope_id} has no rate deck assigned", field="deck_id")
            gov._audit(
                tx,
                by,
                "rate_deck.unassigned",
                scope,
                scope_id,
                scope_id if scope == "tenant" else None,
                clause_ids=CLAUSES,
            )
            affected = _tenants_of(tx, scope, scope_id)
        self._forget_assignments()
        for tenant_id in affected:
            gov._changed(tenant_id)

    def assignment(self, by: Principal, scope: str, scope_id: str) -> RateDeckAssignment:
        """The deck assigned to the plan or tenant itself (not inherited)."""
        authorize(by, Permission.RATE_DECKS_READ, scope_id if scope == "tenant" else None)
        with self.governance.store.transaction() as tx:
            _scope_currency(tx, scope, scope_id)
            found = [
                a for a in tx.rate_deck_assignments() if (a.scope, a.scope_id) == (scope, scope_id)
            ]
        if not found:
            raise NotFound(f"{scope} {scope_id} has no rate deck assigned", field="deck_id")
        return found[0]

    # -- lookups -------------------------------------------------------------------------------
    def lookup(self, by: Principal, deck_id: str, number: str, at: float) -> Rate:
        """The rate of the deck for a call to ``number`` (E.164, '+' optional) at ``at``
        (epoch seconds); ``NotFound`` naming the number if no prefix of it is in force."""
        authorize(by, Permission.RATE_DECKS_READ)
        digits = _digits(number)
        deck = self._deck(deck_id)
        if deck is None:
            raise NotFound(f"rate deck {deck_id} not found", field="deck_id")
        rate = deck.lookup(digits, at)
        if rate is None:
            raise NotFound(
                f"rate deck {deck_id} has no rate for +{digits} at that time", field="number"
            )
        return rate

    def deck_for(self, tenant_id: str, plan_id: str) -> RateDeck | None:
        """The deck that rates the tenant's calls: its own, else its plan's, else ``None``.

        From memory after the first call for a deck; that first call reads the deck from the
        store (a million rates take seconds), so async callers should make it off the event
        loop.
        """
        assignments = self._assignments
        if assignments is None:
            assignments = self._load_assignments()
        deck_id = assignments.get(("tenant", tenant_id)) or assignments.get(("plan", plan_id))
        if deck_id is None:
            return None
        deck = self._decks.get(deck_id)
        return deck if deck is not None else self._deck(deck_id)

    def is_cached(self, tenant_id: str, plan_id: str) -> bool:
        """Whether :meth:`deck_for` would answer from memory, without reading the store: an
        async caller may call it on the event loop then, and should move it off otherwise
        (after an import or a change from another process, the deck is read again)."""
        assignments = self._assignments
        if assignments is None:
            return False
        deck_id = assignments.get(("tenant", tenant_id)) or assignments.get(("plan", plan_id))
        return deck_id is None or deck_id in self._decks

    def rate_for(self, tenant_id: str, plan_id: str, e164: str, at: float) -> Rate | None:
        """The rate of a call from the tenant to ``e164`` starting at ``at`` (epoch seconds),
        or ``None`` when the tenant has no deck or its deck has no rate for the number."""
        deck = self.deck_for(tenant_id, plan_id)
        return deck.lookup(e164, at) if deck is not None else None

    # -- the cache -----------------------------------------------------------------------------
    def poll_changes(self) -> bool:
        """Read the change feed and drop everything cached if another process changed a deck
        or an assignment; returns whether it did."""
        with self.governance.store.transaction() as tx:
            if self._feed_seq is None:
                self._feed_seq = tx.audit_head()[0]
                return False
            head, changed = tx.rate_deck_changed_since(self._feed_seq)
        self._feed_seq = head
        if changed:
            self.forget_all()
        return changed

    def forget_all(self) -> None:
        """Drop every cached assignment and deck; the next lookup reads them again."""
        with self._lock:
            self._generation += 1
            self._assignments = None
            self._decks = {}

    def _forget(self, deck_id: str) -> None:
        with self._lock:
            self._generation += 1
            self._decks.pop(deck_id, None)

    def _forget_assignments(self) -> None:
        with self._lock:
            self._generation += 1
            self._assignments = None

    def _start_feed(self, tx: Transaction) -> None:
        """Note the feed's position before the first read, so no later change is missed."""
        if self._feed_seq is None:
            self._feed_seq = tx.audit_head()[0]

    def _load_assignments(self) -> dict[tuple[str, str], str]:
        with self._lock:
            generation = self._generation
        with self.governance.store.transaction() as tx:
            self._start_feed(tx)
            loaded = {(a.scope, a.scope_id): a.deck_id for a in tx.rate_deck_assignments()}
        with self._lock:
            if self._generation == generation:
                self._assignments = loaded
                self._decks = {k: d for k, d in self._decks.items() if k in loaded.values()}
        return loaded

    def _deck(self, deck_id: str) -> RateDeck | None:
        """The deck from memory, or loaded (one load at a time, each deck loaded once)."""
        deck = self._decks.get(deck_id)
        if deck is not None:
            return deck
        with self._load_lock:
            deck = self._decks.get(deck_id)
            if deck is not None:
                return deck
            with self._lock:
                generation = self._generation
            with self.governance.store.transaction() as tx:
                self._start_feed(tx)
                deck = tx.load_rate_deck(deck_id)
            if deck is not None:
                with self._lock:
                    if self._generation == generation:
                        self._decks = {**self._decks, deck_id: deck}
        return deck

    def _tenants_rated_by(self, tx: Transaction, deck_id: str) -> list[str]:
        """Tenants whose calls the deck may rate (assigned to them or to their plan)."""
        tenants: list[str] = []
        for a in tx.rate_deck_assignments():
            if a.deck_id == deck_id:
                tenants.extend(_tenants_of(tx, a.scope, a.scope_id))
        return list(dict.fromkeys(tenants))


def effective_datetime(epoch_s: int) -> datetime:
    """An effective date (epoch seconds) as a UTC datetime, for people and the API. A deck may
    give a date whose UTC time lies outside years 1 to 9999 (9999-12-31 with a negative offset);
    it shows as the nearest datetime there is."""
    try:
        return datetime.fromtimestamp(epoch_s, UTC)
    except (ValueError, OverflowError, OSError):
        return (datetime.max if epoch_s > 0 else datetime.min).replace(tzinfo=UTC)


def _currency(value: str) -> str:
    try:
        return check_currency(value.strip().upper())
    except ValueError as exc:
        raise InvalidInput(str(exc), field="currency") from exc


def _digits(number: str) -> str:
    match = _NUMBER.fullmatch(number.strip())
    if match is None:
        raise InvalidInput(
            f"number {number!r} is not an E.164 number ('+' optional, 1 to 15 digits, "
            "no leading 0)",
            field="number",
        )
    return match.group(1)


def _deck_info(tx: Transaction, deck_id: str) -> RateDeckInfo:
    deck = tx.get_rate_deck(deck_id)
    if deck is None:
        raise NotFound(f"rate deck {deck_id} not found", field="deck_id")
    return deck


def _scope_currency(tx: Transaction, scope: str, scope_id: str) -> str:
    """The currency spend is counted in for the plan or tenant; NotFound if it does not exist."""
    if scope == "plan":
        plan = tx.get_plan(scope_id)
        if plan is None:
            raise NotFound(f"plan {scope_id} not found", field="plan_id")
        return plan.currency
    if scope == "tenant":
        tenant = tx.get_tenant(scope_id)
        if tenant is None:
            raise NotFound(f"tenant {scope_id} not found", field="tenant_id")
        tenant_plan = tx.get_plan(tenant.plan_id)
        if tenant_plan is None:
            raise NotFound(f"plan {tenant.plan_id} not found", field="plan_id")
        return tenant_plan.currency
    raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}", field="scope")


def _tenants_of(tx: Transaction, scope: str, scope_id: str) -> list[str]:
    if scope == "tenant":
        return [scope_id]
    tenants = tx.list_tenants(TenantQuery(plan_id=scope_id), PageRequest(limit=10**9))
    return [t.id for t in tenants.items]


def _text_lines(lines: Iterable[str]) -> Iterator[str]:
    """The lines, refusing a NUL character (a binary file, such as a spreadsheet saved as is:
    and no database stores NUL in text) with its line number."""
    for number, line in enumerate(lines, 1):
        try:
            binary = "\x00" in line
        except TypeError:
            raise RateDeckError(
                "a rate deck is read as text lines: open the file in text mode"
            ) from None
        if binary:
            raise RateDeckError(
                "has a NUL character: is this a spreadsheet file rather than CSV text?",
                line=number,
            )
        yield line
