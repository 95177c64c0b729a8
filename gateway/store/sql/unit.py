"""The base of every write of one unit of work, in SQL both backends run.

Writes whose answer is known up front are queued in ``_pending`` and sent with the
unit's next statement that needs an answer, or at its end (``flush``): a backend sends
them as cheaply as it can (SQLite: all in one hand-off to its connection's thread). A
``Checked`` write must change exactly its number of rows; when it does not, the unit's
area module says which error that stands for (``_mismatched``). The area modules beside
this one (``operations``, ``outbox``, ``idempotency``, ``journal``, ``read_model``,
``xref``) hold the SQL; a backend adds its connection work and the few statements its
dialect writes differently.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from gateway.store.errors import StoreError
from gateway.store.records import IdempotencyRecord, Operation
from gateway.store.sql.reads import SQLReader
from gateway.store.sql.rows import Row, to_micros

__all__ = ["Checked", "RowCountMismatch", "SQLUnit", "Statement"]

#: no limit, for statements that take one (SQLite and PostgreSQL spell "none" apart)
NO_LIMIT = 2**62


class Checked(NamedTuple):
    """A held-back write that must change exactly ``rows`` rows (an update of a leased
    message, of a known operation); ``what`` says to the caller which one it was."""

    sql: str
    params: Sequence[Any]
    rows: int
    what: Any


class RowCountMismatch(Exception):
    """A ``Checked`` statement changed another number of rows than it must."""

    def __init__(self, statement: Checked, rowcount: int) -> None:
        super().__init__(f"{statement.sql!r} changed {rowcount} rows, not {statement.rows}")
        self.statement = statement
        self.rowcount = rowcount


Statement = tuple[str, Sequence[Any]] | Checked


class SQLUnit(SQLReader):
    """A unit of work's state; the store commits or rolls back."""

    #: the larger of two values (``max`` in SQLite, ``greatest`` in PostgreSQL)
    GREATEST: str

    def __init__(self, clock: Callable[[], datetime], pending: list[Statement]) -> None:
        super().__init__(clock)
        #: statements queued to go with the next one that needs an answer
        self._pending = pending
        #: operations changed in this transaction, published to watchers after commit
        self.changed_operations: dict[str, Operation] = {}
        #: whether a message may have become leasable (dispatchers are woken after commit)
        self.outbox_touched = False
        #: idempotency records this transaction claimed (NEW), by (client, key)
        self._claimed: dict[tuple[str, str], IdempotencyRecord] = {}

    def _stamp(self, now: datetime | None) -> int:
        return to_micros(self._now(now))

    @abstractmethod
    async def _send(self, final: Statement | None) -> tuple[list[Row], int]:
        """Run the queued statements, then ``final``; answers ``final``'s rows and row
        count. Raises what ``_mismatched`` makes of a ``Checked`` one that missed."""

    @abstractmethod
    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        """One statement's rows, nothing queued."""

    @abstractmethod
    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        """One statement's row count, nothing queued."""

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        if self._pending:
            rows, _ = await self._send((sql, params))
            return rows
        return await self._fetch(sql, params)

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Execute a write; returns the number of rows changed."""
        if self._pending:
            _, count = await self._send((sql, params))
            return count
        return await self._execute(sql, params)

    async def flush(self) -> None:
        """Run whatever is still queued (the store does this before it commits)."""
        if self._pending:
            await self._send(None)

    async def _mismatched(self, exc: RowCountMismatch) -> Exception:
        """The error a held-back checked write that missed its row stands for; each area
        answers for its own writes (``exc.statement.what[0]`` names it) and passes the
        rest on."""
        return StoreError(f"a held-back write did not find its row: {exc}")
