"""Outbox writes in SQL both backends run; each backend writes its own ``lease`` (SQLite
reads the heads its triggers keep, PostgreSQL locks them with ``SKIP LOCKED``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.store.errors import LeaseLost
from gateway.store.records import NewMessage, OutboxMessage
from gateway.store.sql.rows import MESSAGE_COLUMNS, dump_json, message_from_row, to_micros
from gateway.store.sql.unit import NO_LIMIT, Checked, RowCountMismatch, SQLUnit

__all__ = ["SQLOutboxWrites"]

_ENQUEUE_SQL = (
    "INSERT INTO outbox (operation_id, step, aggregate_key, system, type, payload, "
    "idempotency_key, priority, available_at, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_REPLAY_SET = (
    "status = 'pending', attempts = 0, available_at = ?1, lease_owner = NULL, "
    "lease_expires_at = NULL, updated_at = ?1"
)


class SQLOutboxWrites(SQLUnit):
    async def enqueue(self, *messages: NewMessage, now: datetime | None = None) -> None:
        # Held back: the rows are fully known; a constraint error (an unknown operation)
        # surfaces with the unit's next statement or at its end.
        at = self._stamp(now)
        for message in messages:
            available = at if message.available_at is None else to_micros(message.available_at)
            self._pending.append(
                (
                    _ENQUEUE_SQL,
                    (
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
                    ),
                )
            )
        self.outbox_touched = self.outbox_touched or bool(messages)

    def _settle(
        self, message_id: int, owner: str, sets: str, params: Sequence[Any], action: str
    ) -> None:
        # Held back and checked to find its row: a lease lost surfaces as ``LeaseLost``
        # with the unit's next statement or at its end.
        self._pending.append(
            Checked(
                f"UPDATE outbox SET {sets} WHERE id = ? AND status = 'leased' AND lease_owner = ?",
                (*params, message_id, owner),
                1,
                ("settle", message_id, owner, action),
            )
        )

    async def _mismatched(self, exc: RowCountMismatch) -> Exception:
        what = exc.statement.what
        if what[0] != "settle":
            return await super()._mismatched(exc)
        _, message_id, owner, action = what
        current = await self.get_message(message_id)
        if current is None:
            return LeaseLost(f"cannot {action} outbox message {message_id}: no such message")
        return LeaseLost(
            f"cannot {action} outbox message {message_id}: it is {current.status.value}"
            f" and leased by {current.lease_owner!r}, not {owner!r}; the lease expired and"
            " another dispatcher took it over, so roll back and let that one deliver it"
        )

    async def complete(self, message_id: int, owner: str, *, now: datetime | None = None) -> None:
        self.outbox_touched = True  # the aggregate's next message may now be leased
        self._settle(
            message_id,
            owner,
            "status = 'done', lease_expires_at = NULL, updated_at = ?",
            (self._stamp(now),),
            "complete",
        )

    async def retry_later(
        self,
        message_id: int,
        owner: str,
        *,
        error: str,
        available_at: datetime,
        now: datetime | None = None,
    ) -> None:
        self._settle(
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
    ) -> None:
        self._settle(
            message_id,
            owner,
            "status = 'pending', available_at = ?, last_error = coalesce(?, last_error), "
            "lease_owner = NULL, lease_expires_at = NULL, updated_at = ?",
            (to_micros(available_at), reason, self._stamp(now)),
            "defer",
        )

    async def dead_letter(
        self, message_id: int, owner: str, *, reason: str, now: datetime | None = None
    ) -> None:
        self._settle(
            message_id,
            owner,
            "status = 'dead', attempts = attempts + 1, last_error = ?, "
            "lease_owner = NULL, lease_expires_at = NULL, updated_at = ?",
            (reason, self._stamp(now)),
            "dead-letter",
        )

    async def _dead_to(
        self, sets: str, message_id: int, now: datetime | None
    ) -> OutboxMessage | None:
        row = await self._one(
            f"UPDATE outbox SET {sets} WHERE id = ?2 AND status = 'dead' "
            f"RETURNING {MESSAGE_COLUMNS}",
            (self._stamp(now), message_id),
        )
        if row is None:
            return None
        self.outbox_touched = True
        return message_from_row(row)

    async def replay(self, message_id: int, *, now: datetime | None = None) -> OutboxMessage | None:
        return await self._dead_to(_REPLAY_SET, message_id, now)

    async def replay_all(self, *, now: datetime | None = None) -> int:
        changed = await self._run(
            f"UPDATE outbox SET {_REPLAY_SET} WHERE status = 'dead'", (self._stamp(now),)
        )
        self.outbox_touched = self.outbox_touched or changed > 0
        return changed

    async def discard(
        self, message_id: int, *, now: datetime | None = None
    ) -> OutboxMessage | None:
        return await self._dead_to("status = 'discarded', updated_at = ?1", message_id, now)

    async def purge_outbox(self, *, before: datetime, limit: int | None = None) -> int:
        return await self._run(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox "
            "WHERE status IN ('done', 'discarded') AND updated_at < ? LIMIT ?)",
            (to_micros(before), NO_LIMIT if limit is None else limit),
        )
