"""Writes of one unit of work on the writer connection (see ``sqlite_writer``).

Every unit runs inside a ``BEGIN IMMEDIATE`` transaction (its own, or a batch's under a
savepoint). ``BEGIN IMMEDIATE`` takes SQLite's write lock up front, so every read-then-write below
(lease selection, idempotency claims, xref merges) is atomic against other tasks and other
processes on the same file: they wait on the lock (busy timeout) instead of interleaving.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import aiosqlite

from gateway.store.errors import (
    IdempotencyStateError,
    LeaseLost,
    RecordNotFound,
    StaleOperation,
)
from gateway.store.interface import Transaction
from gateway.store.records import (
    DEFAULT_IDEMPOTENCY_TTL,
    JSON,
    UNSET,
    AuditEntry,
    DriftFinding,
    IdempotencyOutcome,
    IdempotencyRecord,
    IdempotencyResult,
    IdempotencyState,
    NewAudit,
    NewMessage,
    Operation,
    OperationStatus,
    OutboxMessage,
    ReadRow,
    SagaStep,
    StepStatus,
    Unset,
    audit_keys,
)
from gateway.store.sqlite_batch import Checked, RowCountMismatch
from gateway.store.sqlite_reader import (
    IDEMPOTENCY_COLUMNS,
    MESSAGE_COLUMNS,
    OPERATION_COLUMNS,
    STEP_COLUMNS,
    Row,
    dump_json,
    from_micros,
    idempotency_from_row,
    load_json,
    message_from_row,
    operation_from_row,
    step_from_row,
    to_micros,
)
from gateway.store.sqlite_writer import UnitStart
from gateway.store.sqlite_xref import SQLiteXRefWrites

__all__ = ["SQLiteTransaction"]

# Only the head of each aggregate (its lowest open message, kept in outbox_heads by
# triggers) is ever a candidate, so a message never overtakes an earlier pending, leased or
# dead one of its aggregate; the due heads come from an index, whatever the backlog.
_LEASE_SQL = f"""
UPDATE outbox
SET status = 'leased', lease_owner = ?1, lease_expires_at = ?2, updated_at = ?3,
    deliveries = deliveries + 1
