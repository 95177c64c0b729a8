"""The inbox and the audit trail on the writer connection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.store.records import JSON, NewAudit, audit_keys
from gateway.store.sqlite.rows import dump_json, to_micros
from gateway.store.sqlite.unit import SQLiteUnit

__all__ = ["SQLiteJournalWrites"]

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


class SQLiteJournalWrites(SQLiteUnit):
    """What came in (the inbox) and what was done (the audit trail)."""

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

    async def append_audit(self, *entries: NewAudit) -> None:
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
