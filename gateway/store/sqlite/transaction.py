"""``SQLiteTransaction``: the ``Transaction`` of the SQLite backend.

The SQL of every area comes from ``gateway.store.sql`` (shared with PostgreSQL); here are
the connection work (queued statements go in one hand-off to the connection's thread,
``batch``), the lease over the heads the triggers keep (``lease``) and the audit keys.

Every unit runs inside a ``BEGIN IMMEDIATE`` transaction (its own, or a batch's under a
savepoint; see ``writer``), which takes SQLite's write lock up front, so every
read-then-write (lease selection, idempotency claims, xref merges) is atomic against
other tasks and other processes on the same file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gateway.store.interface import Transaction
from gateway.store.records import OutboxMessage
from gateway.store.sql.idempotency import SQLIdempotencyWrites
from gateway.store.sql.journal import AUDIT_SQL, SQLJournalWrites
from gateway.store.sql.operations import SQLOperationWrites
from gateway.store.sql.outbox import SQLOutboxWrites
from gateway.store.sql.read_model import SQLReadModelWrites
from gateway.store.sql.rows import Row, dump_json
from gateway.store.sql.unit import RowCountMismatch, Statement
from gateway.store.sql.xref import SQLXRefWrites
from gateway.store.sqlite.batch import run_statements
from gateway.store.sqlite.connection import Connection
from gateway.store.sqlite.lease import lease_statement, leased_messages
from gateway.store.sqlite.reads import SQLiteDialect, violation
from gateway.store.sqlite.writer import UnitStart

__all__ = ["SQLiteTransaction"]

# right after an entry's insert: the keys it is found by (audit_keys is WITHOUT ROWID,
# so its inserts leave last_insert_rowid() on the entry)
_AUDIT_KEYS_SQL = (
    "INSERT OR IGNORE INTO audit_keys (key, audit_id) "
    "SELECT value, last_insert_rowid() FROM json_each(?)"
)


class SQLiteTransaction(
    SQLiteDialect,
    SQLOperationWrites,
    SQLOutboxWrites,
    SQLIdempotencyWrites,
    SQLJournalWrites,
    SQLReadModelWrites,
    SQLXRefWrites,
    Transaction,
):
    """Every write of one unit of work on the writer connection; the store commits or
    rolls back."""

    def __init__(
        self, conn: Connection, clock: Callable[[], datetime], *, start: UnitStart
    ) -> None:
        # BEGIN/SAVEPOINT goes out with the first statement of the unit, not on its own.
        super().__init__(clock, [(start.prefix, ())])
        self._conn = conn
        #: how many queued statements have run so far (the unit's prefix is the first)
        self._executed = start.executed

    async def _send(self, final: Statement | None) -> tuple[list[Row], int]:
        pending, self._pending = self._pending, []
        try:
            return await run_statements(self._conn, pending, final, self._executed)
        except sqlite3.IntegrityError as exc:
            raise violation(exc) from exc
        except RowCountMismatch as exc:
            raise await self._mismatched(exc) from None

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        try:
            return await self._conn.fetchall(sql, params)
        except sqlite3.IntegrityError as exc:
            raise violation(exc) from exc

    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        try:
            return await self._conn.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise violation(exc) from exc

    async def lease(
        self,
        owner: str,
        *,
        limit: int,
        lease_seconds: float,
        now: datetime | None = None,
    ) -> list[OutboxMessage]:
        if limit <= 0:
            return []
        sql, params = lease_statement(owner, limit, lease_seconds, self._now(now))
        return leased_messages(await self._all(sql, params))

    def _audit_statements(self, entry: Sequence[Any], keys: list[str]) -> list[Statement]:
        statements: list[Statement] = [(AUDIT_SQL, entry)]
        if keys:
            statements.append((_AUDIT_KEYS_SQL, (dump_json(keys),)))
        return statements
