"""The inbox and the audit trail on the writer connection."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.store.records import JSON, NewAudit, audit_keys
from gateway.store.sql.rows import dump_json, to_micros
from gateway.store.sql.unit import NO_LIMIT, SQLUnit, Statement

__all__ = ["SQLJournalWrites"]

#: an audit entry's insert; the backend adds the keys it is found by (``_audit_statements``)
AUDIT_SQL = (
    "INSERT INTO audit (at, correlation_id, actor, action, subject, detail) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


class SQLJournalWrites(SQLUnit):
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
            (to_micros(before), NO_LIMIT if limit is None else limit),
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
        entry = (at, correlation_id, actor, action, subject, dump_json(detail))
        self._pending += self._audit_statements(entry, audit_keys(subject, detail))

    @abstractmethod
    def _audit_statements(self, entry: Sequence[Any], keys: list[str]) -> list[Statement]:
        """The statements that insert one entry (``AUDIT_SQL``'s parameters) and the
        business keys it is found by."""

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
