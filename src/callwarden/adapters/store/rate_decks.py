"""Rate decks in the store: decks, their rates written and read in bulk, and assignments.

A carrier deck has up to millions of rates, so rates bypass the ORM both ways. Writes are
sorted by prefix (the primary key's order, so the B-tree grows at its end) and then sent in
bulk: on SQLite as ``executemany`` batches of an upsert on the driver's cursor, on PostgreSQL
through ``COPY ... FROM STDIN`` (psycopg 3's ``cursor.copy()``), straight into the table when
the deck has no rates yet and through a temporary table and one ``INSERT ... ON CONFLICT``
otherwise. Everything runs on the session's own connection, inside its transaction, so a
deck's rates and the audit entry of their import commit together or not at all.

Importing into a deck that has rates merges: a rate replaces the stored one with the same
prefix and effective date, and every other stored rate stays (so a new effective date adds a
version). ``replace=True`` deletes the deck's rates first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from operator import itemgetter
from typing import Any, Final

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callwarden.adapters.store.tables import (
    AuditHeadRow,
    AuditRow,
    RateDeckAssignmentRow,
    RateDeckRateRow,
    RateDeckRow,
)
from callwarden.core.errors import Conflict
from callwarden.core.rating import Rate, RateDeck
from callwarden.services.ports import Page, PageRequest, RateDeckAssignment, RateDeckInfo

#: Distinct effective dates listed with a deck; ``effective_date_count`` has them all.
EFFECTIVE_DATES_KEPT: Final[int] = 1000
#: Rates sent to the database per batch (SQLite) or per COPY write (PostgreSQL); progress is
#: reported after each.
BATCH: Final[int] = 50_000
#: The audit actions of rate deck changes all start with this (the change feed filters on it).
AUDIT_ACTION_PREFIX: Final[str] = "rate_deck."

_COLUMNS: Final[str] = (
    "deck_id, prefix, effective_from, description, rate_per_minute_nano, "
    "connection_fee_nano, initial_s, subsequent_s"
)
_UPDATES: Final[str] = (
    "description = excluded.description, "
    "rate_per_minute_nano = excluded.rate_per_minute_nano, "
    "connection_fee_nano = excluded.connection_fee_nano, "
    "initial_s = excluded.initial_s, subsequent_s = excluded.subsequent_s"
)
#: Binds a :class:`Rate` as it is (numbered parameters in its field order; ?7, the currency,
#: is the deck's and not stored per rate), so no per-row tuple is built. ``{deck}`` is the
#: deck id as an SQL literal, checked against the id pattern first.
_SQLITE_UPSERT: Final[str] = (
    f"INSERT INTO rate_deck_rates ({_COLUMNS}) VALUES ('{{deck}}', ?1, ?6, ?8, ?2, ?3, ?4, ?5) "
    f"ON CONFLICT (deck_id, prefix, effective_from) DO UPDATE SET {_UPDATES}"
)
_DECK_ID: Final[re.Pattern[str]] = re.compile(r"rd_[0-9a-f]{16}")
_LOAD: Final[str] = (
    "SELECT prefix, rate_per_minute_nano, connection_fee_nano, initial_s, subsequent_s, "
    "effective_from, CAST({p} AS VARCHAR(3)), description "
    "FROM rate_deck_rates WHERE deck_id = {p}"
)
_COPY_ESCAPES: Final[dict[int, str]] = {
    ord("\\"): "\\\\",
    ord("\t"): "\\t",
    ord("\n"): "\\n",
    ord("\r"): "\\r",
}


# -- decks ------------------------------------------------------------------------------------


def _info(row: RateDeckRow) -> RateDeckInfo:
    return RateDeckInfo(
        id=row.id,
        name=row.name,
        currency=row.currency,
        description=row.description,
        rate_count=row.rate_count,
        effective_dates=tuple(int(d) for d in row.effective_dates),
        effective_date_count=row.effective_date_count,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def add_deck(session: Session, deck: RateDeckInfo) -> None:
    """Store a new deck; ``Conflict`` if its name is taken."""
    session.add(
        RateDeckRow(
            id=deck.id,
            name=deck.name,
            currency=deck.currency,
            description=deck.description,
            rate_count=deck.rate_count,
            effective_dates=list(deck.effective_dates),
            effective_date_count=deck.effective_date_count,
            created_at=deck.created_at,
            updated_at=deck.updated_at,
        )
    )
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a rate deck named {deck.name!r} already exists", field="name") from exc


def get_deck(session: Session, deck_id: str) -> RateDeckInfo | None:
    """One deck by id."""
    row = session.get(RateDeckRow, deck_id)
    return _info(row) if row else None


def get_deck_by_name(session: Session, name: str) -> RateDeckInfo | None:
    """One deck by its unique name."""
    row = session.scalar(select(RateDeckRow).where(RateDeckRow.name == name))
    return _info(row) if row else None


def list_decks(session: Session, page: PageRequest) -> Page[RateDeckInfo]:
    """A page of the decks, by name."""
    total = session.scalar(select(func.count()).select_from(RateDeckRow)) or 0
    rows = session.scalars(
        select(RateDeckRow).order_by(RateDeckRow.name).limit(page.limit).offset(page.offset)
    )
    return Page([_info(r) for r in rows], total, page.limit, page.offset)


# -- rates ------------------------------------------------------------------------------------


def write_rates(
    session: Session,
    deck_id: str,
    rates: Iterable[Rate],
    *,
    replace: bool,
    at: datetime,
    progress: Callable[[int], None] | None = None,
) -> RateDeckInfo:
    """Write ``rates`` into the deck (merging, or replacing every stored rate) and return the
    deck with its figures recounted. The deck row is locked first, so two imports into one
    deck run one after the other. Rates carry their currency; the caller checks it is the
    deck's (only prices and increments are stored per rate)."""
    deck = session.scalars(
        select(RateDeckRow).where(RateDeckRow.id == deck_id).with_for_update()
    ).one()
    ordered = sorted(rates, key=itemgetter(0))
    if replace:
        session.execute(delete(RateDeckRateRow).where(RateDeckRateRow.deck_id == deck_id))
    connection = session.connection()
    dbapi = connection.connection
    if connection.dialect.name == "postgresql":
        empty = replace or deck.rate_count == 0
        _copy_postgres(dbapi.driver_connection, deck_id, ordered, empty, progress)
    else:
        _insert_sqlite(dbapi.cursor(), deck_id, ordered, progress)
    counts = session.execute(
        select(RateDeckRateRow.effective_from, func.count())
        .where(RateDeckRateRow.deck_id == deck_id)
        .group_by(RateDeckRateRow.effective_from)
        .order_by(RateDeckRateRow.effective_from)
    ).all()
    deck.rate_count = sum(count for _, count in counts)
    deck.effective_dates = [int(when) for when, _ in counts[:EFFECTIVE_DATES_KEPT]]
    deck.effective_date_count = len(counts)
    deck.updated_at = at
    session.flush()
    return _info(deck)


