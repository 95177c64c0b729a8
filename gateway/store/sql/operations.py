"""Writes of operations and saga steps on the writer connection."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from gateway.store.errors import StaleOperation
from gateway.store.records import JSON, UNSET, Operation, OperationStatus, StepStatus, Unset
from gateway.store.sql.rows import (
    OPERATION_COLUMNS,
    dump_json,
    from_micros,
    load_json,
    operation_from_row,
    to_micros,
)
from gateway.store.sql.unit import Checked, RowCountMismatch, SQLUnit

__all__ = ["SQLOperationWrites"]

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


class SQLOperationWrites(SQLUnit):
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
                [id, kind, status.value, correlation_id, client_id, aggregate_key, encoded, at, at],
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
        operation: str | Operation,
        *,
        status: OperationStatus | None = None,
        result: JSON | Unset = UNSET,
        error: str | None | Unset = UNSET,
        verify: bool = False,
        now: datetime | None = None,
    ) -> Operation | None:
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
        if isinstance(operation, str):
            row = await self._one(
                f"UPDATE operations SET {', '.join(sets)} WHERE id = ? "
                f"RETURNING {OPERATION_COLUMNS}",
                (*params, operation),
            )
            if row is None:
                return None
            updated = operation_from_row(row)
            self.changed_operations[updated.id] = updated
            return updated
        # The unit holds the write lock and read ``operation`` itself (or remembers it,
        # ``verify``), so the updated record is known without reading it back: the write
        # is held back (checked to find its row) and the answer built here, as a read
        # would return it. With ``verify`` the same write also checks the row is still the
        # remembered version (no read: a changed row matches nothing).
        where = "id = ?"
        params.append(operation.id)
        if verify:
            # Every field a step's bookkeeping depends on: a row that still holds all of
            # them is that version (a clock that stood still cannot fool the check).
            where += (
                " AND updated_at = ? AND status = ? AND result IS NOT DISTINCT FROM ?"
                " AND error IS NOT DISTINCT FROM ?"
            )
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
                ("operation", operation.id),
            )
        )
        updated = replace(operation, **changes)
        self.changed_operations[operation.id] = updated
        return updated

    async def _mismatched(self, exc: RowCountMismatch) -> Exception:
        what = exc.statement.what
        if what[0] == "operation":
            return StaleOperation(f"operation {what[1]} changed since the version given")
        return await super()._mismatched(exc)

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
    ) -> None:
        # Held back: nothing in it can fail but a constraint, which surfaces before COMMIT.
        self._pending.append(
            (
                _UPSERT_STEP_SQL,
                (
                    operation_id,
                    name,
                    status.value,
                    int(add_attempt),
                    None if result is UNSET or result is None else dump_json(result),
                    None if error is UNSET else error,
                    self._stamp(now),
                    result is not UNSET,
                    error is not UNSET,
                ),
            )
        )

    async def add_steps(
        self,
        operation_id: str,
        names: Sequence[str],
        *,
        status: StepStatus = StepStatus.PENDING,
        now: datetime | None = None,
    ) -> None:
        if not names:
            return
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
                [operation_id, status.value, self._stamp(now), *names],
            )
        )