WHERE id IN (
    SELECT message_id FROM outbox_heads
    WHERE due_at <= ?3
    ORDER BY priority, message_id
    LIMIT ?4
)
RETURNING {MESSAGE_COLUMNS}
"""

_DONE_SET = "status = 'done', lease_expires_at = NULL, updated_at = ?"

_UPSERT_STEP_SQL = (
    "INSERT INTO saga_steps (operation_id, name, position, status, attempts, result, "
    "error, updated_at) VALUES (?1, ?2, "
    "(SELECT coalesce(max(position), 0) + 1 FROM saga_steps WHERE operation_id = ?1), "
    "?3, ?4, ?5, ?6, ?7) "
    "ON CONFLICT (operation_id, name) DO UPDATE SET status = excluded.status, "
    "attempts = saga_steps.attempts + ?4, "
    "result = CASE WHEN ?8 THEN excluded.result ELSE saga_steps.result END, "
    "error = CASE WHEN ?9 THEN excluded.error ELSE saga_steps.error END, "
    "updated_at = excluded.updated_at"
)

_AUDIT_SQL = (
    "INSERT INTO audit (at, correlation_id, actor, action, subject, detail) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
# right after an entry's insert: the keys it is found by (audit_keys is WITHOUT ROWID,
# so its inserts leave last_insert_rowid() on the entry)
_AUDIT_KEYS_SQL = (
    "INSERT OR IGNORE INTO audit_keys (key, audit_id) "
    "SELECT value, last_insert_rowid() FROM json_each(?)"
)

_ENQUEUE_SQL = (
    "INSERT INTO outbox (operation_id, step, aggregate_key, system, type, payload, "
    "idempotency_key, priority, available_at, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def lease_statement(
    owner: str, limit: int, lease_seconds: float, now: datetime
) -> tuple[str, tuple[Any, ...]]:
    """The statement that leases up to ``limit`` due messages for ``owner`` at ``now``."""
    expires = to_micros(now + timedelta(seconds=lease_seconds))
    return _LEASE_SQL, (owner, expires, to_micros(now), limit)


def leased_messages(rows: Sequence[Row]) -> list[OutboxMessage]:
    """The messages ``lease_statement`` returned, in lease order (RETURNING's is unspecified)."""
    messages = [message_from_row(r) for r in rows]
    messages.sort(key=lambda m: (m.priority, m.id))
    return messages


class SQLiteTransaction(SQLiteXRefWrites, Transaction):
    """The ``Transaction`` writes on the writer connection; the store commits or rolls back."""

    def __init__(
        self, conn: aiosqlite.Connection, clock: Callable[[], datetime], *, start: UnitStart
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

    # ------------------------------------------------------------ operations and steps

    async def create_operation(
        self,
        *,
        id: str,
        kind: str,
        correlation_id: str,
        client_id: str,
        aggregate_key: str,
        input: JSON,
        status: OperationStatus = OperationStatus.PENDING,
        now: datetime | None = None,
    ) -> Operation:
        at = self._stamp(now)
        encoded = dump_json(input)
        # Queued, not sent: the answer is known already; a constraint error (a reused id)
        # surfaces with the unit's next statement or at its end, before any commit.
        self._pending.append(
            (
                "INSERT INTO operations (id, kind, status, correlation_id, client_id, "
                "aggregate_key, input, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    id,
                    kind,
                    status.value,
                    correlation_id,
                    client_id,
                    aggregate_key,
                    encoded,
                    at,
                    at,
                ],
            )
        )
        moment = from_micros(at)
        operation = Operation(
            id=id,
            kind=kind,
            status=status,
            correlation_id=correlation_id,
            client_id=client_id,
            aggregate_key=aggregate_key,
            input=load_json(encoded),  # as a later read returns it (lists, not tuples)
            result=None,
            error=None,
            created_at=moment,
            updated_at=moment,
        )
        self.changed_operations[id] = operation
        return operation

    async def update_operation(
        self,
        operation_id: str,
        *,
        status: OperationStatus | None = None,
        result: JSON | Unset = UNSET,
        error: str | None | Unset = UNSET,
        now: datetime | None = None,
    ) -> Operation:
        sets = ["updated_at = ?"]
        params: list[Any] = [self._stamp(now)]
        if status is not None:
            sets.append("status = ?")
            params.append(status.value)
        if result is not UNSET:
            sets.append("result = ?")
            params.append(None if result is None else dump_json(result))
        if error is not UNSET:
            sets.append("error = ?")
            params.append(error)
        row = await self._one(
            f"UPDATE operations SET {', '.join(sets)} WHERE id = ? RETURNING {OPERATION_COLUMNS}",
            (*params, operation_id),
        )
        if row is None:
            raise RecordNotFound(f"no operation {operation_id!r} to update")
        operation = operation_from_row(row)
        self.changed_operations[operation_id] = operation
        return operation

    async def advance_operation(
        self,
        operation: Operation,
        *,
        status: OperationStatus | None = None,
        result: JSON | Unset = UNSET,
        error: str | None | Unset = UNSET,
        verify: bool = False,
        now: datetime | None = None,
    ) -> Operation:
        # The unit holds the write lock and read ``operation`` itself, so the updated
        # record is known without reading it back: the write is held back (checked to
        # find its row) and the answer built here, as a read would return it. With
        # ``verify`` the same write also checks the row is still the remembered version
        # (no read: a changed row matches nothing, and the check says which it was).
        at = self._stamp(now)
        sets = ["updated_at = ?"]
        params: list[Any] = [at]
        changes: dict[str, Any] = {"updated_at": from_micros(at)}
        if status is not None:
            sets.append("status = ?")
            params.append(status.value)
            changes["status"] = status
        if result is not UNSET:
            encoded = None if result is None else dump_json(result)
            sets.append("result = ?")
            params.append(encoded)
            changes["result"] = load_json(encoded)
        if error is not UNSET:
            sets.append("error = ?")
            params.append(error)
            changes["error"] = error
        where = "id = ?"
        params.append(operation.id)
        if verify:
            # Every field a step's bookkeeping depends on: a row that still holds all of
            # them is that version (a clock that stood still cannot fool the check).
            where += " AND updated_at = ? AND status = ? AND result IS ? AND error IS ?"
            params += [
                to_micros(operation.updated_at),
                operation.status.value,
                None if operation.result is None else dump_json(operation.result),
                operation.error,
            ]
        self._pending.append(
            Checked(
                f"UPDATE operations SET {', '.join(sets)} WHERE {where}",
                params,
                1,
                ("operation", operation.id, verify),
            )
        )
        updated = replace(operation, **changes)
        self.changed_operations[operation.id] = updated
        return updated

    async def upsert_step(
        self,
        operation_id: str,
        name: str,
        *,
        status: StepStatus,
        result: JSON | Unset = UNSET,
        error: str | None | Unset = UNSET,
        add_attempt: bool = False,
        now: datetime | None = None,
    ) -> SagaStep:
        row = await self._one(
            f"{_UPSERT_STEP_SQL} RETURNING {STEP_COLUMNS}",
            self._step_params(operation_id, name, status, result, error, add_attempt, now),
        )
        assert row is not None  # an upsert with RETURNING always returns its row
        return step_from_row(row)

    async def record_step(
        self,
        operation_id: str,
        name: str,
        *,
        status: StepStatus,
        result: JSON | Unset = UNSET,
        error: str | None | Unset = UNSET,
        add_attempt: bool = False,
        now: datetime | None = None,
    ) -> None:
        # Held back: nothing in it can fail but a constraint, which surfaces before COMMIT.
        self._pending.append(
            (
                _UPSERT_STEP_SQL,
                self._step_params(operation_id, name, status, result, error, add_attempt, now),
            )
        )

    def _step_params(
        self,
        operation_id: str,
        name: str,
        status: StepStatus,
        result: JSON | Unset,
        error: str | None | Unset,
        add_attempt: bool,
        now: datetime | None,
    ) -> tuple[Any, ...]:
        return (
            operation_id,
            name,
            status.value,
            int(add_attempt),
            None if result is UNSET or result is None else dump_json(result),
            None if error is UNSET else error,
            self._stamp(now),
            result is not UNSET,
            error is not UNSET,
        )

    async def add_steps(
        self,
        operation_id: str,
        names: Sequence[str],
        *,
        status: StepStatus = StepStatus.PENDING,
        now: datetime | None = None,
    ) -> list[SagaStep]:
        if not names:
            return []
        at = self._stamp(now)
        values = ", ".join(
            f"(?1, ?{i + 4}, (SELECT coalesce(max(position), 0) FROM saga_steps "
            f"WHERE operation_id = ?1) + {i + 1}, ?2, 0, ?3)"
            for i in range(len(names))
        )
        # Queued like create_operation: the rows are fully known here.
        self._pending.append(
            (
                "INSERT INTO saga_steps (operation_id, name, position, status, attempts, "
                f"updated_at) VALUES {values}",
                [operation_id, status.value, at, *names],
            )
        )
        moment = from_micros(at)
        return [
            SagaStep(
                operation_id=operation_id,
                name=name,
                status=status,
                attempts=0,
                result=None,
                error=None,
                updated_at=moment,
            )
            for name in names
        ]

    # ------------------------------------------------------------ outbox

    async def enqueue(self, message: NewMessage, *, now: datetime | None = None) -> int:
        row = await self._one(f"{_ENQUEUE_SQL} RETURNING id", self._message_params(message, now))
        assert row is not None
        self.outbox_touched = True
        return int(row[0])

    async def add_message(self, message: NewMessage, *, now: datetime | None = None) -> None:
        self._pending.append((_ENQUEUE_SQL, self._message_params(message, now)))
        self.outbox_touched = True

    def _message_params(self, message: NewMessage, now: datetime | None) -> tuple[Any, ...]:
        at = self._stamp(now)
        available = at if message.available_at is None else to_micros(message.available_at)
        return (
            message.operation_id,
            message.step,
            message.aggregate_key,
            message.system,
            message.type,
            dump_json(message.payload),
            message.idempotency_key,
            message.priority,
            available,
            at,
            at,
        )

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

    async def _settle(
        self, message_id: int, owner: str, sets: str, params: Sequence[Any], action: str
    ) -> OutboxMessage:
        row = await self._one(
            f"UPDATE outbox SET {sets} WHERE id = ? AND status = 'leased' AND lease_owner = ? "
            f"RETURNING {MESSAGE_COLUMNS}",
            (*params, message_id, owner),
        )
        if row is not None:
            return message_from_row(row)
        raise await self._not_held(message_id, owner, action)

    async def complete(
        self, message_id: int, owner: str, *, now: datetime | None = None
    ) -> OutboxMessage:
        self.outbox_touched = True  # the aggregate's next message may now be leased
        return await self._settle(message_id, owner, _DONE_SET, (self._stamp(now),), "complete")

    async def settle_done(
        self, message_id: int, owner: str, *, now: datetime | None = None
    ) -> None:
        self.outbox_touched = True
        self._pending.append(
            Checked(
                f"UPDATE outbox SET {_DONE_SET} WHERE id = ? AND status = 'leased' "
                "AND lease_owner = ?",
                (self._stamp(now), message_id, owner),
                1,
                ("complete", message_id, owner),
            )
        )

    async def _mismatched(self, exc: RowCountMismatch) -> Exception:
        what = exc.statement.what
        if what[0] == "operation":
            if what[2] and await self.get_operation(what[1]) is not None:
                return StaleOperation(f"operation {what[1]} changed since the remembered version")
            return RecordNotFound(f"no operation {what[1]!r} to update")
        if what[0] == "complete":
            return await self._not_held(what[1], what[2], "complete")
        return await super()._mismatched(exc)

    async def _not_held(self, message_id: int, owner: str, action: str) -> Exception:
        current = await self.get_message(message_id)
        if current is None:
            return RecordNotFound(f"cannot {action} outbox message {message_id}: no such message")
        return LeaseLost(
            f"cannot {action} outbox message {message_id}: it is {current.status.value}"
            f" and leased by {current.lease_owner!r}, not {owner!r}; the lease expired and"
            " another dispatcher took it over, so roll back and let that one deliver it"
        )

    async def retry_later(
        self,
        message_id: int,
        owner: str,
        *,
        error: str,
        available_at: datetime,
        now: datetime | None = None,
    ) -> OutboxMessage:
        return await self._settle(
            message_id,
            owner,
            "status = 'pending', attempts = attempts + 1, available_at = ?, last_error = ?, "
            "lease_owner = NULL, lease_expires_at = NULL, updated_at = ?",
            (to_micros(available_at), error, self._stamp(now)),
            "retry",
        )

    async def defer(
        self,
        message_id: int,
        owner: str,
        *,
        available_at: datetime,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> OutboxMessage:
        return await self._settle(
            message_id,
            owner,
            "status = 'pending', available_at = ?, last_error = coalesce(?, last_error), "
            "lease_owner = NULL, lease_expires_at = NULL, updated_at = ?",
            (to_micros(available_at), reason, self._stamp(now)),
            "defer",
        )

    async def dead_letter(
        self, message_id: int, owner: str, *, reason: str, now: datetime | None = None
    ) -> OutboxMessage:
        return await self._settle(
            message_id,
            owner,
            "status = 'dead', attempts = attempts + 1, last_error = ?, "
            "lease_owner = NULL, lease_expires_at = NULL, updated_at = ?",
            (reason, self._stamp(now)),
            "dead-letter",
        )

    _REPLAY_SET = (
        "status = 'pending', attempts = 0, available_at = ?1, lease_owner = NULL, "
        "lease_expires_at = NULL, updated_at = ?1"
    )

    async def replay(self, message_id: int, *, now: datetime | None = None) -> bool:
        changed = await self._run(
            f"UPDATE outbox SET {self._REPLAY_SET} WHERE id = ?2 AND status = 'dead'",
            (self._stamp(now), message_id),
        )
        self.outbox_touched = self.outbox_touched or changed == 1
        return changed == 1

    async def replay_all(self, *, now: datetime | None = None) -> int:
        changed = await self._run(
            f"UPDATE outbox SET {self._REPLAY_SET} WHERE status = 'dead'", (self._stamp(now),)
        )
        self.outbox_touched = self.outbox_touched or changed > 0
        return changed

    async def discard(self, message_id: int, *, now: datetime | None = None) -> bool:
        changed = await self._run(
            "UPDATE outbox SET status = 'discarded', updated_at = ? "
            "WHERE id = ? AND status = 'dead'",
            (self._stamp(now), message_id),
        )
        self.outbox_touched = self.outbox_touched or changed == 1
        return changed == 1

    async def purge_outbox(self, *, before: datetime, limit: int | None = None) -> int:
        return await self._run(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox "
            "WHERE status IN ('done', 'discarded') AND updated_at < ? LIMIT ?)",
            (to_micros(before), -1 if limit is None else limit),
        )

    # ------------------------------------------------------------ idempotency

    async def begin_idempotent(
        self,
        client_id: str,
        key: str,
        fingerprint: str,
        *,
        operation_id: str | None = None,
        now: datetime | None = None,
        ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL,
    ) -> IdempotencyResult:
        moment = self._now(now)
        # One statement claims the key when it is free or expired (the common case); only
        # when a live record holds it do we read that record to say which outcome it is.
        row = await self._one(
            "INSERT INTO idempotency (client_id, key, fingerprint, state, operation_id, "
            "response, created_at, expires_at) VALUES (?1, ?2, ?3, 'in_flight', ?4, NULL, ?5, ?6) "
            "ON CONFLICT (client_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, "
            "state = excluded.state, operation_id = excluded.operation_id, response = NULL, "
            "created_at = excluded.created_at, expires_at = excluded.expires_at "
            "WHERE idempotency.expires_at <= ?5 "
            f"RETURNING {IDEMPOTENCY_COLUMNS}",
            [client_id, key, fingerprint, operation_id, to_micros(moment), to_micros(moment + ttl)],
        )
        if row is None:
            existing = await self._idempotency_row(client_id, key)
            assert existing is not None  # the write lock is held: it cannot have vanished
            if existing.fingerprint != fingerprint:
                return IdempotencyResult(IdempotencyOutcome.MISMATCH, existing)
            if existing.state is IdempotencyState.COMPLETED:
                return IdempotencyResult(IdempotencyOutcome.REPLAY, existing)
            return IdempotencyResult(IdempotencyOutcome.CONFLICT, existing)
        claimed = idempotency_from_row(row)
        self._claimed[client_id, key] = claimed
        return IdempotencyResult(IdempotencyOutcome.NEW, claimed)

    async def complete_idempotent(
        self,
        client_id: str,
        key: str,
        response: JSON,
        *,
        operation_id: str | None = None,
        now: datetime | None = None,
    ) -> IdempotencyRecord:
        moment = self._stamp(now)
        claimed = self._claimed.pop((client_id, key), None)
        if claimed is not None and to_micros(claimed.expires_at) > moment:
            # Claimed in this very transaction (the usual write path): the record is known,
            # so the update is queued with the next statement instead of a round trip.
            encoded = dump_json(response)
            completed = replace(
                claimed,
                state=IdempotencyState.COMPLETED,
                response=load_json(encoded),
                operation_id=operation_id or claimed.operation_id,
            )
            self._pending.append(
                (
                    "UPDATE idempotency SET state = 'completed', response = ?, "
                    "operation_id = ? WHERE client_id = ? AND key = ?",
                    (encoded, completed.operation_id, client_id, key),
                )
            )
            return completed
        row = await self._one(
            "UPDATE idempotency SET state = 'completed', response = ?, "
            "operation_id = coalesce(?, operation_id) "
            "WHERE client_id = ? AND key = ? AND expires_at > ? "
            f"RETURNING {IDEMPOTENCY_COLUMNS}",
            (dump_json(response), operation_id, client_id, key, moment),
        )
        if row is None:
            raise IdempotencyStateError(
                f"idempotency key {key!r} of client {client_id!r} has no live record: "
                "call begin_idempotent first (in the same or an earlier transaction)"
            )
        return idempotency_from_row(row)

    async def release_idempotent(self, client_id: str, key: str) -> bool:
        self._claimed.pop((client_id, key), None)
        changed = await self._run(
            "DELETE FROM idempotency WHERE client_id = ? AND key = ? AND state = 'in_flight'",
            (client_id, key),
        )
        return changed == 1

    async def purge_expired(self, *, now: datetime | None = None, limit: int | None = None) -> int:
        return await self._run(
            "DELETE FROM idempotency WHERE (client_id, key) IN (SELECT client_id, key "
            "FROM idempotency WHERE expires_at <= ? LIMIT ?)",
            (self._stamp(now), -1 if limit is None else limit),
        )

    # ------------------------------------------------------------ inbox, audit

    async def record_inbox(
        self,
        system: str,
        event_id: str,
        payload: JSON,
        *,
        now: datetime | None = None,
    ) -> bool:
        changed = await self._run(
            "INSERT INTO inbox (system, event_id, received_at, payload) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (system, event_id) DO NOTHING",
            (system, event_id, self._stamp(now), dump_json(payload)),
        )
        return changed == 1

    async def mark_inbox_processed(
        self, system: str, event_id: str, *, now: datetime | None = None
    ) -> bool:
        changed = await self._run(
            "UPDATE inbox SET processed_at = ? WHERE system = ? AND event_id = ?",
            (self._stamp(now), system, event_id),
        )
        return changed == 1

    async def purge_inbox(self, *, before: datetime, limit: int | None = None) -> int:
        return await self._run(
            "DELETE FROM inbox WHERE (system, event_id) IN (SELECT system, event_id FROM inbox "
            "WHERE processed_at IS NOT NULL AND processed_at < ? AND applied_at IS NOT NULL "
            "LIMIT ?)",
            (to_micros(before), -1 if limit is None else limit),
        )

    async def append_audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        correlation_id: str | None = None,
        detail: JSON = None,
        now: datetime | None = None,
    ) -> AuditEntry:
        at = self._stamp(now)
        encoded = dump_json(detail)
        row = await self._one(
            f"{_AUDIT_SQL} RETURNING id", (at, correlation_id, actor, action, subject, encoded)
        )
        assert row is not None
        keys = audit_keys(subject, detail)
        if keys:
            self._pending.append(
                (
                    "INSERT OR IGNORE INTO audit_keys (key, audit_id) "
                    "SELECT value, ? FROM json_each(?)",
                    (int(row[0]), dump_json(keys)),
                )
            )
        return AuditEntry(
            id=int(row[0]),
            at=from_micros(at),
            correlation_id=correlation_id,
            actor=actor,
            action=action,
            subject=subject,
            detail=load_json(encoded),
        )

    async def add_audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        correlation_id: str | None = None,
        detail: JSON = None,
        now: datetime | None = None,
    ) -> None:
        self._queue_audit(self._stamp(now), actor, action, subject, correlation_id, detail)

    async def add_audits(self, entries: Sequence[NewAudit]) -> None:
        # Queued, not sent: a batch of the audit writer's entries is one round trip
        for e in entries:
            at = self._stamp(None) if e.at is None else to_micros(e.at)
            self._queue_audit(at, e.actor, e.action, e.subject, e.correlation_id, e.detail)

    def _queue_audit(
        self,
        at: int,
        actor: str,
        action: str,
        subject: str,
        correlation_id: str | None,
        detail: JSON,
    ) -> None:
        self._pending.append(
            (_AUDIT_SQL, (at, correlation_id, actor, action, subject, dump_json(detail)))
        )
        keys = audit_keys(subject, detail)
        if keys:
            self._pending.append((_AUDIT_KEYS_SQL, (dump_json(keys),)))

    async def purge_audit(self, *, before: datetime, limit: int) -> int:
        # the oldest first, through the time index: one small batch per call
        return await self._run(
            "DELETE FROM audit WHERE id IN "
            "(SELECT id FROM audit WHERE at < ? ORDER BY at LIMIT ?)",
            (to_micros(before), limit),
        )

    # ------------------------------------------------------------ the read model
    # Queued, not sent: these writes need no answer, so a flush of many records costs one
    # round trip to the connection's thread.

    async def put_read_rows(self, rows: Sequence[ReadRow]) -> None:
        for row in rows:
            self._pending.append(
                (
                    "INSERT INTO read_records (system, kind, id, customer, version, data, "
                    "deleted, learned_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (system, kind, id) DO UPDATE SET customer = excluded.customer, "
                    "version = excluded.version, data = excluded.data, "
                    "deleted = excluded.deleted, learned_at = excluded.learned_at, "
                    "source = excluded.source WHERE excluded.version >= read_records.version",
                    [
                        row.system,
                        row.kind,
                        row.id,
                        row.customer,
                        row.version,
                        None if row.data is None else dump_json(row.data),
                        int(row.deleted),
                        to_micros(row.learned_at),
                        row.source,
                    ],
                )
            )

    async def cover_read(self, system: str, kind: str, customer: str, loaded_at: datetime) -> None:
        self._pending.append(
            (
                "INSERT INTO read_coverage (system, kind, customer, loaded_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (system, kind, customer) DO UPDATE SET "
                "loaded_at = max(loaded_at, excluded.loaded_at)",
                [system, kind, customer, to_micros(loaded_at)],
            )
        )

    async def set_read_feed(
        self,
        system: str,
        feed: str,
        *,
        cursor: str | None,
        complete_at: datetime | None,
        now: datetime | None = None,
    ) -> None:
        self._pending.append(
            (
                "INSERT INTO read_feeds (system, feed, cursor, complete_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (system, feed) DO UPDATE SET "
                "cursor = excluded.cursor, complete_at = excluded.complete_at, "
                "updated_at = excluded.updated_at",
                [
                    system,
                    feed,
                    cursor,
                    None if complete_at is None else to_micros(complete_at),
                    self._stamp(now),
                ],
            )
        )

    async def mark_applied(
        self, events: Sequence[tuple[str, str]], *, now: datetime | None = None
    ) -> None:
        at = self._stamp(now)
        for system, event_id in events:
            self._pending.append(
                (
                    "UPDATE inbox SET applied_at = ? WHERE system = ? AND event_id = ?",
                    [at, system, event_id],
                )
            )

    async def record_reconciliation(
        self,
        *,
        started_at: datetime,
        finished_at: datetime,
        trigger: str,
        customers: int,
        findings: Sequence[DriftFinding],
        incomplete: Mapping[str, str],
    ) -> int:
        rows = await self._all(
            "INSERT INTO reconciliation_runs (started_at, finished_at, trigger, customers, "
            "findings, repaired, incomplete) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (
                to_micros(started_at),
                to_micros(finished_at),
                trigger,
                customers,
                len(findings),
                sum(1 for f in findings if f.repair),
                dump_json(dict(incomplete)),
            ),
        )
        run_id = int(rows[0][0])
        for position, f in enumerate(findings):
            self._pending.append(
                (
                    "INSERT INTO reconciliation_findings (run_id, position, kind, erp_bp, "
                    "system, record_id, field, expected, actual, repair) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        run_id, position, f.kind, f.erp_bp, f.system, f.record_id, f.field,
                        f.expected, f.actual, f.repair,
                    ],
                )
            )  # fmt: skip
        return run_id
