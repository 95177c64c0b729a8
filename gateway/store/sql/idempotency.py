"""Idempotency records on the writer connection: claims, completion, release, purge."""

from __future__ import annotations

from datetime import datetime, timedelta

from gateway.store.errors import IdempotencyStateError
from gateway.store.records import (
    DEFAULT_IDEMPOTENCY_TTL,
    JSON,
    IdempotencyOutcome,
    IdempotencyResult,
    IdempotencyState,
)
from gateway.store.sql.rows import (
    IDEMPOTENCY_COLUMNS,
    dump_json,
    idempotency_from_row,
    to_micros,
)
from gateway.store.sql.unit import NO_LIMIT, SQLUnit

__all__ = ["SQLIdempotencyWrites"]


class SQLIdempotencyWrites(SQLUnit):
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
    ) -> None:
        moment = self._stamp(now)
        claimed = self._claimed.pop((client_id, key), None)
        if claimed is not None and to_micros(claimed.expires_at) > moment:
            # Claimed in this very transaction (the usual write path): the record is known,
            # so the update is queued with the next statement instead of a round trip.
            self._pending.append(
                (
                    "UPDATE idempotency SET state = 'completed', response = ?, "
                    "operation_id = ? WHERE client_id = ? AND key = ?",
                    (dump_json(response), operation_id or claimed.operation_id, client_id, key),
                )
            )
            return
        changed = await self._run(
            "UPDATE idempotency SET state = 'completed', response = ?, "
            "operation_id = coalesce(?, operation_id) "
            "WHERE client_id = ? AND key = ? AND expires_at > ?",
            (dump_json(response), operation_id, client_id, key, moment),
        )
        if changed != 1:
            raise IdempotencyStateError(
                f"idempotency key {key!r} of client {client_id!r} has no live record: "
                "call begin_idempotent first (in the same or an earlier transaction)"
            )

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
            (self._stamp(now), NO_LIMIT if limit is None else limit),
        )