def _insert_sqlite(
    cursor: Any,
    deck_id: str,
    rates: list[Rate],
    progress: Callable[[int], None] | None,
) -> None:
    """Upsert the rates in batches on the sqlite3 cursor (inside the session's transaction)."""
    if not _DECK_ID.fullmatch(deck_id):
        raise ValueError(f"not a rate deck id: {deck_id!r}")
    statement = _SQLITE_UPSERT.format(deck=deck_id)
    try:
        for start in range(0, len(rates), BATCH):
            cursor.executemany(statement, rates[start : start + BATCH])
            if progress is not None:
                progress(min(start + BATCH, len(rates)))
    finally:
        cursor.close()


def _copy_lines(deck_id: str, rates: list[Rate]) -> Iterator[str]:
    """The rates in COPY's text format, ``BATCH`` rows to a string."""
    escaped: dict[str, str] = {}
    for start in range(0, len(rates), BATCH):
        lines = []
        for prefix, rate, fee, initial, subsequent, effective, _, description in rates[
            start : start + BATCH
        ]:
            text = escaped.get(description)
            if text is None:
                text = escaped[description] = description.translate(_COPY_ESCAPES)
            lines.append(
                f"{deck_id}\t{prefix}\t{effective}\t{text}\t{rate}\t{fee}\t{initial}\t{subsequent}\n"
            )
        yield "".join(lines)


