"""The base of every write of one unit of work on the writer connection.

Every unit runs inside a ``BEGIN IMMEDIATE`` transaction (its own, or a batch's under a
savepoint; see ``writer``). ``BEGIN IMMEDIATE`` takes SQLite's write lock up front, so
every read-then-write (lease selection, idempotency claims, xref merges) is atomic
against other tasks and other processes on the same file: they wait on the lock (busy
timeout) instead of interleaving.

Writes whose answer is known up front are queued in ``_pending`` and travel with the
unit's next statement (``batch``); the area modules beside this one (``operations``,
``outbox``, ``idempotency``, ``journal``, ``read_model``, ``xref``) hold the SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from gateway.store.records import IdempotencyRecord, Operation
from gateway.store.sqlite.batch import RowCountMismatch
from gateway.store.sqlite.connection import Connection
from gateway.store.sqlite.reads import SQLiteReader
from gateway.store.sqlite.rows import to_micros
from gateway.store.sqlite.writer import UnitStart

__all__ = ["SQLiteUnit"]


class SQLiteUnit(SQLiteReader):
    """A unit of work's state on the writer connection; the store commits or rolls back."""

    def __init__(
        self, conn: Connection, clock: Callable[[], datetime], *, start: UnitStart
    ) -> None:
        super().__init__(conn, clock)
        # BEGIN/SAVEPOINT goes out with the first statement of the unit, not on its own.
        self._pending = [(start.prefix, ())]
        self._executed = start.executed
        #: operations changed in this transaction, published to watchers after commit
        self.changed_operations: dict[str, Operation] = {}
        #: whether a message may have become leasable (dispatchers are woken after commit)
        self.outbox_touched = False
        #: idempotency records this transaction claimed (NEW), by (client, key)
        self._claimed: dict[tuple[str, str], IdempotencyRecord] = {}

    def _stamp(self, now: datetime | None) -> int:
        return to_micros(self._now(now))

    async def _mismatched(self, exc: RowCountMismatch) -> Exception:
        """The error a held-back checked write that missed its row stands for; each area
        answers for its own writes (``exc.statement.what[0]`` names it) and passes the
        rest on."""
        return await super()._mismatched(exc)
