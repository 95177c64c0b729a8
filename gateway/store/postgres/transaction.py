"""``PostgresTransaction``: the ``Transaction`` of the PostgreSQL backend.

The SQL of every area comes from ``gateway.store.sql`` (shared with SQLite); here are
the connection work and what several replicas sharing one database need:

- The lease (``FOR UPDATE SKIP LOCKED``): the due heads of the aggregates' queues (each
  aggregate's lowest pending, leased or dead message) are locked in lease order, skipping
  those another replica is leasing right now, and each is checked again on its latest
  version (a head leased and committed meanwhile is not due any more). Every lease takes
  a new token from one sequence (``lease_token``, only growing across replicas) and
  records the holder's name; a settlement must name the holder the lease is under now,
  so a replica whose lease expired and was taken over is fenced off (``LeaseLost``).
- Per-aggregate order across replicas: message ids come from a sequence, which does not
  follow commit order; so ``enqueue`` takes a transaction-long advisory lock on each
  aggregate it writes to, and the ids of one aggregate's messages grow in commit order
  (a lease never sees a later message of an aggregate before an earlier one).
- Idempotency claims: ``INSERT ... ON CONFLICT`` waits for a concurrent claim of the same
  key to commit or roll back, then answers what SQLite's serialised writer answers.
- ``link`` reads and rewrites several registry rows: it first takes a transaction-long
  advisory lock on each id it is given (two links of one id take turns; a new id cannot
  be registered twice), then locks the rows it reads (``FOR UPDATE``), so a link that
  waited merges into what the other one wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import asyncpg

from canonical import System
from gateway.store.interface import Transaction
from gateway.store.outbox import in_lease_order
from gateway.store.postgres.reads import PostgresDialect, dollars, rowcount, violation
from gateway.store.records import NewMessage, OutboxMessage, XRefRecord
from gateway.store.sql.idempotency import SQLIdempotencyWrites
from gateway.store.sql.journal import AUDIT_SQL, SQLJournalWrites
from gateway.store.sql.operations import SQLOperationWrites
from gateway.store.sql.outbox import SQLOutboxWrites
from gateway.store.sql.read_model import SQLReadModelWrites
from gateway.store.sql.rows import MESSAGE_COLUMNS, Row, message_from_row, to_micros
from gateway.store.sql.unit import Checked, RowCountMismatch, Statement
from gateway.store.sql.xref import SQLXRefWrites

__all__ = ["PostgresTransaction"]

#: advisory lock classes (the first key of the two-key form)
_AGGREGATE_LOCKS: Final = 0x6377  # one per aggregate: its enqueues, in commit order
_XREF_LOCKS: Final = 0x6378  # one per system id (and canonical id) a link names

# A message is leased when it is due and the head of its aggregate's queue: no earlier
# message of its aggregate is pending, leased or dead. Candidates come in lease order from
# the index of leasable messages (migration 2); each is checked against the index of open
# messages by aggregate, and the scan stops at the limit. FOR UPDATE SKIP LOCKED skips
# what another replica is leasing right now and checks each row again on its latest
# version: a head leased or settled and committed since this statement began is not due.
_LEASE_SQL: Final = f"""
UPDATE outbox SET status = 'leased', lease_owner = ?1, lease_expires_at = ?2,
    updated_at = ?3, deliveries = deliveries + 1,
    lease_token = nextval('outbox_lease_tokens')
WHERE id IN (
    SELECT o.id FROM outbox AS o
    WHERE o.status IN ('pending', 'leased')
      AND ((o.status = 'pending' AND o.available_at <= ?3)
        OR (o.status = 'leased' AND o.lease_expires_at <= ?3))
      AND NOT EXISTS (
          SELECT 1 FROM outbox AS e
          WHERE e.aggregate_key = o.aggregate_key AND e.id < o.id
            AND e.status IN ('pending', 'leased', 'dead'))
    ORDER BY o.priority, o.id
    LIMIT ?4
    FOR UPDATE SKIP LOCKED
)
RETURNING {MESSAGE_COLUMNS}
"""

_AUDIT_WITH_KEYS_SQL: Final = (
    f"WITH entry AS ({AUDIT_SQL} RETURNING id) "
    "INSERT INTO audit_keys (key, audit_id) SELECT k, entry.id FROM entry, "
    "unnest(?::text[]) AS k ON CONFLICT DO NOTHING"
)


class PostgresTransaction(
    PostgresDialect,
    SQLOperationWrites,
    SQLOutboxWrites,
    SQLIdempotencyWrites,
    SQLJournalWrites,
    SQLReadModelWrites,
    SQLXRefWrites,
    Transaction,
):
    """Every write of one unit of work on one pooled connection, inside a database
    transaction the store begins and commits or rolls back."""

    LOCK_XREF_ROWS = " FOR UPDATE OF xref"

    def __init__(self, conn: asyncpg.Connection, clock: Callable[[], datetime]) -> None:
        super().__init__(clock, [])
        self._conn = conn
        #: aggregates whose advisory lock this unit holds already
        self._locked: set[str] = set()

    async def _flush_pending(self) -> None:
        pending, self._pending = self._pending, []
        for statement in pending:
            count = await self._execute(statement[0], statement[1])
            if isinstance(statement, Checked) and count != statement.rows:
                raise await self._mismatched(RowCountMismatch(statement, count))

    async def _send(self, final: Statement | None) -> tuple[list[Row], int]:
        await self._flush_pending()
        if final is None:
            return [], -1
        rows = await self._fetch(final[0], final[1])
        return rows, len(rows)

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        await self._flush_pending()
        return await self._fetch(sql, params)

    async def _run(self, sql: str, params: Sequence[Any] = ()) -> int:
        await self._flush_pending()
        return await self._execute(sql, params)

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[Row]:
        try:
            rows: list[Row] = await self._conn.fetch(dollars(sql), *params)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise violation(exc) from exc
        return rows

    async def _execute(self, sql: str, params: Sequence[Any]) -> int:
        try:
            return rowcount(await self._conn.execute(dollars(sql), *params))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise violation(exc) from exc

    # ------------------------------------------------------------ the outbox

    async def enqueue(self, *messages: NewMessage, now: datetime | None = None) -> None:
        for aggregate in sorted({m.aggregate_key for m in messages} - self._locked):
            self._pending.append(
                ("SELECT pg_advisory_xact_lock(?, hashtext(?))", (_AGGREGATE_LOCKS, aggregate))
            )
            self._locked.add(aggregate)
        await super().enqueue(*messages, now=now)

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
        moment = self._now(now)
        expires = to_micros(moment + timedelta(seconds=lease_seconds))
        rows = await self._all(_LEASE_SQL, (owner, expires, to_micros(moment), limit))
        return in_lease_order([message_from_row(r) for r in rows])

    # ------------------------------------------------------------ audit, xref

    def _audit_statements(self, entry: Sequence[Any], keys: list[str]) -> list[Statement]:
        return [(_AUDIT_WITH_KEYS_SQL, (*entry, keys))]

    async def link(
        self,
        ids: Mapping[System, str],
        *,
        canonical_id: str | None = None,
        name: str | None = None,
        now: datetime | None = None,
    ) -> XRefRecord:
        names = sorted({f"{System(s).value}:{v}" for s, v in ids.items()})
        if canonical_id is not None:
            names.append(f"canonical:{canonical_id}")
        for lock in names:
            await self._run("SELECT pg_advisory_xact_lock(?, hashtext(?))", (_XREF_LOCKS, lock))
        return await super().link(ids, canonical_id=canonical_id, name=name, now=now)