def _copy_postgres(
    connection: Any,
    deck_id: str,
    rates: list[Rate],
    empty: bool,
    progress: Callable[[int], None] | None,
) -> None:
    """COPY the rates in: into the table itself when the deck is empty, else into a temporary
    table merged with one INSERT ... ON CONFLICT."""
    target = "rate_deck_rates" if empty else "rate_deck_import"
    with connection.cursor() as cursor:
        if not empty:
            cursor.execute("DROP TABLE IF EXISTS pg_temp.rate_deck_import")
            cursor.execute(
                "CREATE TEMPORARY TABLE rate_deck_import (LIKE rate_deck_rates) ON COMMIT DROP"
            )
        done = 0
        with cursor.copy(f"COPY {target} ({_COLUMNS}) FROM STDIN") as copy:
            for block in _copy_lines(deck_id, rates):
                copy.write(block)
                done = min(done + BATCH, len(rates))
                if progress is not None:
                    progress(done)
        if not empty:
            cursor.execute(
                f"INSERT INTO rate_deck_rates ({_COLUMNS}) SELECT {_COLUMNS} FROM rate_deck_import "
                f"ON CONFLICT (deck_id, prefix, effective_from) DO UPDATE SET {_UPDATES}"
            )
            cursor.execute("DROP TABLE pg_temp.rate_deck_import")


def load_deck(session: Session, deck_id: str) -> RateDeck | None:
    """The deck's rates as an in-memory :class:`RateDeck` (checked again as it is built), or
    ``None`` if there is no such deck. Read on the driver's cursor: a million rates load in a
    few seconds."""
    deck = session.get(RateDeckRow, deck_id)
    if deck is None:
        return None
    connection = session.connection()
    placeholder = "%s" if connection.dialect.name == "postgresql" else "?"
    cursor: Any = connection.connection.cursor()
    try:
        cursor.execute(_LOAD.format(p=placeholder), (deck.currency, deck_id))
        return RateDeck(map(Rate._make, cursor), currency=deck.currency)
    finally:
        cursor.close()


# -- assignments ------------------------------------------------------------------------------


def assignments(session: Session) -> list[RateDeckAssignment]:
    """Every assignment of a deck to a plan or tenant."""
    rows = session.scalars(select(RateDeckAssignmentRow))
    return [RateDeckAssignment(r.scope, r.scope_id, r.deck_id, r.assigned_at) for r in rows]


def set_assignment(session: Session, assignment: RateDeckAssignment) -> None:
    """Assign the deck to the plan or tenant, replacing the deck it had."""
    row = session.get(RateDeckAssignmentRow, (assignment.scope, assignment.scope_id))
    if row is None:
        row = RateDeckAssignmentRow(scope=assignment.scope, scope_id=assignment.scope_id)
        session.add(row)
    row.deck_id = assignment.deck_id
    row.assigned_at = assignment.assigned_at
    session.flush()


def delete_assignment(session: Session, scope: str, scope_id: str) -> bool:
    """Drop the plan's or tenant's assignment; False if it had none."""
    row = session.get(RateDeckAssignmentRow, (scope, scope_id))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def changed_since(session: Session, seq: int) -> tuple[int, bool]:
    """The audit log's head, and whether a rate deck changed after entry ``seq`` (the change
    feed other instances read to drop the decks they cached)."""
    head = session.scalar(select(AuditHeadRow.seq).where(AuditHeadRow.id == 1)) or 0
    latest = session.scalar(
        select(func.max(AuditRow.seq)).where(
            AuditRow.seq > seq, AuditRow.action.startswith(AUDIT_ACTION_PREFIX, autoescape=True)
        )
    )
    return head, latest is not None
